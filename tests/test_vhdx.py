"""The VHDX validator against real qemu-img files and damaged or hand-edited copies."""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from harness.archive import vhdx
from harness.archive.errors import ArchiveError, VhdxError

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="qemu-img not installed (apt-get install -y qemu-utils)")


def qemu_img(path: Path, size: str, options: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", options, str(path), size],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vhdx")
    return {
        "dynamic": qemu_img(d / "dynamic.vhdx", "1G", "subformat=dynamic"),
        "fixed": qemu_img(d / "fixed.vhdx", "64M", "subformat=fixed"),
        "block1m": qemu_img(d / "block1m.vhdx", "1G", "subformat=dynamic,block_size=1M"),
        # qemu marks even a fixed disk's blocks ZERO unless block_state_zero=off
        "fixed_present": qemu_img(d / "present.vhdx", "64M", "subformat=fixed,block_state_zero=off"),
        "with_data": with_data(d),
    }


def with_data(d: Path) -> Path:
    """A dynamic VHDX with data in two blocks, converted from raw as the export does."""
    raw = d / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(64 * MiB)
        f.write(b"\xeb\x63\x90" + bytes(509))
        f.seek(40 * MiB)
        f.write(b"data" * 1024)
    out = d / "with_data.vhdx"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic",
                    str(raw), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def dyn(disks: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the dynamic disk to damage."""
    return Path(shutil.copy(disks["dynamic"], tmp_path / "copy.vhdx"))


def patch(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def flip(path: Path, offset: int) -> None:
    patch(path, offset, bytes([read(path, offset, 1)[0] ^ 0xFF]))


def rewrite_header(path: Path, offset: int, **fields: int) -> None:
    """Change header fields at ``offset`` and store a correct CRC-32C again."""
    block = bytearray(read(path, offset, vhdx.HEADER_SIZE))
    if "version" in fields:
        struct.pack_into("<H", block, 66, fields["version"])
    struct.pack_into("<I", block, 4, 0)
    struct.pack_into("<I", block, 4, vhdx.crc32c(bytes(block)))
    patch(path, offset, bytes(block))


def metadata_layout(path: Path) -> tuple[vhdx.Region, dict[uuid.UUID, vhdx.MetadataItem]]:
    size = path.stat().st_size
    with path.open("rb") as f:
        header = vhdx.read_header(f, size)
        _, meta = vhdx.check_regions(vhdx.read_regions(f, size), header, size)
        return meta, vhdx.read_metadata_table(f, meta, size)


def bat_offset(path: Path) -> int:
    size = path.stat().st_size
    with path.open("rb") as f:
        header = vhdx.read_header(f, size)
        bat, _ = vhdx.check_regions(vhdx.read_regions(f, size), header, size)
    return bat.offset


def add_metadata_entry(path: Path, item_id: uuid.UUID, flags: int) -> None:
    """Append an empty (offset 0, length 0) entry to the metadata table."""
    meta, _ = metadata_layout(path)
    (count,) = struct.unpack("<H", read(path, meta.offset + 10, 2))
    entry = struct.pack("<16sIII4s", item_id.bytes_le, 0, 0, flags, bytes(4))
    patch(path, meta.offset + 32 + 32 * count, entry)
    patch(path, meta.offset + 10, struct.pack("<H", count + 1))


def set_file_parameters(path: Path, block_size: int | None = None, flags: int | None = None) -> None:
    meta, items = metadata_layout(path)
    at = meta.offset + items[vhdx.FILE_PARAMETERS].offset
    old_block, old_flags = struct.unpack("<II", read(path, at, 8))
    patch(path, at, struct.pack("<II", block_size or old_block, old_flags if flags is None else flags))


# --- CRC-32C -------------------------------------------------------------------------

def test_crc32c_check_value_and_rfc3720_vectors():
    assert vhdx.crc32c(b"123456789") == 0xE3069283
    assert vhdx.crc32c(bytes(32)) == 0x8A9136AA
    assert vhdx.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert vhdx.crc32c(bytes(range(32))) == 0x46DD794E


def test_crc32c_streams():
    assert vhdx.crc32c(b"56789", vhdx.crc32c(b"1234")) == 0xE3069283


# --- real qemu-img disks -------------------------------------------------------------

def test_dynamic_disk(disks: dict[str, Path]):
    info = vhdx.inspect(disks["dynamic"])
    assert info.virtual_size == 1024 * MiB
    assert info.block_size in {1 << n for n in range(20, 29)}
    assert info.logical_sector_size in (512, 4096)
    assert not info.fixed and not info.differencing and not info.log_pending
    assert info.header_sequence > 0
    vhdx.require_dynamic(info)


def test_fixed_disk_is_recognised_and_refused(disks: dict[str, Path]):
    info = vhdx.inspect(disks["fixed"])
    assert info.fixed and not info.differencing
    assert info.virtual_size == 64 * MiB
    with pytest.raises(VhdxError, match="fixed-size disk"):
        vhdx.require_dynamic(info)


def test_block_size_option(disks: dict[str, Path]):
    info = vhdx.inspect(disks["block1m"])
    assert info.block_size == MiB
    assert info.virtual_size == 1024 * MiB


def test_guids_are_stored_little_endian(disks: dict[str, Path]):
    first = read(disks["dynamic"], vhdx.REGION_OFFSETS[0] + 16, 16)
    assert uuid.UUID(bytes_le=first) in (vhdx.BAT_GUID, vhdx.METADATA_GUID)
    assert first not in (vhdx.BAT_GUID.bytes, vhdx.METADATA_GUID.bytes)


def test_current_header_has_the_highest_sequence(dyn: Path):
    sequences = [struct.unpack("<Q", read(dyn, off + 8, 8))[0] for off in vhdx.HEADER_OFFSETS]
    assert vhdx.inspect(dyn).header_sequence == max(sequences)


def test_errors_are_archive_errors_and_one_line():
    assert issubclass(VhdxError, ArchiveError)
    with pytest.raises(VhdxError) as e:
        vhdx.require_dynamic(vhdx.VhdxInfo(MiB, MiB, 512, fixed=False, differencing=True,
                                           header_sequence=1))
    assert "\n" not in str(e.value) and "differencing" in str(e.value)


# --- damaged copies ------------------------------------------------------------------

def test_flipped_header_byte(dyn: Path):
    flip(dyn, vhdx.HEADER_OFFSETS[0] + 100)
    with pytest.raises(VhdxError, match=r"VHDX header checksum mismatch: header 1 \(at 64 KiB\)"):
        vhdx.inspect(dyn)
    # The spec's reader falls back to the other, valid copy.
    assert vhdx.inspect(dyn, strict=False).virtual_size == 1024 * MiB


def test_both_headers_damaged_fail_even_when_lenient(dyn: Path):
    for off in vhdx.HEADER_OFFSETS:
        flip(dyn, off + 20)
    with pytest.raises(VhdxError, match="VHDX header checksum mismatch"):
        vhdx.inspect(dyn, strict=False)


def test_header_signature_damaged(dyn: Path):
    patch(dyn, vhdx.HEADER_OFFSETS[1], b"HEAD")
    with pytest.raises(VhdxError, match=r"header 2 .*signature is b'HEAD'"):
        vhdx.inspect(dyn)


def test_header_version_must_be_1(dyn: Path):
    for off in vhdx.HEADER_OFFSETS:
        rewrite_header(dyn, off, version=2)
    with pytest.raises(VhdxError, match="header version is 2, not 1"):
        vhdx.inspect(dyn)


def test_flipped_region_table_byte(dyn: Path):
    flip(dyn, vhdx.REGION_OFFSETS[0] + 40)
    with pytest.raises(VhdxError, match="VHDX region table checksum mismatch: table 1"):
        vhdx.inspect(dyn)
    assert vhdx.inspect(dyn, strict=False).block_size > 0


def test_truncated_to_100_kib(dyn: Path):
    with dyn.open("r+b") as f:
        f.truncate(100 * 1024)
    with pytest.raises(VhdxError, match="VHDX is truncated: 102400 bytes"):
        vhdx.inspect(dyn)


def test_truncated_inside_the_metadata_region(dyn: Path):
    meta, _ = metadata_layout(dyn)
    with dyn.open("r+b") as f:
        f.truncate(meta.offset + 1000)
    with pytest.raises(VhdxError, match=r"VHDX is truncated: the .* region ends at byte"):
        vhdx.inspect(dyn)


def test_fixed_disk_with_present_blocks(disks: dict[str, Path]):
    info = vhdx.inspect(disks["fixed_present"])
    assert info.fixed and info.virtual_size == 64 * MiB


def test_dynamic_disk_with_data(disks: dict[str, Path]):
    info = vhdx.inspect(disks["with_data"])
    assert not info.fixed and info.virtual_size == 64 * MiB


def test_truncated_dynamic_disk_loses_its_last_block(disks: dict[str, Path], tmp_path: Path):
    cut = Path(shutil.copy(disks["with_data"], tmp_path / "cut.vhdx"))
    with cut.open("r+b") as f:
        f.truncate(cut.stat().st_size - MiB)
    with pytest.raises(VhdxError, match=r"VHDX is truncated: block \d+ ends at byte"):
        vhdx.inspect(cut)


def test_truncated_fixed_disk_loses_blocks(disks: dict[str, Path], tmp_path: Path):
    cut = Path(shutil.copy(disks["fixed_present"], tmp_path / "cut.vhdx"))
    with cut.open("r+b") as f:
        f.truncate(40 * MiB)
    with pytest.raises(VhdxError, match=r"VHDX is truncated: block \d+ ends at byte"):
        vhdx.inspect(cut)


def test_plain_text_file(tmp_path: Path):
    p = tmp_path / "notes.vhdx"
    p.write_text("hello, world\n" * 100)
    with pytest.raises(VhdxError, match=r"not a VHDX: signature is b'hello, w'"):
        vhdx.inspect(p)


def test_zero_length_file(tmp_path: Path):
    p = tmp_path / "empty.vhdx"
    p.touch()
    with pytest.raises(VhdxError, match="not a VHDX: the file is empty"):
        vhdx.inspect(p)


def test_missing_file(tmp_path: Path):
    with pytest.raises(VhdxError, match=r"cannot read VHDX nope\.vhdx"):
        vhdx.inspect(tmp_path / "nope.vhdx")


def test_vhd_v1_footer_is_not_a_vhdx(tmp_path: Path):
    p = tmp_path / "old.vhd"
    p.write_bytes(b"conectix" + bytes(2 * MiB))
    with pytest.raises(VhdxError, match=r"not a VHDX: signature is b'conectix'"):
        vhdx.inspect(p)


# --- hand-edited metadata and BAT ----------------------------------------------------

def test_differencing_disk_is_recognised_and_refused(dyn: Path):
    set_file_parameters(dyn, flags=0b10)  # HasParent
    add_metadata_entry(dyn, vhdx.PARENT_LOCATOR, flags=0b100)
    info = vhdx.inspect(dyn)
    assert info.differencing and not info.fixed
    with pytest.raises(VhdxError, match="differencing disk"):
        vhdx.require_dynamic(info)


def test_has_parent_without_locator(dyn: Path):
    set_file_parameters(dyn, flags=0b10)
    with pytest.raises(VhdxError, match="has a parent but has no Parent Locator"):
        vhdx.inspect(dyn)


def test_unknown_required_metadata_item(dyn: Path):
    add_metadata_entry(dyn, uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"), flags=0b100)
    with pytest.raises(VhdxError, match="requires a metadata item this reader does not know"):
        vhdx.inspect(dyn)


def test_unknown_optional_metadata_item_is_fine(dyn: Path):
    add_metadata_entry(dyn, uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"), flags=0)
    assert not vhdx.inspect(dyn).differencing


def test_block_size_not_a_power_of_two(dyn: Path):
    set_file_parameters(dyn, block_size=3 * MiB)
    with pytest.raises(VhdxError, match="block size 3145728 is not a power of 2"):
        vhdx.inspect(dyn)


def test_metadata_signature(dyn: Path):
    meta, _ = metadata_layout(dyn)
    patch(dyn, meta.offset, b"metaXXXX")
    with pytest.raises(VhdxError, match="metadata table signature is b'metaXXXX'"):
        vhdx.inspect(dyn)


def test_partially_present_block_in_a_dynamic_disk(dyn: Path):
    patch(dyn, bat_offset(dyn), struct.pack("<Q", vhdx.PARTIALLY_PRESENT | (4 << 20)))
    with pytest.raises(VhdxError, match="block 0 has state 7, invalid for a non-differencing disk"):
        vhdx.inspect(dyn)


def test_allocated_block_beyond_end_of_file(dyn: Path):
    patch(dyn, bat_offset(dyn), struct.pack("<Q", vhdx.FULLY_PRESENT | (100 << 20)))
    with pytest.raises(VhdxError, match=r"VHDX is truncated: block 0 ends at byte"):
        vhdx.inspect(dyn)


def test_bat_entry_counts_follow_the_spec():
    p = vhdx.DiskParameters(block_size=32 * MiB, leave_allocated=False, has_parent=False,
                            virtual_size=127 * 1024 * MiB, logical_sector_size=512)
    assert vhdx.chunk_ratio(p) == 128
    assert vhdx.bat_entries(p) == 4064 + (4064 - 1) // 128
    diff = vhdx.DiskParameters(32 * MiB, False, True, 127 * 1024 * MiB, 512)
    assert vhdx.bat_entries(diff) == 32 * 129
