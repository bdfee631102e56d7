"""Streaming sha256 and the stat fingerprint: the one place the build side reads bytes to hash them.

Standard library only: the ``modelpack`` CLI's library (``inspection``) uses it inside other
environments. The generated loader keeps its own copy (it must not import hatch_modelpack).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

#: Read size for whole-file digests: memory stays flat at any file size.
HASH_CHUNK = 1 << 20
#: Files of at least CHUNKED_MIN bytes also record a sha256 per CHUNK_SIZE bytes (the loader hashes them in parallel).
CHUNK_SIZE = 4 << 20
CHUNKED_MIN = 16 << 20


def stat_fingerprint(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file's bytes can have changed; ctime cannot be set back without root."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def record_hash(digest: bytes) -> str:
    """A sha256 digest as a wheel's RECORD writes it (``sha256=`` and unpadded urlsafe base64)."""
    return "sha256=" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def fingerprint(path: Path) -> tuple[int, ...]:
    return stat_fingerprint(os.stat(path))


def read_chunks(f: BinaryIO, size: int = HASH_CHUNK) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def hash_stream(f: BinaryIO) -> tuple[int, str]:
    """Size and sha256 (hex) of everything left in ``f``."""
    digest = hashlib.sha256()
    size = 0
    for chunk in read_chunks(f):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, streamed so memory stays flat at any size."""
    with open(path, "rb") as f:
        return hash_stream(f)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file_chunked(path: Path) -> tuple[int, str, tuple[str, ...]]:
    """Size, sha256 and (for files of CHUNKED_MIN bytes or more) a sha256 per CHUNK_SIZE bytes, in one read.

    The chunk digests let the generated loader verify a large file on all cores. They are computed on a
    second thread while this one feeds the whole-file digest (hashlib releases the GIL), so the build
    pays for one pass, not two; at most a few chunks are in memory at once.
    """
    digest = hashlib.sha256()
    futures: deque[Future[str]] = deque()
    chunks: list[str] = []
    size = 0
    with open(path, "rb") as f, ThreadPoolExecutor(max_workers=1) as pool:
        for data in read_chunks(f, CHUNK_SIZE):
            futures.append(pool.submit(_sha256_hex, data))
            digest.update(data)
            size += len(data)
            while len(futures) > 2:
                chunks.append(futures.popleft().result())
        chunks.extend(fut.result() for fut in futures)
    return size, digest.hexdigest(), tuple(chunks) if size >= CHUNKED_MIN else ()
