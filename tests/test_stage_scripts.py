"""The shell the stages send to guests, checked without a guest: run through bash on
this machine where that is safe, or read for what matters."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from harness.stages.s3_cloud_init import datasource_config
from harness.stages.s5_cleanup import grub_settings_script
from harness.stages.s6_seal import SEAL_DONE, SEAL_FAILED, seal_script

from harness import distro, settings
from harness.build import Build, Credentials
from harness.distro.pkgmgr import Apt
from harness.errors import HypervisorError, mask

D = distro.load("debian-12")


def test_grub_settings_rewrites_and_appends(tmp_path: Path):
    f = tmp_path / "grub"
    f.write_text(D.install.grub_defaults)
    script = grub_settings_script(str(f), dict(D.boot.grub_settings), D.boot.kernel_cmdline)
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)  # idempotent
    text = f.read_text()
    assert "GRUB_TIMEOUT=0\n" in text and "GRUB_TIMEOUT=5" not in text
    assert "GRUB_HIDDEN_TIMEOUT_QUIET=true" in text and "GRUB_TIMEOUT_STYLE=hidden" in text
    assert 'GRUB_CMDLINE_LINUX=" console=tty0 console=ttyS0,115200n8"' in text
    assert text.count("GRUB_TIMEOUT=") == 1


def test_datasource_file_restricts_to_nocloud():
    text = datasource_config(D.cloud_init.datasource_list, D.cloud_init.extra_config)
    assert yaml.safe_load(text) == {"datasource_list": ["NoCloud", "None"],
                                    "manage_etc_hosts": True}


def test_datasource_file_sorts_after_installer_leftovers():
    name = D.cloud_init.datasource_file.rsplit("/", 1)[-1]
    others = ["05_logging.cfg", "90_dpkg.cfg", "99-installer.cfg", "99_gmi.cfg", "99-zz.cfg"]
    assert sorted([*others, name])[-1] == name


def test_seal_script_scrubs_and_powers_off_without_secrets(tmp_path: Path):
    s = settings.resolve({}, env={})
    b = Build(D, s, object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b.creds = Credentials.generate(D.admin_user, "c")
    script = seal_script(b)
    for needle in ("cloud-init clean --logs", "usermod -p '!' root",
                   f"usermod -p '!' {D.admin_user}", "truncate -s 0 /etc/machine-id",
                   "rm -f /var/lib/dhcp/*.lease* /var/lib/dhcpcd/*.lease* /etc/ssh/ssh_host_*", "fstrim -a"):
        assert needle in script
    assert script.rstrip().endswith("systemctl poweroff")
    assert script.index(SEAL_DONE) < script.rindex("systemctl poweroff")
    assert "rm -f /etc/shadow- /etc/gshadow-" in script
    assert script.index("journalctl --relinquish-var") < script.index("rm -rf /var/log/journal/*")
    for secret in (b.creds.root_password, b.creds.admin_password):
        assert secret not in script
        assert mask(f"x {secret} y") == "x *** y"
    subprocess.run(["bash", "-n", "-c", script], check=True)


def test_seal_refuses_a_password_hash(tmp_path: Path):
    """The seal's own guard: a hash left in the shadow file fails the script."""
    s = settings.resolve({}, env={})
    b = Build(D, s, object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    guard = next(ln for ln in seal_script(b).splitlines() if "/etc/shadow;" in ln)
    for content, rc in (("root:!:1::::::\n", 0), ("gmiadmin:$6$abc$def:1::::::\n", 1)):
        shadow = tmp_path / "shadow"
        shadow.write_text(content)
        run = subprocess.run(["bash", "-euo", "pipefail", "-c",
                              guard.replace("/etc/shadow", str(shadow))])
        assert run.returncode == rc


def test_remove_other_kernels_keeps_running_one():
    script = Apt().remove_other_kernels()
    fake = ("dpkg-query() { printf 'installed linux-image-6.1.0-50-amd64\\n"
            "installed linux-image-6.1.0-56-amd64\\nconfig-files linux-image-6.1.0-9-amd64\\n'; }\n"
            "uname() { echo 6.1.0-56-amd64; }\napt-get() { echo PURGE \"$@\"; }\n")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", fake + script], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip().endswith("purge linux-image-6.1.0-50-amd64")


def test_without_a_console_a_failed_seal_leaves_the_vm_running(tmp_path: Path):
    """Hyper-V: no serial console to read the failure marker from, so the script does
    not power off on failure, and the harness fails on the VM that stays up."""
    s = settings.resolve({}, env={})
    b = Build(D, s, object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    trap = next(ln for ln in seal_script(b, console=False).splitlines() if ln.startswith("trap "))
    assert "poweroff" not in trap and SEAL_FAILED in trap
    with_console = next(ln for ln in seal_script(b).splitlines() if ln.startswith("trap "))
    assert "systemctl poweroff --no-block" in with_console


def test_seal_fails_when_a_console_less_vm_stays_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import harness.stages.s6_seal as seal_mod

    class Guest:
        live = True

        def put(self, *a: object, **k: object) -> None: ...
        def close(self) -> None: ...

    class StaysUp:
        serial_log = None
        stopped_hard = False

        def wait_stopped(self, timeout: float) -> bool:
            return False

        def serial_tail(self, lines: int = 30) -> str:
            return "(no serial console captured)"

        def shutdown(self, timeout: float) -> None:
            self.stopped_hard = True

    s = settings.resolve({}, env={})
    b = Build(D, s, object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b.creds = Credentials.generate(D.admin_user, "c")
    vm = StaysUp()
    b.vm, b.guest = vm, Guest()  # type: ignore[assignment]
    monkeypatch.setattr(seal_mod, "SEAL_TIMEOUT", 0)
    monkeypatch.setattr(seal_mod, "record_facts", lambda build: None)
    monkeypatch.setattr(Build, "sh", lambda self, script, **kw: "")
    with pytest.raises(HypervisorError, match="did not power itself off"):
        seal_mod.seal(b)
    assert vm.stopped_hard and b.vhdx is None


@pytest.mark.parametrize("present", [
    ("systemd-random-seed.service", "systemd-update-utmp.service"),  # Debian 12
    ("systemd-random-seed.service",),  # Debian 13: systemd without utmp, no wtmpdb
    ("systemd-random-seed.service", "wtmpdb-update-boot.service"),  # wtmpdb installed
])
def test_the_boot_records_go_stopping_only_the_writers_the_image_has(tmp_path: Path, present):
    """On a running system each writer the image has is stopped before its file goes; one
    it does not have is not asked to stop (systemctl would fail: 'Unit ... not loaded',
    as the VM path's debian-13 build did in CI). Run through bash with a systemctl that
    behaves so, the records' paths moved under tmp_path."""
    from harness.stages.s5_cleanup import BOOT_RECORDS, remove_boot_records

    bindir, log = tmp_path / "bin", tmp_path / "systemctl.log"
    bindir.mkdir()
    (bindir / "systemctl").write_text(
        "#!/bin/bash\n"
        f"present=' {' '.join(present)} '\n"
        f"echo \"$*\" >> {log}\n"
        'case " $present " in *" $3 "*) exit 0;; esac\n'
        'echo "Failed to $1 $3: Unit $3 not loaded." >&2; exit 5\n')
    (bindir / "systemctl").chmod(0o755)
    for record in BOOT_RECORDS:
        (tmp_path / record.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / record.lstrip("/")).write_text("the build's")
    script = remove_boot_records(live=True).replace(" /var/", f" {tmp_path}/var/")
    assert "/var/" not in script.replace(f"{tmp_path}/var/", "")  # (never the host's own)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True, env=env)
    assert not [r for r in BOOT_RECORDS if (tmp_path / r.lstrip("/")).exists()]
    stopped = [ln.split()[-1] for ln in log.read_text().splitlines() if ln.startswith("stop ")]
    assert stopped == list(present)


@pytest.mark.parametrize("live", [True, False])
def test_the_seal_writes_the_sboms_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 live: bool):
    """The SBOMs are made from the VHDX once the seal has made it, on the VM path and on
    the chroot path alike (CI's chroot build once had none: the check found no SPDX file)."""
    import harness.stages.s6_seal as seal_mod

    calls: list[str] = []
    monkeypatch.setattr(seal_mod, "record_facts", lambda b: calls.append("facts"))
    monkeypatch.setattr(seal_mod, "seal_vm", lambda b: calls.append("vm"))
    monkeypatch.setattr(seal_mod, "seal_tree", lambda b: calls.append("tree"))
    monkeypatch.setattr(seal_mod.evidence, "after_seal", lambda b: calls.append("sboms"))
    b = Build(D, settings.resolve({}, env={}), object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b.guest = type("G", (), {"live": live})()  # type: ignore[assignment]
    seal_mod.seal(b)
    assert calls == ["facts", "vm" if live else "tree", "sboms"]
