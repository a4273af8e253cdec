"""The archive's parallel deflate (harness/archive/deflate.py): one standard raw deflate
stream made of blocks deflated on several threads, and a zip that every reader we
have reads (Python's zipfile, unzip, bsdtar, 7-Zip)."""

from __future__ import annotations

import random
import subprocess
import threading
import zipfile
import zlib
from pathlib import Path

import pytest
from host_tools import needs

from harness.archive import deflate


def sample(size: int, seed: int = 1) -> bytes:
    """Disk-like data: runs of zeros, repeated text, and random bytes (which no
    compressor shrinks), in blocks that straddle the deflate blocks' edges."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        kind = rng.randrange(3)
        n = rng.randrange(1, 300_000)
        if kind == 0:
            out += bytes(n)
        elif kind == 1:
            out += (b"GMI %d the quick brown fox " % rng.randrange(50)) * (n // 30 + 1)
        else:
            out += rng.randbytes(n)
    return bytes(out[:size])


@pytest.mark.parametrize("size", [0, 1, deflate.BLOCK - 1, deflate.BLOCK, 3 * deflate.BLOCK,
                                  5 * deflate.BLOCK + 12345])
def test_the_stream_inflates_to_the_input(size: int):
    data = sample(size)
    stream = deflate.deflate(data, workers=2)
    assert zlib.decompress(stream, -15) == data
    d = zlib.decompressobj(-15)
    assert d.decompress(stream) == data and d.eof and d.unused_data == b""  # one stream, ended


def test_small_blocks_and_many_threads_make_the_same_data(tmp_path: Path):
    data = sample(600_000, seed=7)
    for block, workers in ((4096, 8), (40_000, 3), (1 << 20, 1)):
        assert zlib.decompress(deflate.deflate(data, workers=workers, block=block), -15) == data


def test_the_size_is_zlibs_within_a_percent():
    data = sample(8 * deflate.BLOCK, seed=3)
    one = zlib.compressobj(6, zlib.DEFLATED, -15)
    serial = len(one.compress(data) + one.flush())
    parallel = len(deflate.deflate(data, level=6, workers=2))
    assert parallel <= serial * 1.01, (parallel, serial)


@pytest.fixture(scope="module")
def zipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    folder = tmp_path_factory.mktemp("zip")
    disk = folder / "GMI Debian 12.vhdx"
    data = sample(6 * deflate.BLOCK + 777, seed=11)
    disk.write_bytes(data)
    archive = folder / "GMI-Debian-12.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("GMI-Debian-12.yml", "name: x\n")
        assert deflate.write(zf, disk, "Virtual Hard Disks/GMI Debian 12.vhdx", workers=2)
        zf.writestr("after.txt", "the entry after it\n")
    return archive, data


def test_pythons_zipfile_reads_it(zipped: tuple[Path, bytes]):
    archive, data = zipped
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        info = zf.getinfo("Virtual Hard Disks/GMI Debian 12.vhdx")
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.file_size == len(data)
        assert info.compress_size < len(data)
        assert zlib.crc32(data) == info.CRC
        assert zf.read(info) == data
        assert zf.read("after.txt") == b"the entry after it\n"


@needs("unzip")
def test_unzip_reads_it(zipped: tuple[Path, bytes]):
    out = subprocess.run(["unzip", "-t", str(zipped[0])], capture_output=True, text=True)
    assert out.returncode == 0 and "No errors detected" in out.stdout, out.stdout + out.stderr


@needs("bsdtar")
def test_bsdtar_reads_it(zipped: tuple[Path, bytes], tmp_path: Path):
    out = subprocess.run(["bsdtar", "-xf", str(zipped[0]), "-C", str(tmp_path)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "Virtual Hard Disks/GMI Debian 12.vhdx").read_bytes() == zipped[1]


@needs("7zz")
def test_7zip_reads_it(zipped: tuple[Path, bytes]):
    out = subprocess.run(["7zz", "t", str(zipped[0])], capture_output=True, text=True)
    assert out.returncode == 0 and "Everything is Ok" in out.stdout, out.stdout + out.stderr


def test_a_failed_write_leaves_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    disk = tmp_path / "d.vhdx"
    disk.write_bytes(sample(12 * deflate.BLOCK))
    before = threading.active_count()
    real = deflate.ParallelDeflate.compress
    calls = {"n": 0}

    def failing(self: deflate.ParallelDeflate, data: bytes) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(self, data)

    monkeypatch.setattr(deflate.ParallelDeflate, "compress", failing)
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf, pytest.raises(OSError, match="disk full"):
        deflate.write(zf, disk, "d.vhdx", workers=2)
    assert threading.active_count() == before
