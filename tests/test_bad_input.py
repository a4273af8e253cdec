"""First contact: bad input is refused at configure time, before anything is made.

Each case below is a user's mistake, replayed through ``gmi`` (``python -m harness``) from
an empty folder, once as a real run and once with ``--collect-only``. Both must end the
same way: pytest's usage error (exit status 4), each problem of the input named in one
line of its own (``ERROR: ...``), no traceback, nothing created under ``--out``,
``--scratch``, the credentials folder or the user's home (caches), no process left (no
apt-cacher-ng, no VM), and a canary file that hostile YAML would create never made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import distro
from tests.test_hostile_config import BILLION_LAUGHS

REPO = Path(__file__).resolve().parent.parent
DEB12 = (distro.DISTROS_DIR / "debian-12.yml").read_text()
GOOD_TEMPLATE = {
    "user-data": "#cloud-config\nusers:\n  - name: {{ USERNAME }}\n    ssh_authorized_keys: "
                 "['{{ PRIVKEY }}']\n",
    "meta-data": "instance-id: {{ INSTANCE }}\n",
    "network-config": "version: 2\n",
}


def renamed(name: str, text: str = DEB12) -> str:
    return text.replace("name: debian-12\n", f"name: {name}\n", 1)


@dataclass
class Case:
    id: str
    args: list[str]  # {t}: the case's folder
    expected: list[str | tuple[str, ...]]  # per problem: what its one line says (fragments)
    files: dict[str, str] = field(default_factory=dict)  # path under {t} -> text ("/": a folder)
    env: dict[str, str] = field(default_factory=dict)


def template(**changes: str | None) -> dict[str, str]:
    files = {**GOOD_TEMPLATE, **changes}
    return {f"tpl/{k}": v for k, v in files.items() if v is not None}


CASES = [
    # --- settings: type and range, from every source -------------------------------
    Case("cpus-zero", ["--vm-cpus=0"], ["--vm-cpus: vm_cpus: must be between 1 and 64, got 0"]),
    Case("cpus-word", ["--vm-cpus=two"], ["--vm-cpus: vm_cpus: expected a whole number, got str 'two'"]),
    Case("memory-small", ["--vm-memory-mb=256"], ["vm_memory_mb: must be at least 512, got 256"]),
    Case("timeout-negative", ["--boot-timeout=-5"], ["boot_timeout: must be at least 1, got -5"]),
    Case("port-range", ["--hyperv-port=70000"], ["hyperv_port: must be between 0 and 65535"]),
    Case("keep-choice", ["--keep=sometimes"], ["keep must be one of never, always, on-failure"]),
    Case("backend-choice", ["--backend=vmware"], ["unknown backend 'vmware'; known backends: qemu, hyperv"]),
    Case("env-bool", [], ["GMI_FORCE: force: expected true or false, got 'maybe'"],
         env={"GMI_FORCE": "maybe"}),
    Case("sha256", ["--iso-sha256=xyz"], ["iso_sha256: expected 64 hex digits"]),
    Case("hostile-out", ["--out={t}/out;touch {t}/CANARY"], [("--out: out: ", "holds ;")]),
    Case("hostile-mirror", ["--mirror=http://x/debian $(touch {t}/CANARY)"],
         [("mirror: 'http://x/debian $(touch", "is not an http(s) URL")]),
    Case("scratch-in-repo", [f"--scratch={REPO}/reports/bad-input-scratch"],
         [("--scratch: scratch ", "is inside the repository")]),
    Case("config-types", ["--harness-config={t}/c.toml"],
         ["c.toml: vm_cpus: expected a whole number", "c.toml: keep: expected a string, got int 3"],
         files={"c.toml": 'vm_cpus = "two"\nkeep = 3\n'}),
    Case("config-unknown-key", ["--harness-config={t}/c.toml"], ["unknown setting(s) kepe"],
         files={"c.toml": "kepe = 'always'\n"}),
    Case("config-not-toml", ["--harness-config={t}/c.toml"], ["is not valid TOML"],
         files={"c.toml": "keep = \n"}),
    Case("config-missing", ["--harness-config={t}/nope.toml"], ["nope.toml does not exist"]),
    Case("config-in-folder", [], ["gmi-harness.toml: accel must be one of auto, kvm, tcg"],
         files={"work/gmi-harness.toml": 'accel = "warp"\n'}),
    # --- the catalogue -----------------------------------------------------------------
    Case("unknown-distros", ["--distro=debian-99", "--distro=fedora-1"],
         ["unknown distro 'debian-99'; known distros: debian-12", "unknown distro 'fedora-1'"]),
    Case("distro-climbs-out", ["--distro=../../etc/passwd"], ["unknown distro '../../etc/passwd'"]),
    Case("distros-missing-folder", ["--distros={t}/nope"], ["--distros {t}/nope: no such folder"]),
    Case("yaml-bomb", ["--distros={t}/cat"], ["bomb.yml: not valid YAML (line 1): anchor &a"],
         files={"cat/bomb.yml": BILLION_LAUGHS}),
    Case("yaml-python-tag", ["--distros={t}/cat"], [("evil.yml: not valid YAML", "python/object")],
         files={"cat/evil.yml": "name: !!python/object/apply:os.system ['touch {t}/CANARY']\n"}),
    Case("name-is-not-the-file", ["--distros={t}/cat", "--distro=acme"],
         ["acme.yml: key 'name': must equal the file name 'acme'"],
         files={"cat/acme.yml": renamed("acme-debian")}),
    Case("two-files-one-name", ["--distros={t}/cat", "--distro=acme"],
         [("unknown distro 'acme' (", "a.yml declares name: acme, but a distro's name is its file "
           "name: rename that file acme.yml)"),
          "a.yml: key 'name': must equal the file name 'a'",
          "b.yml: key 'name': must equal the file name 'b'",
          "distro 'acme' is declared by 2 files"],
         files={"cat/a.yml": renamed("acme"), "cat/b.yml": renamed("acme")}),
    Case("defined-twice", ["--distros={t}/cat"], ["distro 'debian-12' is defined twice"],
         files={"cat/debian-12.yml": DEB12}),
    Case("unknown-key", ["--distros={t}/cat", "--distro=acme"], ["acme.yml: key 'colour': unknown key"],
         files={"cat/acme.yml": renamed("acme") + "colour: blue\n"}),
    Case("wrong-type", ["--distros={t}/cat", "--distro=acme"],
         ["acme.yml: key 'hyperv.memory_mb': expected a whole number, got str"],
         files={"cat/acme.yml": renamed("acme").replace("memory_mb: 4096", "memory_mb: lots")}),
    Case("hostile-value", ["--distros={t}/cat", "--distro=acme"],
         [("acme.yml: key 'admin_user'", "is not a user name")],
         files={"cat/acme.yml": renamed("acme").replace("admin_user: gmiadmin",
                                                        "admin_user: 'x; touch /CANARY'")}),
    # --- seed templates ---------------------------------------------------------------------
    Case("template-missing", ["--seed-template={t}/nope"], ["--seed-template {t}/nope: no such folder"]),
    Case("template-faults", ["--seed-template={t}/tpl"],
         ["user-data line 5: unknown placeholder {{ PASSWORD }}",
          "user-data line 6: '{{' without its closing '}}'"],
         files=template(**{"user-data": GOOD_TEMPLATE["user-data"] + "    passwd: {{ PASSWORD }}\n"
                                        "    shell: {{ SHELL\n"})),
    Case("template-incomplete", ["--seed-template={t}/tpl"],
         ["network-config is missing", "never uses {{ PRIVKEY }}"],
         files=template(**{"network-config": None,
                           "user-data": "#cloud-config\nusers:\n  - name: {{ USERNAME }}\n"})),
    Case("distro-template", ["--distros={t}/cat", "--distro=acme"],
         ["tpl/user-data line 2: unknown placeholder {{ NAME }}"],
         files={"cat/acme.yml": renamed("acme") + "seed_template: ../tpl\n",
                **template(**{"user-data": "#cloud-config\nx: {{ NAME }}\n"
                                           + GOOD_TEMPLATE["user-data"].split("\n", 1)[1]})}),
    # --- what a backend needs ---------------------------------------------------------------
    Case("hyperv-nothing", ["--backend=hyperv"],
         ["--backend=hyperv needs --hyperv-host NAME (or --hyperv-hosts A,B, or --hyperv-local on the "
          "host itself), --hyperv-user ACCOUNT (its password in GMI_HYPERV_PASSWORD or the config "
          "file) and --hyperv-switch NAME (Get-VMSwitch on the host lists them)"]),
    Case("hyperv-certificate", ["--backend=hyperv", "--hyperv-host=hv01", "--hyperv-switch=LAN",
                                "--hyperv-auth=certificate", "--hyperv-plain-http"],
         ["needs --hyperv-cert-pem PATH and --hyperv-cert-key-pem PATH",
          "--hyperv-auth=certificate works only over HTTPS"]),
    Case("hyperv-base", ["--backend=hyperv", "--hyperv-local", "--hyperv-switch=LAN",
                         "--hyperv-base-vm=base", "--hyperv-base-vhdx=D:\\b.vhdx"],
         ["--backend=hyperv needs --hyperv-base-key PATH", "give --hyperv-base-vm or --hyperv-base-vhdx"]),
    Case("hyperv-files", ["--backend=hyperv", "--hyperv-host=hv01", "--hyperv-switch=LAN",
                          "--hyperv-user=me", "--hyperv-ca-bundle={t}/ca.pem"],
         ["--hyperv-ca-bundle: hyperv_ca_bundle: {t}/ca.pem: no such file"]),
    # --- folders ------------------------------------------------------------------------------
    Case("out-is-a-file", ["--out={t}/afile"], ["--out: out: {t}/afile is a file, not a folder"],
         files={"afile": ""}),
    Case("out-under-a-file", ["--out={t}/afile/reports"],
         ["--out: out: {t}/afile/reports cannot be made: {t}/afile is a file"], files={"afile": ""}),
    Case("scratch-unwritable", ["--scratch=/proc/gmi-scratch"],
         ["--scratch: scratch: /proc/gmi-scratch cannot be written: /proc refuses new entries"]),
    Case("credentials-is-a-file", ["--credentials-dir={t}/afile"],
         ["--credentials-dir: credentials_dir: {t}/afile is a file"], files={"afile": ""}),
    Case("index-is-a-folder", ["--gmi={t}/GMI-Debian-12.zip", "--index={t}", "--index-url=https://x/{archive}"],
         ["--index: index: {t} is a folder"], files={"GMI-Debian-12.zip": "not a zip"}),
    # --- install media ----------------------------------------------------------------------
    Case("iso-version-not-a-version", ["--install-method=iso", "--iso-version=banana"],
         ["--iso-version: iso_version: 'banana': is not a point release"]),
    Case("iso-version-other-release", ["--install-method=iso", "--iso-version=13.2.0"],
         ["iso_version: '13.2.0': is not a point release of 12"]),
    Case("iso-version-path", ["--install-method=iso", "--iso-version=../../etc/x"],
         [("iso_version: '../../etc/x'", "is not a point release")]),
    Case("iso-version-no-iso", ["--iso-version=12.2.0"],
         ["pins the official install ISO, but debian-12 installs with debootstrap"]),
    Case("iso-version-base-vm", ["--backend=hyperv", "--hyperv-local", "--hyperv-switch=LAN",
                                 "--hyperv-base-vm=base", "--hyperv-base-key={t}/key",
                                 "--iso-version=12.2.0", "--prepare=vm"],
         ["but debian-12 adopts --hyperv-base-vm: leave --iso-version out"], files={"key": "k"}),
    Case("iso-missing", ["--iso={t}/nope.iso"], ["--iso: iso: {t}/nope.iso: no such file"]),
    Case("install-method", ["--distro=fedora-42", "--install-method=debootstrap"],
         ["fedora-42 cannot be installed with debootstrap"]),
    # --- preparation, archives, combinations -------------------------------------------------
    Case("prepare-typo", ["--prepare=debian-99=vm"],
         ["--prepare: prepare: 'debian-99=vm' names the unknown distro 'debian-99'"]),
    Case("prepare-mode", ["--prepare=fast"], ["is not MODE or DISTRO=MODE"]),
    Case("prepare-chroot-iso", ["--prepare=chroot", "--install-method=iso"],
         ["--prepare=chroot: debian-12 installs with iso, which leaves no root tree"]),
    Case("chroot-off-qemu", ["--backend=hyperv", "--hyperv-local", "--hyperv-switch=LAN",
                             "--prepare=chroot"],
         ["--prepare=chroot: the hyperv backend prepares in the build VM"]),
    Case("gmi-missing", ["--gmi={t}/GMI-Debian-12.zip"],
         ["--gmi {t}/GMI-Debian-12.zip: no such archive file"]),
    Case("index-without-url", ["--gmi={t}/GMI-Debian-12.zip", "--index={t}/index.yml"],
         ["--index needs --index-url"], files={"GMI-Debian-12.zip": "not a zip"}),
    Case("promote", ["--promote"], ["--promote takes the disk-only archives to promote with --gmi",
                                    "--promote needs a backend that writes the .vmcx vmgenie imports"]),
    Case("all-at-once", ["--distro=debian-99", "--vm-cpus=0", "--out={t}/afile", "--keep=x",
                         "--seed-template={t}/nope", "--prepare=debian-98=vm"],
         ["unknown distro 'debian-99'", "vm_cpus: must be", "--out: out:", "keep must be one of",
          "--seed-template {t}/nope: no such folder", "names the unknown distro 'debian-98'"],
         files={"afile": ""}),
]


def _session_processes(session: int, marker: str) -> list[str]:
    """Processes of the run's session, or any whose command line names its folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        sid = int(stat.rsplit(")", 1)[1].split()[3])
        if sid == session or (marker in cmdline and int(proc.name) != os.getpid()):
            found.append(f"{proc.name}: {cmdline}")
    return found


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_at_start_in_one_line_per_problem(tmp_path: Path, case: Case):
    t = str(tmp_path)
    for rel, text in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{t}", t))
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir(exist_ok=True)
    home.mkdir()
    args = [a.replace("{t}", t) for a in case.args]
    if not any(a.startswith(("--distro=", "--gmi=")) for a in args):
        args.append("--distro=debian-12")
    given = {a.split("=", 1)[0] for a in args}
    for option, folder in (("--out", "out"), ("--scratch", "scratch"),
                           ("--credentials-dir", "creds"), ("--iso-cache", "isos")):
        if option not in given:
            args.append(f"{option}={tmp_path / folder}")
    expected = [tuple(f.replace("{t}", t) for f in ((e,) if isinstance(e, str) else e))
                for e in case.expected]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GMI_", "PYTEST_"))}
    env.update(case.env, HOME=str(home), PYTHONPATH=str(REPO))
    before = {name: _tree(tmp_path / name) for name in ("out", "scratch", "creds", "isos", "home")}
    for mode in ([], ["--collect-only", "-q"]):
        proc = subprocess.Popen([sys.executable, "-m", "harness", *args, *mode], cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        out, err = proc.communicate(timeout=300)
        where = f"{case.id} {mode}:\n{out[-2000:]}\n{err[-3000:]}"
        assert proc.returncode == 4, where
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines and all(ln.startswith("ERROR: ") for ln in lines), where
        assert len(lines) == len(expected), where
        for fragments in expected:
            hits = [ln for ln in lines if all(f in ln for f in fragments)]
            assert len(hits) == 1, f"{fragments!r} in {len(hits)} lines; {where}"
        assert "Traceback" not in out + err, where
        assert _session_processes(proc.pid, t) == [], where
        after = {name: _tree(tmp_path / name) for name in before}
        assert after == before, where
        assert not (work / "reports").exists() and not (tmp_path / "CANARY").exists(), where
    assert not Path("/CANARY").exists()
    assert not (REPO / "reports" / "bad-input-scratch").exists()


def test_the_table_covers_at_least_thirty_inputs():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_a_debootstrap_build_as_another_user_is_refused_in_one_line(monkeypatch):
    """(The suite runs as root: the QEMU backend's check asked as if it did not.)"""
    from harness.backends.qemu import backend
    from harness.settings import resolve

    debian, fedora = distro.load("debian-12"), distro.load("fedora-42")
    monkeypatch.setattr(backend.os, "geteuid", lambda: 1000)
    problems = backend.QemuBackend.settings_problems(resolve({}, env={}), [debian, fedora])
    assert problems == ["building debian-12 on the qemu backend needs root (debootstrap and the chroot "
                        "of Step 1): run the same command as root (sudo -E, or a root shell)"]
    # an ISO install needs no root, nor does validating an archive (no build)
    assert backend.QemuBackend.settings_problems(resolve({"install_method": "iso"}, env={}), [debian]) == []
    assert backend.QemuBackend.settings_problems(resolve({}, env={}), []) == []
    monkeypatch.setattr(backend.os, "geteuid", lambda: 0)
    assert backend.QemuBackend.settings_problems(resolve({}, env={}), [debian]) == []
