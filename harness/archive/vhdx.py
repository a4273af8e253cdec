"""A read-only VHDX validator per Microsoft's [MS-VHDX] (v2 virtual hard disk), in pure Python.

What it checks, in file order:

- the file type identifier ``vhdxfile`` at offset 0;
- the two 4 KiB headers at 64 KiB and 128 KiB (signature ``head``, CRC-32C over the
  header with its checksum field zeroed, version 1); the current header is the valid
  one with the highest sequence number;
- the two 64 KiB region tables at 192 KiB and 256 KiB (signature ``regi``, CRC-32C),
  which must locate the BAT and the metadata region, MB-aligned, inside the file and
  not overlapping each other or the log;
- the metadata table (signature ``metadata``) and its File Parameters, Virtual Disk
  Size and Logical Sector Size items;
- the BAT: large enough for the disk, valid block states for the disk's type, and
  every allocated payload block inside the file (a cut-off copy fails here).

``strict`` (the default) also refuses a file where one of the two headers or region
tables is damaged. The spec lets a reader fall back to the other copy, and Hyper-V
does; but a freshly written, cleanly closed VHDX has both copies valid, so a bad copy
in a GMI means the file was damaged after it was written.

GUIDs are stored on disk as Windows GUIDs (first three fields little-endian), so they
are read with ``uuid.UUID(bytes_le=...)``.

Size: one module on purpose: the VHDX format's checks (headers, region tables, BAT,
metadata) follow the specification's sections in order and share its structures.
"""

from __future__ import annotations

import itertools
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.archive.errors import VhdxError

KiB = 1024
MiB = 1024 * KiB
TiB = 1024 * 1024 * MiB

SIGNATURE = b"vhdxfile"
HEADER_SIGNATURE = b"head"
REGION_SIGNATURE = b"regi"
METADATA_SIGNATURE = b"metadata"
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB
REGION_OFFSETS = (192 * KiB, 256 * KiB)
REGION_TABLE_SIZE = 64 * KiB
HEADER_SECTION = 1 * MiB
METADATA_TABLE_SIZE = 64 * KiB
MAX_ENTRIES = 2047
MAX_VIRTUAL_SIZE = 64 * TiB

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
VIRTUAL_DISK_ID = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_METADATA = {
    FILE_PARAMETERS: "File Parameters", VIRTUAL_DISK_SIZE: "Virtual Disk Size",
    VIRTUAL_DISK_ID: "Virtual Disk ID", LOGICAL_SECTOR_SIZE: "Logical Sector Size",
    PHYSICAL_SECTOR_SIZE: "Physical Sector Size", PARENT_LOCATOR: "Parent Locator",
}

# BAT entry states ([MS-VHDX] 2.5.1.1 and 2.5.1.2).
PAYLOAD_STATES = {0, 1, 2, 3, 6, 7}
FULLY_PRESENT, PARTIALLY_PRESENT = 6, 7
SB_NOT_PRESENT, SB_PRESENT = 0, 6

REDO = "the file is damaged: rebuild the image or copy/extract it again"

_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
_REGION_HEADER = struct.Struct("<4sIII")
_REGION_ENTRY = struct.Struct("<16sQII")
_METADATA_HEADER = struct.Struct("<8sHH20s")
_METADATA_ENTRY = struct.Struct("<16sIII4s")


# --- CRC-32C (Castagnoli) ------------------------------------------------------------

def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli, reflected poly 0x1EDC6F41); ``crc32c(b"123456789") == 0xE3069283``.

    A byte loop (about 15 MB/s): VHDX only checksums a few hundred KiB per file.
    """
    table = _CRC32C
    crc ^= 0xFFFFFFFF
    for byte in memoryview(data).cast("B"):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _checksum_ok(block: bytes) -> bool:
    """A VHDX structure's CRC-32C (bytes 4..7) matches the block with that field zeroed."""
    (stored,) = struct.unpack_from("<I", block, 4)
    return crc32c(block[:4] + b"\0\0\0\0" + block[8:]) == stored


# --- results -------------------------------------------------------------------------

@dataclass(frozen=True)
class VhdxInfo:
    """What a VHDX is, as its current header and metadata say."""

    virtual_size: int
    block_size: int
    logical_sector_size: int
    fixed: bool
    differencing: bool
    header_sequence: int
    log_pending: bool = False  # a non-zero LogGuid: the log may need replaying on open


