"""Byte streams the scanner reads: exact reads, bounded lines, cheap skips, and joblib's decompressors.

joblib picks a decompressor from a file's magic number; the scanner does the same and reads the
decompressed bytes through a streaming decompressor, so a compressed forest is never held in memory.
Bytes after the compressed stream are refused: ``joblib.load`` never reads them.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import zlib
from pathlib import Path
from typing import IO, Any

from hatch_modelpack.errors import ScanError

#: A protocol-0 text line longer than this is refused (protocol 0 writes arrays as one text line).
LINE_LIMIT = 1 << 24
#: Chunk size for reading and skipping through compressed streams.
SKIP_CHUNK = 1 << 20

# Magic numbers joblib uses to pick a decompressor (joblib/compressor.py).
_COMPRESSIONS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF", "joblib-zfile"),
    (b"\x78", "zlib"),
)


class Stream:
    """A read-only byte stream with exact reads, bounded lines and cheap forward skips.

    For an uncompressed file ``size`` is known: every read and skip is checked against it first, so
    the scanner never asks for more than the file holds.
    """

    def __init__(self, raw: Any, size: int | None, what: str) -> None:
        self._raw = raw
        self._size = size
        self._pos = 0
        self.what = what

    def tell(self) -> int:
        return self._pos

    @property
    def size(self) -> int | None:
        return self._size

    def _check(self, n: int) -> None:
        if self._size is not None and self._pos + n > self._size:
            raise ScanError(
                f"{self.what}: the stream needs {n} more bytes at offset {self._pos} but the file ends at "
                f"{self._size}; the file is truncated or corrupt"
            )

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ScanError(f"{self.what}: unbounded read requested")
        self._check(n)
        data: bytes = self._raw.read(n)
        self._pos += len(data)
        return data

    def read_exact(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise ScanError(f"{self.what}: the stream ends early at offset {self._pos}; the file is truncated")
        return data

    def readline(self, limit: int = -1) -> bytes:
        """One line, bounded by LINE_LIMIT and the file's size (``limit`` is ignored)."""
        cap = LINE_LIMIT + 1
        if self._size is not None:
            cap = min(cap, self._size - self._pos)
        line = self.readline_raw(cap)
        if len(line) > LINE_LIMIT:
            raise ScanError(
                f"{self.what}: a protocol-0 text argument is longer than {LINE_LIMIT} bytes; save the model "
                "with a binary pickle protocol (2 or higher)"
            )
        return line

    def readline_raw(self, cap: int) -> bytes:
        line: bytes = self._raw.readline(cap)
        self._pos += len(line)
        return line

    def window(self, n: int) -> Stream:
        """The next ``n`` bytes as a stream of their own, read through this one (no copy, no seek)."""
        self._check(n)
        return Stream(_Slice(self), n, self.what)

    def skip(self, n: int) -> None:
        if n < 0:
            raise ScanError(f"{self.what}: negative length at offset {self._pos}")
        if self._size is not None:
            if self._pos + n > self._size:
                raise ScanError(
                    f"{self.what}: an array of {n} bytes at offset {self._pos} runs past the end of the file "
                    f"({self._size} bytes); the file is truncated or corrupt"
                )
            self._raw.seek(n, os.SEEK_CUR)
            self._pos += n
            return
        left = n
        while left:
            chunk = self._raw.read(min(left, SKIP_CHUNK))
            if not chunk:
                raise ScanError(f"{self.what}: the compressed stream ends inside an array buffer; it is truncated")
            left -= len(chunk)
            self._pos += len(chunk)

    def at_eof(self) -> bool:
        if self._size is not None:
            return self._pos >= self._size
        return not self._raw.read(1)


class _Slice:
    """The raw side of :meth:`Stream.window`: every read advances the parent stream."""

    def __init__(self, parent: Stream) -> None:
        self._parent = parent

    def read(self, n: int) -> bytes:
        return self._parent.read(n)

    def readline(self, cap: int) -> bytes:
        return self._parent.readline_raw(cap)

    def seek(self, n: int, whence: int) -> None:
        self._parent.skip(n)


#: The name the tests and older callers use.
_Stream = Stream


def detect_compression(head: bytes) -> str | None:
    """The compression joblib would detect from a file's first bytes, or None for a plain stream."""
    if head[:1] == b"\x80" or not head:
        return None
    for magic, name in _COMPRESSIONS:
        if head.startswith(magic):
            return name
    return None


class _Inflate(io.RawIOBase):
    """One compressed stream, decompressed incrementally; corrupt input and trailing bytes fail closed.

    joblib writes exactly one stream; whatever follows it is never read by ``joblib.load``, so it is
    refused rather than ignored (the stdlib file classes silently skip trailing garbage).
    """

    def __init__(self, fh: IO[bytes], compression: str, what: str) -> None:
        self._fh = fh
        self._what = what
        self._zlib = compression in ("gzip", "zlib")
        if compression == "gzip":
            self._dec: Any = zlib.decompressobj(31)
        elif compression == "zlib":
            self._dec = zlib.decompressobj()
        elif compression == "bz2":
            self._dec = bz2.BZ2Decompressor()
        elif compression == "xz":
            self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        else:
            self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        self._done = False

    def readable(self) -> bool:
        return True

    def _more(self, want: int) -> bytes:
        if self._zlib:
            data = self._dec.unconsumed_tail or self._fh.read(SKIP_CHUNK)
        else:
            data = self._fh.read(SKIP_CHUNK) if self._dec.needs_input else b""
        if not data and (self._zlib or self._dec.needs_input):
            raise ScanError(f"{self._what}: the compressed stream is truncated")
        try:
            out: bytes = self._dec.decompress(data, want)
            return out
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            raise ScanError(f"{self._what}: the compressed stream is corrupt ({exc})") from None

    def readinto(self, b: Any) -> int:
        want = len(b)
        idle = 0
        while not self._done:
            if self._dec.eof:
                self._done = True
                if self._dec.unused_data or self._fh.read(1):
                    raise ScanError(
                        f"{self._what}: there are bytes after the end of the compressed stream; joblib never "
                        "reads them, so the file is corrupt or was tampered with"
                    )
                break
            out = self._more(want)
            if out:
                b[: len(out)] = out
                return len(out)
            idle += 1
            if idle > 64:
                raise ScanError(f"{self._what}: the decompressor makes no progress; the stream is corrupt")
        return 0


def open_stream(path: Path, what: str) -> tuple[Stream, str | None, IO[bytes]]:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        head = fh.read(8)
        fh.seek(0)
        compression = detect_compression(head)
        size = os.fstat(fh.fileno()).st_size
        if compression is None:
            return Stream(fh, size, what), None, fh
        if compression == "lz4":
            raise ScanError(
                f"{what}: the file is compressed with lz4, which the scanner cannot read without the lz4 "
                "package; save it with compress=('zlib', 3) or uncompressed instead"
            )
        if compression == "joblib-zfile":
            raise ScanError(
                f"{what}: the file uses the joblib format from before joblib 0.10 (a 'ZF' header), which "
                "the scanner does not read; load and re-save it with a current joblib"
            )
        raw = io.BufferedReader(_Inflate(fh, compression, what), buffer_size=SKIP_CHUNK)
        return Stream(raw, None, what), compression, fh
    except BaseException:
        fh.close()
        raise
