"""The media an answer file travels on: a small ISO volume with a given label
(``cidata`` for subiquity, ``OEMDRV`` for Anaconda and AutoYaST), an initrd with the
preseed appended (d-i reads ``/preseed.cfg`` from its initrd by itself), or a
remastered install ISO (the preseed at its root and a GRUB menu that uses it).
Everything is read back with pycdlib in the tests."""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pycdlib

from harness.errors import GmiError, MissingToolError
from harness.host import hostos


def _iso9660_name(name: str) -> str:
    base, _, ext = name.upper().partition(".")
    base = re.sub(r"[^A-Z0-9_]", "_", base)[:8] or "_"
    ext = re.sub(r"[^A-Z0-9_]", "_", ext)[:3]
    return f"/{base}.{ext};1"


def write_volume(files: dict[str, str], path: Path, label: str) -> Path:
    """An ISO 9660 volume (Joliet and Rock Ridge names) labelled ``label`` holding
    ``files`` at its root; atomic (a temp file renamed in place)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=label)
    for name, text in files.items():
        data = text.encode()
        iso.add_fp(io.BytesIO(data), len(data), _iso9660_name(name), rr_name=name,
                   joliet_path="/" + name)
    tmp = path.with_name(path.name + ".part")
    iso.write(str(tmp))
    iso.close()
    os.replace(tmp, path)
    return path


def read_volume(path: Path) -> tuple[str, dict[str, str]]:
    """The volume label and the root files (Rock Ridge names) of an ISO volume."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, str] = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot() or child.is_dir():
                continue
            name = child.rock_ridge.name().decode()
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            files[name] = out.getvalue().decode()
        return label, files
    finally:
        iso.close()


def volume_label(path: Path) -> str:
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise GmiError(f"{path} is not an ISO 9660 image ({exc}): check --iso") from None
    try:
        return str(iso.pvd.volume_identifier.decode().strip())
    finally:
        iso.close()


def extract(iso_path: Path, inside: str, out: Path) -> Path:
    """Copy the file ``inside`` (an absolute path on the ISO) to ``out``."""
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        tried = []
        for kind in ("rr_path", "joliet_path", "iso_path"):
            if kind == "rr_path" and not iso.has_rock_ridge():
                continue
            if kind == "joliet_path" and not iso.has_joliet():
                continue
            where = inside if kind != "iso_path" else inside.upper() + ";1"
            try:
                iso.get_file_from_iso(str(out), **{kind: where})
                return out
            except pycdlib.pycdlibexception.PyCdlibException as exc:
                tried.append(f"{kind}: {exc}")
        raise GmiError(f"{inside} is not on {iso_path.name} ({'; '.join(tried) or 'no names'}): "
                       "check install.kernel / install.initrd in the distro's YAML")
    finally:
        iso.close()


def newc_cpio(files: dict[str, bytes]) -> bytes:
    """A cpio archive (newc, as the kernel unpacks into its initramfs) of regular
    files at the root, mode 0644."""
    out = io.BytesIO()

    def entry(name: str, data: bytes, mode: int, ino: int) -> None:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, data) in enumerate(files.items(), start=1):
        entry(name, data, 0o100644, ino)
    entry("TRAILER!!!", b"", 0, 0)
    return out.getvalue()


def append_to_initrd(initrd: Path, files: dict[str, str], out: Path) -> Path:
    """``initrd`` followed by a gzip'd cpio of ``files``: the kernel unpacks both, the
    later one on top (the d-i manual's "adding a preseed file to the initrd")."""
    extra = gzip.compress(newc_cpio({k: v.encode() for k, v in files.items()}), mtime=0)
    with out.open("wb") as f, initrd.open("rb") as src:
        shutil.copyfileobj(src, f)
        f.write(extra)
    return out


def remaster(iso: Path, out: Path, files: dict[str, str], grub_cfg: str) -> Path:
    """A copy of ``iso`` with ``files`` at its root and ``grub_cfg`` as
    boot/grub/grub.cfg, boot records replayed as they were (xorriso)."""
    if shutil.which("xorriso") is None:
        raise MissingToolError("xorriso", "xorriso", hostos.current().install_hint("xorriso", "xorriso"))
    staging = out.with_name(out.name + ".files")
    staging.mkdir(parents=True, exist_ok=True)
    maps: list[str] = []
    for name, text in {**files, "grub.cfg": grub_cfg}.items():
        (staging / name).write_text(text)
        maps += ["-map", str(staging / name), "/boot/grub/grub.cfg" if name == "grub.cfg" else "/" + name]
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    proc = subprocess.run(["xorriso", "-abort_on", "FAILURE", "-indev", str(iso), "-outdev", str(tmp),
                           *maps, "-boot_image", "any", "replay"],
                          capture_output=True, text=True)
    shutil.rmtree(staging, ignore_errors=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise GmiError(f"remastering {iso.name} failed: {last[0]}")
    os.replace(tmp, out)
    return out