@dataclass(frozen=True)
class Header:
    sequence: int
    log_guid: uuid.UUID
    log_version: int
    version: int
    log_length: int
    log_offset: int


@dataclass(frozen=True)
class Region:
    guid: uuid.UUID
    offset: int
    length: int
    required: bool


@dataclass(frozen=True)
class MetadataItem:
    item_id: uuid.UUID
    offset: int
    length: int
    is_required: bool


# --- low-level reading ---------------------------------------------------------------

def _read_at(f: BinaryIO, offset: int, size: int, what: str, file_size: int) -> bytes:
    """Exactly ``size`` bytes at ``offset``, or a "truncated" error naming ``what``."""
    if offset + size > file_size:
        raise VhdxError(f"VHDX is truncated: {what} ends at byte {offset + size} but the file "
                        f"has {file_size} bytes; {REDO}")
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise VhdxError(f"VHDX is truncated: short read of {what}; {REDO}")
    return data


def _fmt_offset(offset: int) -> str:
    return f"{offset // KiB} KiB"


def check_signature(f: BinaryIO, file_size: int) -> None:
    """The file type identifier: ``vhdxfile`` at offset 0, then room for the header section."""
    if file_size == 0:
        raise VhdxError("not a VHDX: the file is empty (0 bytes); copy/extract it again")
    f.seek(0)
    sig = f.read(len(SIGNATURE))
    if sig != SIGNATURE:
        raise VhdxError(f"not a VHDX: signature is {sig!r}, expected {SIGNATURE!r}; "
                        "use a VHDX disk (convert with 'qemu-img convert -O vhdx')")
    if file_size < HEADER_SECTION:
        raise VhdxError(f"VHDX is truncated: {file_size} bytes, but the header section alone "
                        f"is {HEADER_SECTION} bytes; {REDO}")


def _parse_header(block: bytes) -> Header:
    _, _, seq, _, _, log_guid, log_version, version, log_length, log_offset = _HEADER.unpack_from(block)
    return Header(seq, uuid.UUID(bytes_le=log_guid), log_version, version, log_length, log_offset)


def _header_problem(block: bytes) -> str | None:
    """Why a header copy is invalid, or None when its signature and checksum hold."""
    if block[:4] != HEADER_SIGNATURE:
        return f"signature is {block[:4]!r}, expected {HEADER_SIGNATURE!r}"
    if not _checksum_ok(block):
        return "checksum mismatch"
    return None


def read_header(f: BinaryIO, file_size: int, *, strict: bool = True) -> Header:
    """The current header: the valid copy with the highest sequence number."""
    valid: list[Header] = []
    problems: list[str] = []
    for n, offset in enumerate(HEADER_OFFSETS, 1):
        block = _read_at(f, offset, HEADER_SIZE, f"header {n}", file_size)
        problem = _header_problem(block)
        if problem is None:
            valid.append(_parse_header(block))
        else:
            problems.append(f"header {n} (at {_fmt_offset(offset)}): {problem}")
    if not valid or (strict and problems):
        kind = "checksum mismatch" if any("checksum" in p for p in problems) else "header is invalid"
        other = "" if not valid else " (the other copy is valid, but a clean VHDX has both)"
        raise VhdxError(f"VHDX header {kind}: {'; '.join(problems)}{other}; {REDO}")
    current = max(valid, key=lambda h: h.sequence)
    _check_header_fields(current, file_size)
    return current


def _check_header_fields(h: Header, file_size: int) -> None:
    if h.version != 1:
        raise VhdxError(f"VHDX header version is {h.version}, not 1: this reader knows only "
                        "version 1 of [MS-VHDX]; convert the disk with a current tool")
    if h.log_version != 0 and h.log_guid.int != 0:
        raise VhdxError(f"VHDX log version is {h.log_version}, not 0, and the log is not empty: "
                        "open the disk once in Hyper-V to replay its log")
    if h.log_length % MiB or h.log_offset % MiB:
        raise VhdxError(f"VHDX log is not MB-aligned (offset {h.log_offset}, length "
                        f"{h.log_length}); {REDO}")
    if h.log_length and h.log_offset < HEADER_SECTION:
        raise VhdxError(f"VHDX log at {h.log_offset} overlaps the header section; {REDO}")
    if h.log_offset + h.log_length > file_size:
        raise VhdxError(f"VHDX is truncated: the log ends at byte {h.log_offset + h.log_length} "
                        f"but the file has {file_size} bytes; {REDO}")


