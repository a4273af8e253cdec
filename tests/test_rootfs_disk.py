"""The image's disk made from a root tree without mounting anything (harness/rootfs/):
the ESP is the tree's /boot/efi folder until then (what grub-install writes, the
fallback path the stages copy), written into the FAT image with mtools; the root
filesystem holds the empty mount point; its used bytes are read as df counts them.
Real mkfs.ext4, mkfs.vfat, sfdisk and mtools on a small sparse disk."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
from pathlib import Path

import pytest

from harness import distro, settings
from harness.build import Build
from harness.rootfs import debootstrap, journal

D = distro.load("debian-12")
TOOLS = ("mkfs.ext4", "mkfs.vfat", "mcopy", "mdir", "mtype", "sfdisk", "dumpe2fs", "debugfs")
pytestmark = pytest.mark.skipif(
    any(subprocess.run(["sh", "-c", f"command -v {t}"], capture_output=True).returncode
        for t in TOOLS), reason=f"needs {', '.join(TOOLS)} (make setup installs them)")
ROOT_UUID = "0d7c3f52-1111-4222-8333-944455556666"


def tree(root: Path) -> Path:
    """A root tree with what the ESP is made from: the signed shim, MokManager and GRUB."""
    for rel, body in ((f"{debootstrap.SHIM_DIR}/shimx64.efi.signed", b"shim v2"),
                      (f"{debootstrap.SHIM_DIR}/mmx64.efi.signed", b"mok manager"),
                      (f"{debootstrap.SHIM_DIR}/BOOTX64.CSV", b"shimx64.efi,debian\n"),
                      (debootstrap.GRUB_SIGNED, b"grub 2.06 signed"),
                      ("etc/hostname", b"debian-12\n")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


def small_build(tmp_path: Path) -> Build:
    d = dataclasses.replace(D, hyperv=dataclasses.replace(D.hyperv, disk_gb=1),
                            install=dataclasses.replace(D.install, esp_size_mib=40))
    b = Build(d, settings.resolve({}, env={}), object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b.log = logging.getLogger("test.rootfs")
    return b


def mtype(esp_disk: Path, offset: int, path: str) -> bytes:
    return subprocess.run(["mtype", "-i", f"{esp_disk}@@{offset}", f"::/{path}"], check=True,
                          capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout


def test_the_esp_is_the_trees_folder_until_the_disk_is_made(tmp_path: Path):
    b = small_build(tmp_path)
    root = tree(tmp_path / "rootfs")
    debootstrap._stage_esp(b, root, ROOT_UUID)
    esp = root / debootstrap.ESP_DIR
    # what grub-install --uefi-secure-boot writes, and the removable-media path
    assert (esp / "EFI/debian/shimx64.efi").read_bytes() == b"shim v2"
    assert (esp / "EFI/BOOT/BOOTX64.EFI").read_bytes() == b"shim v2"
    assert (esp / "EFI/BOOT/grubx64.efi").read_bytes() == b"grub 2.06 signed"
    assert f"search.fs_uuid {ROOT_UUID} root" in (esp / "EFI/debian/grub.cfg").read_text()
    # a stage's copy to the fallback path (as on a mounted ESP) is what the disk gets
    (esp / "EFI/BOOT/grubx64.efi").write_bytes(b"grub 2.06 signed, upgraded")

    disk = tmp_path / "build.raw"
    debootstrap._assemble_disk(b, root, disk, ROOT_UUID, "ABCD1234")
    assert disk.stat().st_blocks * 512 < disk.stat().st_size / 4, "the disk is not sparse"
    at = 1024 * 1024  # the ESP starts at 1 MiB
    assert mtype(disk, at, "EFI/BOOT/BOOTX64.EFI") == b"shim v2"
    assert mtype(disk, at, "EFI/BOOT/grubx64.efi") == b"grub 2.06 signed, upgraded"
    assert mtype(disk, at, "EFI/debian/mmx64.efi") == b"mok manager"
    assert b"configfile" in mtype(disk, at, "EFI/BOOT/grub.cfg")
    # the root filesystem: the image's UUID, an empty mount point for the ESP, the files
    offset = journal.root_offset(disk)
    assert offset == (1 + 40) * 1024 * 1024
    spec = f"{disk}?offset={offset}"
    head = subprocess.run(["dumpe2fs", "-h", spec], capture_output=True, text=True).stdout
    assert f"Filesystem UUID:          {ROOT_UUID}" in head
    listing = subprocess.run(["debugfs", "-R", "ls -l /boot/efi", spec], capture_output=True,
                             text=True).stdout
    assert "EFI" not in listing
    assert subprocess.run(["debugfs", "-R", "cat /etc/hostname", spec], capture_output=True,
                          text=True).stdout == "debian-12\n"
    used = journal.used_bytes(disk)
    assert used is not None and 0 < used < 8 * 1024 * 1024  # a handful of small files
