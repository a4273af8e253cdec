"""One deflate stream made on every core, as pigz makes it.

vmgenie reads the archive's disk as a zip entry compressed with deflate. zlib deflates
on one core, which left the export's 30 s on one of our two. Here the input is cut
into blocks of :data:`BLOCK` bytes, and each block is deflated on a thread of its own
(zlib releases the GIL while it works) with the previous block's last 32 KiB as its
dictionary, so matches reach back across the cut as they would in one stream. Each
block but the last ends with a sync flush (an empty stored block: the output ends on
a byte boundary, and no block is marked final); the last one ends the stream. Joined
in order, the blocks are one ordinary raw deflate stream: any inflater reads it, and
the zip holding it is a standard zip (Python's zipfile, ``unzip``, 7-Zip, bsdtar and
Windows' own reader: tests/test_gmi_archive.py reads it with each one there is).
The cost: a few bytes per block and the matches that would have reached back more than
32 KiB across a cut (the zip is about 0.1 % larger than zlib's at the same level).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

BLOCK = 1 << 20  # bytes of input per block (pigz: 128 KiB; larger blocks, fewer cuts)
WINDOW = 1 << 15  # deflate's window: the dictionary each block gets from the one before


def _deflate(block: bytes, zdict: bytes, level: int, last: bool) -> bytes:
    if zdict:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class ParallelDeflate:
    """A raw deflate compressor with zlib's ``compress()``/``flush()``, whose work is
    spread over ``workers`` threads. The output of ``compress`` lags the input by up to
    ``2 * workers`` blocks; ``flush`` returns the rest and ends the stream."""

    def __init__(self, level: int = 6, workers: int | None = None, block: int = BLOCK) -> None:
        self.level, self.block = level, block
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="deflate")
        self._pending: deque[Future[bytes]] = deque()
        self._buf = bytearray()
        self._tail = b""
        self._closed = False
        self.blocks = 0

    def _submit(self, block: bytes, last: bool) -> None:
        self._pending.append(self._pool.submit(_deflate, block, self._tail, self.level, last))
        self._tail = block[-WINDOW:]
        self.blocks += 1

    def _collect(self, keep: int) -> bytes:
        out = bytearray()
        while len(self._pending) > keep or (self._pending and self._pending[0].done()):
            out += self._pending.popleft().result()
        return bytes(out)

    def compress(self, data: bytes) -> bytes:
        self._buf += data
        while len(self._buf) >= self.block:
            self._submit(bytes(self._buf[:self.block]), last=False)
            del self._buf[:self.block]
        return self._collect(keep=2 * self.workers)

    def flush(self) -> bytes:
        if self._closed:  # (the write failed: zipfile still closes the entry, never read)
            return b""
        try:
            self._submit(bytes(self._buf), last=True)
            self._buf.clear()
            return self._collect(keep=0)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Give the threads back without finishing the stream (an interrupted write)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def deflate(data: bytes, level: int = 6, workers: int | None = None, block: int = BLOCK) -> bytes:
    """``data`` as one raw deflate stream, made in parallel (tests, benchmarks)."""
    c = ParallelDeflate(level, workers, block)
    return c.compress(data) + c.flush()


def write(zf: zipfile.ZipFile, path: Path, entry: str, level: int = 6,
          workers: int | None = None) -> bool:
    """Add the file ``path`` to ``zf`` as ``entry``, deflated on every core; zipfile
    writes the headers, the CRC and the sizes (zip64 when needed) as for any entry.
    Returns False when this Python's zipfile has no compressor to stand in for (then
    the entry is written by zipfile alone, on one core)."""
    info = zipfile.ZipInfo.from_file(path, entry)
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = level  # type: ignore[attr-defined]  # (zipfile's own compressor's)
    size = info.file_size
    with path.open("rb") as src, zf.open(info, "w", force_zip64=size > zipfile.ZIP64_LIMIT) as dst:
        parallel = hasattr(dst, "_compressor") and workers != 1
        if parallel:
            c = ParallelDeflate(level, workers)
            dst._compressor = c  # type: ignore[attr-defined]  # (compress() per write, flush() at close)
        try:
            while chunk := src.read(4 * BLOCK):
                dst.write(chunk)
        except BaseException:
            if parallel:
                c.close()
            raise
    return parallel