def _parse_regions(block: bytes, n: int) -> list[Region]:
    _, _, count, _ = _REGION_HEADER.unpack_from(block)
    if count > MAX_ENTRIES:
        raise VhdxError(f"VHDX region table {n} lists {count} entries (at most {MAX_ENTRIES}); {REDO}")
    regions = []
    for i in range(count):
        guid, offset, length, required = _REGION_ENTRY.unpack_from(block, 16 + 32 * i)
        regions.append(Region(uuid.UUID(bytes_le=guid), offset, length, bool(required & 1)))
    return regions


def read_regions(f: BinaryIO, file_size: int, *, strict: bool = True) -> list[Region]:
    """The region table: the first valid copy (both must be valid when ``strict``)."""
    tables: list[list[Region]] = []
    problems: list[str] = []
    for n, offset in enumerate(REGION_OFFSETS, 1):
        block = _read_at(f, offset, REGION_TABLE_SIZE, f"region table {n}", file_size)
        if block[:4] != REGION_SIGNATURE:
            problems.append(f"table {n} (at {_fmt_offset(offset)}): signature is {block[:4]!r}")
        elif not _checksum_ok(block):
            problems.append(f"table {n} (at {_fmt_offset(offset)}): checksum mismatch")
        else:
            tables.append(_parse_regions(block, n))
    if not tables or (strict and problems):
        kind = "checksum mismatch" if any("checksum" in p for p in problems) else "is invalid"
        raise VhdxError(f"VHDX region table {kind}: {'; '.join(problems)}; {REDO}")
    return tables[0]


def _find_region(regions: list[Region], guid: uuid.UUID, name: str, file_size: int) -> Region:
    found = [r for r in regions if r.guid == guid]
    if len(found) != 1:
        raise VhdxError(f"VHDX region table has {len(found)} {name} regions, expected 1; {REDO}")
    r = found[0]
    if r.offset % MiB or r.length % MiB or r.offset < HEADER_SECTION or r.length == 0:
        raise VhdxError(f"VHDX {name} region is not MB-aligned after the header section "
                        f"(offset {r.offset}, length {r.length}); {REDO}")
    if r.offset + r.length > file_size:
        raise VhdxError(f"VHDX is truncated: the {name} region ends at byte {r.offset + r.length} "
                        f"but the file has {file_size} bytes; {REDO}")
    return r


def check_regions(regions: list[Region], header: Header, file_size: int) -> tuple[Region, Region]:
    """The BAT and metadata regions, after checking the table as a whole."""
    unknown = [r for r in regions if r.required and r.guid not in (BAT_GUID, METADATA_GUID)]
    if unknown:
        raise VhdxError(f"VHDX requires a region this reader does not know ({unknown[0].guid}): "
                        "it was written by a newer VHDX implementation; convert it to plain VHDX")
    bat = _find_region(regions, BAT_GUID, "BAT", file_size)
    meta = _find_region(regions, METADATA_GUID, "metadata", file_size)
    spans = [(r.offset, r.offset + r.length, str(r.guid)) for r in regions]
    if header.log_length:
        spans.append((header.log_offset, header.log_offset + header.log_length, "log"))
    spans.sort()
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            raise VhdxError(f"VHDX regions overlap ({a} and {b}); {REDO}")
    return bat, meta


# --- metadata ------------------------------------------------------------------------

