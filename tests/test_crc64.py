"""CRC-64/NVME: the catalogue's check value, streaming, files, and S3's base64 form."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from harness.archive import crc64
from harness.archive.crc64 import Crc64Nvme, crc64nvme, crc64nvme_file, s3_checksum


def bitwise_reference(data: bytes) -> int:
    """A bit-at-a-time CRC-64/NVME straight from the catalogue's parameters (no tables)."""
    poly = int(f"{crc64.POLY:064b}"[::-1], 2)
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_catalogue_check_value():
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888 == crc64.CHECK


def test_empty_input():
    assert crc64nvme(b"") == 0
    assert Crc64Nvme().digest() == bytes(8)


def test_digest_is_big_endian_and_hex_matches():
    c = Crc64Nvme(b"123456789")
    assert c.digest() == bytes.fromhex("ae8b14860a799888")
    assert c.hexdigest() == "ae8b14860a799888"


@pytest.mark.parametrize("length", [1, 7, 8, 9, 15, 16, 17, 63, 64, 1000])
def test_table_matches_bitwise_reference(length: int):
    data = random.Random(length).randbytes(length)
    assert crc64nvme(data) == bitwise_reference(data)


def test_streaming_equals_one_shot_for_any_split():
    data = random.Random(1).randbytes(10_000)
    whole = crc64nvme(data)
    rng = random.Random(2)
    for _ in range(20):
        c, pos = Crc64Nvme(), 0
        while pos < len(data):
            step = rng.randint(0, 37)
            c.update(data[pos:pos + step])
            pos += step
        assert c.value == whole


def test_update_accepts_bytearray_and_memoryview_and_chains():
    data = b"123456789"
    assert Crc64Nvme().update(bytearray(data[:4])).update(memoryview(data)[4:]).value == crc64.CHECK


def test_file_equals_bytes_across_chunk_boundaries(tmp_path: Path):
    data = random.Random(3).randbytes(3 * crc64.CHUNK + 5)
    p = tmp_path / "blob"
    p.write_bytes(data)
    assert crc64nvme_file(p) == crc64nvme(data)
    assert crc64nvme_file(p, chunk=1000) == crc64nvme(data)


def test_s3_checksum_is_base64_of_big_endian_bytes():
    assert s3_checksum(crc64.CHECK) == "rosUhgp5mIg="
    assert base64.b64decode(s3_checksum(crc64.CHECK)) == bytes.fromhex("ae8b14860a799888")
    assert s3_checksum(0) == "AAAAAAAAAAA="


@pytest.mark.parametrize("bad", [-1, 1 << 64])
def test_s3_checksum_rejects_out_of_range(bad: int):
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        s3_checksum(bad)
