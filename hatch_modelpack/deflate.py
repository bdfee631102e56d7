"""The deflate the wheel writer uses: zlib-ng when it imports, else the standard library's zlib.

zlib-ng is a dependency: on model files it writes output as small as zlib's level 6 (hatchling's) at
~3x its speed (see :func:`deflate_level`). The two backends write different (equally valid) bytes, so a
reproducible build needs the same backend on every machine; :data:`DEFLATE_BACKEND` names the one in
use. Nothing in the wheel records it, so that the bytes depend only on the backend and each file's size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO

try:  # the one place that picks the deflate implementation
    from zlib_ng import zlib_ng as _zlib

    #: Which deflate wrote the blocks: the wheel's bytes depend on it (and on nothing else of the machine).
    DEFLATE_BACKEND = f"zlib-ng {_zlib.ZLIBNG_VERSION}"
    # Measured against zlib's level 6 (hatchling's), one core, 1 MiB blocks, memLevel 9 (zlib-ng's
    # largest hash table): on binary model files (pickles, arrays, UBJSON) level 5 writes 0.99-1.00x
    # zlib 6's size at 150-170 MB/s (level 6: 0.97x at 95 MB/s); on text models (JSON, LightGBM text,
    # tokenizers) level 5 is 0.5-1% larger and level 7 0.97-1.00x at 20-45 MB/s. Big files take the
    # fast level, where the time goes; files below FAST_FROM, where it does not, the dense one.
    DEFLATE_LEVEL, FAST_DEFLATE_LEVEL, DEFLATE_MEM_LEVEL = 7, 5, 9
except ImportError:  # pragma: no cover - zlib-ng is a dependency; the standard library is the fallback
    _zlib = zlib  # type: ignore[misc]
    DEFLATE_BACKEND = f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
    DEFLATE_LEVEL = FAST_DEFLATE_LEVEL = 6  # hatchling's own: zlib's default level and memLevel
    DEFLATE_MEM_LEVEL = 8

#: Artifacts of at least this size are deflated at FAST_DEFLATE_LEVEL, smaller ones at DEFLATE_LEVEL.
FAST_FROM = 16 << 20


#: Independent deflate block. Fixed, so the output does not depend on the number of workers.
BLOCK = 1 << 20
#: Each block is primed with the previous block's last WINDOW bytes (deflate's whole window).
WINDOW = 1 << 15

crc32 = _zlib.crc32


def deflate_level(size: int) -> int:
    """The level for a file of ``size`` bytes: a function of the size alone, so builds stay reproducible."""
    return FAST_DEFLATE_LEVEL if size >= FAST_FROM else DEFLATE_LEVEL


def deflate_block(data: bytes, zdict: bytes | None, last: bool, level: int) -> bytes:
    """One raw deflate block; it releases the GIL, so blocks compress in parallel on threads."""
    if zdict:
        c = _zlib.compressobj(level, _zlib.DEFLATED, -15, DEFLATE_MEM_LEVEL, _zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        c = _zlib.compressobj(level, _zlib.DEFLATED, -15, DEFLATE_MEM_LEVEL)
    return c.compress(data) + c.flush(_zlib.Z_FINISH if last else _zlib.Z_SYNC_FLUSH)


def blocks(f: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """Fixed-size blocks, each flagged whether it is the last (one block of look-ahead)."""
    current = f.read(size)
    while True:
        following = f.read(size)
        yield current, not following
        if not following:
            return
        current = following
