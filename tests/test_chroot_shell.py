"""The chroot shell (--prepare=chroot) on a real root tree: the host's own bash and
coreutils copied with their libraries into a folder, entered with unshare + chroot as
the stages enter the new system's tree."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from host_tools import needs

from harness.errors import GuestCommandError
from harness.rootfs.chroot import ChrootShell, ImageDisk

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and mount namespaces need root"),
    needs("unshare"),
]

TOOLS = ("bash", "sh", "cat", "mkdir", "dirname", "chmod", "sleep", "ls", "env", "readlink", "head", "wc")


def mini_root(root: Path) -> Path:
    """A root tree with the host's TOOLS and the libraries they load."""
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        path = Path(shutil.which(tool) or f"/bin/{tool}").resolve()
        needs = [path]
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        needs += [Path(p) for p in re.findall(r"(/\S+) \(0x", out)]
        for src in needs:
            for dst in (root / str(src).lstrip("/"), root / "bin" / tool if src == path else None):
                if dst is not None and not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
    for lib in ("lib", "lib64"):  # usrmerge: /lib -> usr/lib on the host
        if (root / "usr" / lib).exists() and not (root / lib).exists():
            (root / lib).symlink_to(f"usr/{lib}")
    return root


@pytest.fixture
def shell(tmp_path: Path) -> ChrootShell:
    times: list[tuple[str, float]] = []
    sh = ChrootShell(mini_root(tmp_path / "root"), logger=logging.getLogger("test.chroot"),
                     timer=lambda kind, s: times.append((kind, s)))
    sh.times = times  # type: ignore[attr-defined]
    return sh


def test_a_script_runs_in_the_tree_with_bash_strict_mode(shell: ChrootShell):
    (shell.root / "etc/marker").write_text("inside\n")
    r = shell.run("cat /etc/marker; echo err >&2; echo $HOME; [ -d /proc/self ] && echo proc")
    assert r.rc == 0 and r.output.splitlines() == ["inside", "err", "/root", "proc"]
    # set -euo pipefail: a failing command in a pipeline fails the script
    assert shell.run("false | cat; echo not reached", check=False).rc != 0
    assert shell.times[-1][0] == "guest"  # type: ignore[attr-defined]


def test_the_hosts_environment_stays_out(shell: ChrootShell, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GMI_TEST_SECRET", "host-only")
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    s = ChrootShell(shell.root, logger=logging.getLogger("test.chroot"))
    out = s.run("env").output
    assert "GMI_TEST_SECRET" not in out and "http_proxy=http://proxy.example:3128" in out


def test_a_failure_is_one_line_with_the_last_output(shell: ChrootShell):
    with pytest.raises(GuestCommandError) as err:
        shell.run("echo first; echo 'the reason'; exit 3", what="a step")
    msg = str(err.value)
    assert "'a step' failed in chroot" in msg and "exit code 3: the reason" in msg
    assert "\n" not in msg


def test_a_command_past_its_timeout_is_killed(shell: ChrootShell):
    # (a duration no other process on a shared machine sleeps for)
    nap = f"sleep 30.{os.getpid()}"
    with pytest.raises(GuestCommandError, match="did not finish in 1 s"):
        shell.run(nap, timeout=1, what="sleeps")
    out = subprocess.run(["pgrep", "-f", nap], capture_output=True, text=True).stdout
    assert not out.strip()


def test_nothing_stays_mounted_in_the_tree(shell: ChrootShell):
    shell.run("ls /proc/self >/dev/null; ls /dev/null")
    mounts = Path("/proc/self/mounts").read_text()
    assert str(shell.root) not in mounts


def test_put_resolves_symlinks_inside_the_tree_never_on_the_host(shell: ChrootShell, tmp_path: Path):
    host_file = tmp_path / "host-file"
    host_file.write_text("the host's\n")
    # an absolute symlink in the tree that names a host path
    (shell.root / "etc/link").symlink_to(str(host_file))
    inside = shell.root / str(host_file).lstrip("/")
    inside.parent.mkdir(parents=True)
    shell.put("/etc/link", "written by the stage\n", mode=0o600)
    assert host_file.read_text() == "the host's\n"
    assert inside.read_text() == "written by the stage\n"
    assert oct(inside.stat().st_mode & 0o777) == "0o600"


def test_a_removed_tree_is_said_plainly(shell: ChrootShell):
    shutil.rmtree(shell.root)
    with pytest.raises(GuestCommandError, match="is gone"):
        shell.run("true")


def test_the_image_disk_is_what_the_tree_sees(tmp_path: Path):
    """update-grub in the tree must describe the image, never this host (local build
    notes #14): grub-probe answers for the image's root filesystem, /dev has no disk of
    the host's and names the image's root by UUID (GRUB writes root=UUID= only when it
    is there), the host's firmware is hidden; all of it gone after the command."""
    root = mini_root(tmp_path / "root")
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/grub-probe").write_text("#!/bin/sh\necho the-host\n")
    (root / "usr/sbin/grub-probe").chmod(0o755)
    uuid = "0d7c3f52-1111-4222-8333-944455556666"
    sh = ChrootShell(root, logger=logging.getLogger("test.chroot"),
                     image=ImageDisk.write(uuid, tmp_path))
    out = sh.run("/usr/sbin/grub-probe --target=fs_uuid /; /usr/sbin/grub-probe -t device /; "
                 "/usr/sbin/grub-probe --device /dev/sda2 --target=fs; ls /dev/disk/by-uuid; ls /dev; "
                 "ls -A /sys/firmware | wc -l; echo x > /dev/null; head -c 3 /dev/urandom | wc -c").output
    lines = out.splitlines()
    assert lines[:4] == [uuid, "/dev/sda2", "ext2", uuid]
    host_disks = {p.name for p in Path("/dev").iterdir() if re.fullmatch(r"(sd|vd|nvme|xvd)\w+", p.name)}
    assert not host_disks & set(lines), "a disk of this host is visible in the tree"
    assert lines[-2:] == ["0", "3"]
    assert sh.run("/usr/sbin/grub-probe -t nonsense /", check=False).rc == 1
    # the tree itself was not changed: outside the namespace its grub-probe is its own
    assert (root / "usr/sbin/grub-probe").read_text().endswith("echo the-host\n")
    assert not list((root / "dev").iterdir())
