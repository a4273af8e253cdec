"""CRC-64/NVME, the checksum S3 reports as ``ChecksumCRC64NVME`` and vmgenie's
repository index stores (base64) as ``crc64nvme``.

The CRC catalogue's CRC-64/NVME: width 64, poly 0xad93d23594c93659, init and xorout
0xffffffffffffffff, reflected in and out, check value 0xae8b14860a799888 for
``b"123456789"``.

Pure Python, table-driven, slicing-by-8: eight bytes per loop turn, the state's bytes
taken with ``int.to_bytes`` and looked up in eight 256-entry tables. Measured on the
build machine (one AMD EPYC core, shared with a running VM build): about 26 MiB/s,
where a plain byte loop does about 15 MiB/s; so a 1 GiB archive takes about 40 s and
a 5 GiB one about 3.5 minutes. (Sixteen-bit tables were slower: cache misses.)
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Self

POLY = 0xAD93D23594C93659
INIT = XOROUT = 0xFFFFFFFFFFFFFFFF
CHECK = 0xAE8B14860A799888
_MASK = 0xFFFFFFFFFFFFFFFF
_POLY_REFLECTED = int(f"{POLY:064b}"[::-1], 2)
CHUNK = 64 * 1024


def _byte_table() -> tuple[int, ...]:
    """The classic reflected table: the CRC of each single byte value."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


def _slice_tables() -> tuple[tuple[int, ...], ...]:
    """Tables 0..7: table k advances a byte through k further zero bytes."""
    tables = [_byte_table()]
    for _ in range(7):
        prev, t0 = tables[-1], tables[0]
        tables.append(tuple((v >> 8) ^ t0[v & 0xFF] for v in prev))
    return tuple(tables)


_TABLES = _slice_tables()
_WORD = struct.Struct("<Q")


def _update(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Advance the (non-inverted) register ``crc`` over ``data``."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _TABLES
    view = memoryview(data).cast("B")
    whole = len(view) - len(view) % 8
    for (word,) in _WORD.iter_unpack(view[:whole]):
        b = (crc ^ word).to_bytes(8, "little")
        crc = (t7[b[0]] ^ t6[b[1]] ^ t5[b[2]] ^ t4[b[3]]
               ^ t3[b[4]] ^ t2[b[5]] ^ t1[b[6]] ^ t0[b[7]])
    for byte in view[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


class Crc64Nvme:
    """Streaming CRC-64/NVME: ``Crc64Nvme().update(a).update(b).value``."""

    __slots__ = ("_crc",)

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._crc = INIT
        if data:
            self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> Self:
        """Feed more bytes; any split of the input gives the same result."""
        self._crc = _update(self._crc, data)
        return self

    @property
    def value(self) -> int:
        """The CRC so far, as an unsigned 64-bit integer."""
        return (self._crc ^ XOROUT) & _MASK

    def digest(self) -> bytes:
        """The CRC so far as 8 big-endian bytes (the order S3 encodes)."""
        return self.value.to_bytes(8, "big")

    def hexdigest(self) -> str:
        """The CRC so far as 16 lowercase hex digits."""
        return self.digest().hex()


def crc64nvme(data: bytes | bytearray | memoryview) -> int:
    """One-shot CRC-64/NVME of ``data``."""
    return Crc64Nvme(data).value


def crc64nvme_file(path: Path, chunk: int = CHUNK) -> int:
    """CRC-64/NVME of a file, read in ``chunk``-sized pieces (64 KiB by default)."""
    crc = Crc64Nvme()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with Path(path).open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            crc.update(view[:n])
    return crc.value


def s3_checksum(value: int) -> str:
    """Base64 of the 8 big-endian bytes of ``value``, as S3's ``ChecksumCRC64NVME``."""
    if not 0 <= value <= _MASK:
        raise ValueError(f"a CRC-64 is an unsigned 64-bit integer, got {value}")
    return base64.b64encode(value.to_bytes(8, "big")).decode("ascii")