def read_metadata_table(f: BinaryIO, meta: Region, file_size: int) -> dict[uuid.UUID, MetadataItem]:
    """The metadata table's system items, keyed by item id."""
    block = _read_at(f, meta.offset, METADATA_TABLE_SIZE, "the metadata table", file_size)
    sig, _, count, _ = _METADATA_HEADER.unpack_from(block)
    if sig != METADATA_SIGNATURE:
        raise VhdxError(f"VHDX metadata table signature is {sig!r}, expected "
                        f"{METADATA_SIGNATURE!r}; {REDO}")
    if count > MAX_ENTRIES:
        raise VhdxError(f"VHDX metadata table lists {count} entries (at most {MAX_ENTRIES}); {REDO}")
    items: dict[uuid.UUID, MetadataItem] = {}
    for i in range(count):
        raw_id, offset, length, flags, _ = _METADATA_ENTRY.unpack_from(block, 32 + 32 * i)
        item = MetadataItem(uuid.UUID(bytes_le=raw_id), offset, length, bool(flags & 4))
        _check_item(item, meta)
        if flags & 1:  # IsUser: user metadata, not ours to interpret
            continue
        if item.item_id not in KNOWN_METADATA and item.is_required:
            raise VhdxError(f"VHDX requires a metadata item this reader does not know "
                            f"({item.item_id}); convert it to plain VHDX")
        if item.item_id in items:
            raise VhdxError(f"VHDX metadata table lists item {item.item_id} twice; {REDO}")
        items[item.item_id] = item
    return items


def _check_item(item: MetadataItem, meta: Region) -> None:
    if item.length == 0:
        return
    if item.offset < METADATA_TABLE_SIZE or item.offset + item.length > meta.length or item.length > MiB:
        raise VhdxError(f"VHDX metadata item {item.item_id} lies outside the metadata region "
                        f"(offset {item.offset}, length {item.length}); {REDO}")


def _item_bytes(f: BinaryIO, meta: Region, items: dict[uuid.UUID, MetadataItem], item_id: uuid.UUID,
                size: int, file_size: int) -> bytes:
    name = KNOWN_METADATA[item_id]
    item = items.get(item_id)
    if item is None:
        raise VhdxError(f"VHDX metadata lacks the required {name} item; {REDO}")
    if item.length < size:
        raise VhdxError(f"VHDX {name} item is {item.length} bytes, expected {size}; {REDO}")
    return _read_at(f, meta.offset + item.offset, size, f"the {name} item", file_size)


@dataclass(frozen=True)
class DiskParameters:
    block_size: int
    leave_allocated: bool
    has_parent: bool
    virtual_size: int
    logical_sector_size: int


def read_parameters(f: BinaryIO, meta: Region, items: dict[uuid.UUID, MetadataItem],
                    file_size: int) -> DiskParameters:
    """File Parameters, Virtual Disk Size and Logical Sector Size, range-checked."""
    block_size, flags = struct.unpack("<II", _item_bytes(f, meta, items, FILE_PARAMETERS, 8, file_size))
    (size,) = struct.unpack("<Q", _item_bytes(f, meta, items, VIRTUAL_DISK_SIZE, 8, file_size))
    (sector,) = struct.unpack("<I", _item_bytes(f, meta, items, LOGICAL_SECTOR_SIZE, 4, file_size))
    if not (MiB <= block_size <= 256 * MiB) or block_size & (block_size - 1):
        raise VhdxError(f"VHDX block size {block_size} is not a power of 2 between 1 MiB and "
                        f"256 MiB; {REDO}")
    if sector not in (512, 4096):
        raise VhdxError(f"VHDX logical sector size is {sector}, not 512 or 4096; {REDO}")
    if size == 0 or size % sector or size > MAX_VIRTUAL_SIZE:
        raise VhdxError(f"VHDX virtual size {size} is not a multiple of the sector size "
                        f"{sector} up to 64 TiB; {REDO}")
    return DiskParameters(block_size, bool(flags & 1), bool(flags & 2), size, sector)


# --- BAT -----------------------------------------------------------------------------

def chunk_ratio(p: DiskParameters) -> int:
    """Payload blocks per sector bitmap block: 2**23 sectors per chunk / sectors per block."""
    return (1 << 23) * p.logical_sector_size // p.block_size


