"""The empty ext4 journal of a powered-off build disk is given back to the host
(issue #14), on real filesystems made here with the same tools as Step 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import HypervisorError
from harness.rootfs import journal
from harness.rootfs.debootstrap import ext4_extended

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sfdisk", "mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck",
                                      "fallocate")),
    reason="needs e2fsprogs, fdisk and util-linux (make setup installs them)")


def make_disk(tmp_path: Path) -> tuple[Path, int]:
    """A GPT disk like Step 1's (ESP, then root), its journal's log blocks written
    over with data as a build leaves them; returns the disk and the root's offset."""
    disk = tmp_path / "build.raw"
    with disk.open("wb") as f:
        f.truncate(600 * MiB)
    layout = ("label: gpt\nstart=1MiB, size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
              f"start=9MiB, size=580MiB, type={journal.LINUX_FS}\n")
    subprocess.run(["sfdisk", "--quiet", str(disk)], input=layout, text=True, check=True)
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("gmi\n")
    offset = 9 * MiB
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), "-E", ext4_extended(offset),
                    str(disk), "580M"], check=True)  # as Step 1 makes it
    extents, block = journal.log_extents(f"{disk}?offset={offset}") or ([], 0)
    assert extents, "a fresh clean filesystem has an empty journal"
    with disk.open("r+b") as f:  # what a build leaves in the log: old transactions
        for first, last in extents:
            f.seek(offset + first * block)
            f.write(os.urandom((last - first + 1) * block))
    return disk, offset


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_the_log_goes_and_the_filesystem_stays_consistent(tmp_path: Path) -> None:
    disk, offset = make_disk(tmp_path)
    before = allocated(disk)
    freed = journal.discard_journal(disk)
    assert freed > 15 * MiB and allocated(disk) == before - freed
    spec = f"{disk}?offset={offset}"
    subprocess.run(["e2fsck", "-fn", spec], check=True, capture_output=True)
    # the files are still there, and the journal superblock too
    out = subprocess.run(["debugfs", "-R", "cat /etc/hostname", spec], capture_output=True,
                         text=True, check=True).stdout
    assert out == "gmi\n"
    assert journal.log_extents(spec), "the journal is still a valid, empty journal"
    assert journal.discard_journal(disk) == 0  # nothing left to give back


@pytest.mark.parametrize("damage", [
    "feature needs_recovery",  # a journal that still holds transactions
    "ssv state 0",  # not cleanly unmounted
])
def test_a_filesystem_that_is_not_clean_is_left_as_it_is(tmp_path: Path, damage: str) -> None:
    disk, offset = make_disk(tmp_path)
    subprocess.run(["debugfs", "-w", "-R", damage, f"{disk}?offset={offset}"], check=True,
                   capture_output=True)
    before = allocated(disk)
    assert journal.discard_journal(disk) == 0
    assert allocated(disk) == before


def test_a_disk_without_a_linux_partition_is_left_as_it_is(tmp_path: Path) -> None:
    disk = tmp_path / "blank.raw"
    disk.write_bytes(b"\0" * MiB)
    assert journal.discard_journal(disk) == 0


def test_a_filesystem_that_fails_its_check_is_an_error(tmp_path: Path, monkeypatch) -> None:
    disk, _ = make_disk(tmp_path)
    real = journal._run

    def failing_fsck(*cmd: str) -> subprocess.CompletedProcess[str]:
        if cmd[0] == "e2fsck":
            return subprocess.CompletedProcess(cmd, 4, "", "root: ********** WARNING: bad\n")
        return real(*cmd)

    monkeypatch.setattr(journal, "_run", failing_fsck)
    with pytest.raises(HypervisorError, match="fails e2fsck -fn after its journal"):
        journal.discard_journal(disk)


@pytest.mark.skipif(shutil.which("qemu-img") is None,
                    reason="qemu-img not installed (apt-get install -y qemu-utils)")
def test_step1s_root_filesystem_keeps_its_metadata_together(tmp_path: Path) -> None:
    """Step 1's mkfs options on a 250 GB sparse disk: the block groups' metadata is packed
    at the start, so the empty filesystem fills far fewer 1 MiB VHDX blocks than ext4's
    default layout (which spreads bitmaps and inode tables over the whole disk)."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("gmi\n")

    def vhdx_bytes(extended: str) -> int:
        disk, out = tmp_path / "d.raw", tmp_path / "d.vhdx"
        disk.unlink(missing_ok=True)
        with disk.open("wb") as f:
            f.truncate(250 * 1024 * MiB)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), "-E", extended, str(disk),
                        f"{250 * 1024 - 1}M"], check=True)
        subprocess.run(["e2fsck", "-fn", f"{disk}?offset={MiB}"], check=True, capture_output=True)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o",
                        "subformat=dynamic,block_size=1M", str(disk), str(out)], check=True)
        return out.stat().st_size

    packed = vhdx_bytes(ext4_extended(MiB))
    spread = vhdx_bytes(ext4_extended(MiB).replace(",packed_meta_blocks=1", ""))
    assert packed * 3 < spread, (packed, spread)  # measured: 33 MiB against 155 MiB