def bat_entries(p: DiskParameters) -> int:
    """How many BAT entries the disk needs ([MS-VHDX] 2.5)."""
    ratio = chunk_ratio(p)
    payload = -(-p.virtual_size // p.block_size)
    if p.has_parent:
        bitmaps = -(-payload // ratio)
        return bitmaps * (ratio + 1)
    return payload + (payload - 1) // ratio


def _bat_words(f: BinaryIO, bat: Region, count: int) -> Iterator[int]:
    """The first ``count`` BAT entries, read 1 MiB at a time."""
    f.seek(bat.offset)
    left = count
    while left:
        n = min(left, MiB // 8)
        data = f.read(n * 8)
        if len(data) != n * 8:
            raise VhdxError(f"VHDX is truncated: short read of the BAT; {REDO}")
        for (word,) in struct.iter_unpack("<Q", data):
            yield word
        left -= n


def check_bat(f: BinaryIO, bat: Region, p: DiskParameters, file_size: int) -> None:
    """Block states valid for the disk type; every allocated block inside the file."""
    count = bat_entries(p)
    if bat.length < count * 8:
        raise VhdxError(f"VHDX BAT region holds {bat.length // 8} entries but the disk needs "
                        f"{count}; {REDO}")
    ratio = chunk_ratio(p)
    for index, word in enumerate(_bat_words(f, bat, count)):
        state, offset = word & 7, (word >> 20) * MiB
        if index % (ratio + 1) == ratio:
            _check_bitmap_entry(index, state, p)
            continue
        block = index - index // (ratio + 1)
        _check_payload_entry(block, state, offset, p, file_size)


def _check_bitmap_entry(index: int, state: int, p: DiskParameters) -> None:
    if state not in (SB_NOT_PRESENT, SB_PRESENT) or (state == SB_PRESENT and not p.has_parent):
        raise VhdxError(f"VHDX BAT entry {index} (a sector bitmap) has state {state}, invalid for a "
                        f"{'differencing' if p.has_parent else 'non-differencing'} disk; {REDO}")


def _check_payload_entry(block: int, state: int, offset: int, p: DiskParameters, file_size: int) -> None:
    if state not in PAYLOAD_STATES or (state == PARTIALLY_PRESENT and not p.has_parent):
        raise VhdxError(f"VHDX BAT entry for block {block} has state {state}, invalid for a "
                        f"{'differencing' if p.has_parent else 'non-differencing'} disk; {REDO}")
    if state not in (FULLY_PRESENT, PARTIALLY_PRESENT):
        return
    need = min(p.block_size, p.virtual_size - block * p.block_size)
    if offset < HEADER_SECTION:
        raise VhdxError(f"VHDX block {block} points into the header section; {REDO}")
    if offset + need > file_size:
        raise VhdxError(f"VHDX is truncated: block {block} ends at byte {offset + need} but the "
                        f"file has {file_size} bytes; {REDO}")


# --- entry points --------------------------------------------------------------------

def inspect(path: Path, *, strict: bool = True) -> VhdxInfo:
    """Validate the VHDX at ``path`` (read-only) and say what kind of disk it is."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            check_signature(f, file_size)
            header = read_header(f, file_size, strict=strict)
            bat, meta = check_regions(read_regions(f, file_size, strict=strict), header, file_size)
            items = read_metadata_table(f, meta, file_size)
            params = read_parameters(f, meta, items, file_size)
            if params.has_parent and PARENT_LOCATOR not in items:
                raise VhdxError(f"VHDX says it has a parent but has no Parent Locator item; {REDO}")
            check_bat(f, bat, params, file_size)
    except OSError as e:
        raise VhdxError(f"cannot read VHDX {path.name}: {e.strerror or e}; check the path "
                        "and its permissions") from e
    return VhdxInfo(
        virtual_size=params.virtual_size, block_size=params.block_size,
        logical_sector_size=params.logical_sector_size,
        fixed=params.leave_allocated and not params.has_parent, differencing=params.has_parent,
        header_sequence=header.sequence, log_pending=header.log_guid.int != 0)


def require_dynamic(info: VhdxInfo) -> None:
    """Refuse a differencing or fixed disk: a GMI ships one self-contained, dynamic VHDX."""
    if info.differencing:
        raise VhdxError("the VHDX is a differencing disk (it needs its parent): merge it first "
                        "(Hyper-V: Merge-VHD; or 'qemu-img convert -O vhdx -o subformat=dynamic')")
    if info.fixed:
        raise VhdxError(f"the VHDX is a fixed-size disk ({info.virtual_size} bytes allocated): "
                        "convert it to dynamic (Convert-VHD -VHDType Dynamic, or "
                        "'qemu-img convert -O vhdx -o subformat=dynamic')")
