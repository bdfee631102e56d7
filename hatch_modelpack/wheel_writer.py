"""Add model artifacts to a finished wheel, choosing per file how each is stored.

Hatchling deflates every file at level 6 on one core and has no setting for it. For model artifacts
that is the slowest step of a build by far: float arrays and already-compressed files (joblib
``compress=``, ``.keras`` zips) gain under 5% from deflate yet cost ~40 MB/s to compress and again to
inflate on install. So the build hook keeps the artifacts out of hatchling's file list and, in
``finalize``, calls :func:`add_artifacts` on the wheel hatchling wrote. Each artifact is either stored
as is, or deflated on all cores the way pigz does it: the file is cut into fixed-size blocks, each
block is compressed independently (primed with the previous block's last 32 KiB as dictionary) and
ends on a byte boundary (``Z_SYNC_FLUSH``), so the blocks join into one valid deflate stream. zlib
releases the GIL, so threads are enough.

The result is an ordinary wheel: the entries hatchling wrote are copied byte for byte (no
recompression), the artifacts follow, the ``.dist-info`` files stay last with a rewritten RECORD.
Memory stays bounded at any size (a few blocks in flight), files above 2 GiB get zip64 records, and
the output is reproducible: timestamps and modes follow hatchling's (the wheel's own metadata
timestamp, which hatchling derives from ``SOURCE_DATE_EPOCH``; modes 644/755), and the block size is
fixed, so the bytes do not depend on the number of workers.

Which deflate writes the blocks, at which level, is :mod:`hatch_modelpack.deflate`'s choice.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import stat
import tempfile
import zipfile
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hatch_modelpack import zipstream
from hatch_modelpack.contract import COMPRESSIONS
from hatch_modelpack.deflate import BLOCK, DEFLATE_LEVEL, WINDOW, blocks, crc32, deflate_block, deflate_level
from hatch_modelpack.errors import WheelWriteError
from hatch_modelpack.hashing import record_hash, stat_fingerprint
from hatch_modelpack.runtime._modelpack_integrity import available_cpus
from hatch_modelpack.zipstream import COPY_CHUNK, UTF8_FLAG, Entry, ZipOut, copy_entry, dos_datetime, entry_like

__all__ = [
    "COMPRESSION_MODES",
    "Artifact",
    "WheelWriteError",
    "WrittenArtifact",
    "add_artifacts",
    "choose_compression",
]

COMPRESSION_MODES = COMPRESSIONS


#: "auto": sample this many spread-out windows of this size, compressed at a fast level...
SAMPLE_COUNT = 16
SAMPLE_SIZE = 128 << 10
SAMPLE_LEVEL = 1
#: ...and store the file when deflate would save less than this fraction of it.
MIN_SAVING = 0.05
#: Files this small are always deflated: the time is negligible and the sample would be the file.
SMALL_FILE = 64 << 10


@dataclass(frozen=True)
class WrittenArtifact:
    """What RECORD says about one added artifact."""

    arcname: str
    sha256: str  # hex
    size: int
    compression: str  # "store" | "deflate"
    compressed_size: int


# -- choosing -------------------------------------------------------------------------------------


def choose_compression(path: Path, mode: str = "auto") -> str:
    """``"store"`` or ``"deflate"`` for one file; ``"auto"`` decides from a fast sample of its bytes.

    Deflate is worth its cost only where it saves something: the sample compresses 16 windows of 128 KiB
    windows spread over the file at level 1 (a pessimistic estimate of level 6, at several times its
    speed) and stores the file when that saves under 5%: float arrays, joblib ``compress=`` output,
    ``.keras`` zips, images. Reading ~2 MiB of any file takes milliseconds.
    """
    if mode not in COMPRESSION_MODES:
        raise ValueError(f"compression must be one of {', '.join(map(repr, COMPRESSION_MODES))}, not {mode!r}")
    if mode != "auto":
        return mode
    size = os.stat(path).st_size
    if size <= SMALL_FILE:
        return "deflate"
    raw = packed = 0
    with open(path, "rb") as f:
        for offset in _sample_offsets(size):
            f.seek(offset)
            data = f.read(SAMPLE_SIZE)
            raw += len(data)
            packed += len(zlib.compress(data, SAMPLE_LEVEL))
    if not raw:
        return "deflate"
    return "deflate" if packed < raw * (1 - MIN_SAVING) else "store"


def _sample_offsets(size: int) -> list[int]:
    if size <= SAMPLE_COUNT * SAMPLE_SIZE:
        return list(range(0, size, SAMPLE_SIZE))
    step = (size - SAMPLE_SIZE) / (SAMPLE_COUNT - 1)
    return [int(i * step) for i in range(SAMPLE_COUNT)]


# -- rewriting the wheel --------------------------------------------------------------------------


def _normalized_mode(st_mode: int) -> int:
    """Hatchling's ``normalize_file_permissions``: 644, or 755 for executables, file type bits kept."""
    mode = (st_mode | 0o644) & ~0o133
    if st_mode & 0o100:
        mode |= 0o111
    return mode


def _check_arcname(arcname: str, dist_info: str) -> None:
    parts = arcname.split("/")
    if (
        not arcname
        or arcname.startswith("/")
        or "\\" in arcname
        or any(p in ("", ".", "..") for p in parts)
        or (len(parts[0]) > 1 and parts[0][1] == ":")
    ):
        raise WheelWriteError(f"{arcname!r} is not a valid path inside a wheel (relative, '/'-separated, no '..')")
    if parts[0] == dist_info:
        raise WheelWriteError(f"{arcname}: artifacts cannot go into the wheel's metadata directory {dist_info}/")


@dataclass(frozen=True)
class Artifact:
    """One file to add: where it goes, where it is, how it is stored, and what the build knows of it."""

    arcname: str
    source: Path
    compression: str  # "store" | "deflate"
    #: The digest the build analysed (e.g. the manifest's): the bytes written must be these bytes.
    sha256: str | None = None
    #: :func:`hatch_modelpack.hashing.stat_fingerprint` of ``source`` when ``sha256`` was computed; when the
    #: open file still has it, the digest is reused instead of hashing the same bytes again.
    fingerprint: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Target:
    """Where and how artifacts are written: shared by every artifact of one wheel."""

    out: ZipOut
    dos_date: int
    dos_time: int
    pool: ThreadPoolExecutor
    workers: int
    level: int | None  # None: deflate_level() of each artifact's size


def add_artifacts(
    wheel: Path,
    artifacts: Sequence[Artifact],
    *,
    workers: int | None = None,
    level: int | None = None,
    date_time: tuple[int, int, int, int, int, int] | None = None,
) -> list[WrittenArtifact]:
    """Rewrite ``wheel`` so it also holds ``artifacts``.

    The wheel is rewritten into a temporary file beside it and moved over it only when everything
    succeeded, so a failure leaves hatchling's wheel as it was. An artifact's ``sha256`` makes sure the
    bytes shipped are the bytes that were analysed: a file changed since then raises
    :class:`WheelWriteError`. ``date_time`` defaults to the timestamp of the wheel's own RECORD entry,
    which is hatchling's reproducible one.
    """
    wheel = Path(wheel)
    workers = max(1, workers if workers is not None else available_cpus())
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
        records = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise WheelWriteError(f"{wheel}: expected exactly one top-level *.dist-info/RECORD, found {len(records)}")
        record_info = records[0]
        dist_info = record_info.filename.split("/")[0]
        record_rows = list(csv.reader(io.StringIO(zf.read(record_info).decode("utf-8"))))
    _check_artifacts(wheel, artifacts, dist_info, {i.filename for i in infos})
    dos_date, dos_time = dos_datetime(date_time if date_time is not None else record_info.date_time)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{wheel.name}.", suffix=".tmp", dir=wheel.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "w+b") as raw_out,
            open(wheel, "rb") as src,
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelpack-deflate") as pool,
        ):
            out = ZipOut(raw_out)
            target = _Target(out, dos_date, dos_time, pool, workers, level)
            body = [i for i in infos if not i.filename.startswith(dist_info + "/")]
            meta = [i for i in infos if i.filename.startswith(dist_info + "/") and i is not record_info]
            for info in body:
                copy_entry(src, info, out)
            written = [_write_artifact(target, artifact) for artifact in artifacts]
            for info in meta:
                copy_entry(src, info, out)
            _write_record(out, record_info, record_rows, dist_info, written)
            out.close()
            raw_out.flush()
        os.chmod(tmp, stat.S_IMODE(os.stat(wheel).st_mode))
        os.replace(tmp, wheel)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return written


def _check_artifacts(wheel: Path, artifacts: Sequence[Artifact], dist_info: str, existing: set[str]) -> None:
    seen: set[str] = set()
    for a in artifacts:
        _check_arcname(a.arcname, dist_info)
        if a.arcname in existing or a.arcname in seen:
            raise WheelWriteError(
                f"{wheel.name}: two files would be written at {a.arcname}; an artifact must not share its path in the "
                "wheel with a project file or another artifact (rename one of them)"
            )
        seen.add(a.arcname)
        if a.compression not in ("store", "deflate"):
            raise ValueError(f"{a.arcname}: compression must be 'store' or 'deflate', not {a.compression!r}")
        if not Path(a.source).is_file():
            raise WheelWriteError(f"{a.source}: artifact file not found")


def _write_artifact(target: _Target, artifact: Artifact) -> WrittenArtifact:
    deflate = artifact.compression == "deflate"
    with open(artifact.source, "rb") as f:
        st = os.fstat(f.fileno())
        # A digest computed earlier in this build is reused when the open file is provably the one that
        # was hashed (same device, inode, size, mtime and ctime, checked again after the copy).
        opened = stat_fingerprint(st)
        reuse = artifact.sha256 is not None and bool(artifact.fingerprint) and artifact.fingerprint == opened
        e = Entry(
            name=artifact.arcname.encode("utf-8"),
            flags=0 if artifact.arcname.isascii() else UTF8_FLAG,
            method=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED,
            dos_time=target.dos_time,
            dos_date=target.dos_date,
            crc=0,
            compressed_size=0,
            size=0,
            offset=0,
            external_attr=(_normalized_mode(st.st_mode) & 0xFFFF) << 16,
            # Deflate output can slightly exceed its input; reserve zip64 as the standard library does.
            zip64_local=(st.st_size * 1.05 if deflate else st.st_size) > zipstream.ZIP64_LIMIT,
        )
        target.out.begin(e)
        sha = None if reuse else hashlib.sha256()
        if deflate:
            level = target.level if target.level is not None else deflate_level(st.st_size)
            e.crc, e.size, e.compressed_size = _deflate_into(target, f, sha, level)
        else:
            e.crc, e.size = _store_into(target.out.fh, f, sha)
            e.compressed_size = e.size
        if reuse and stat_fingerprint(os.fstat(f.fileno())) != opened:
            raise WheelWriteError(
                f"{artifact.source}: changed while it was being written into the wheel; rebuild once nothing else is writing to it"
            )
    target.out.finish(e)
    if sha is None:
        assert artifact.sha256 is not None  # reuse implies a known digest
        digest = artifact.sha256
    else:
        digest = sha.hexdigest()
        if artifact.sha256 is not None and artifact.sha256 != digest:
            raise WheelWriteError(
                f"{artifact.source}: changed during the build (sha256 {digest}, but it was analysed as {artifact.sha256}); "
                "rebuild once nothing else is writing to it"
            )
    return WrittenArtifact(artifact.arcname, digest, e.size, artifact.compression, e.compressed_size)


def _deflate_into(target: _Target, f: io.BufferedReader, sha: hashlib._Hash | None, level: int) -> tuple[int, int, int]:
    """Deflate ``f`` block by block on the pool, in order; returns (crc, size, compressed size)."""
    crc = size = written = 0
    pending: deque[Future[bytes]] = deque()
    zdict: bytes | None = None
    for block, last in blocks(f, BLOCK):
        pending.append(target.pool.submit(deflate_block, block, zdict, last, level))
        if sha is not None:
            sha.update(block)
        crc = crc32(block, crc)
        size += len(block)
        zdict = block[-WINDOW:]
        while len(pending) > 2 * target.workers:
            written += target.out.fh.write(pending.popleft().result())
    while pending:  # blocks() yields at least one block, so an empty file gets a final empty block
        written += target.out.fh.write(pending.popleft().result())
    return crc, size, written


def _store_into(fh: BinaryIO, f: io.BufferedReader, sha: hashlib._Hash | None) -> tuple[int, int]:
    """Copy ``f`` as is; returns (crc, size)."""
    crc = size = 0
    buf = bytearray(COPY_CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        chunk = view[:n]
        if sha is not None:
            sha.update(chunk)
        crc = crc32(chunk, crc)
        fh.write(chunk)
        size += n
    return crc, size


def _write_record(
    out: ZipOut, record_info: zipfile.ZipInfo, rows: list[list[str]], dist_info: str, written: list[WrittenArtifact]
) -> None:
    """RECORD: hatchling's rows with the artifacts inserted before the metadata rows, itself last."""
    record_path = record_info.filename
    rows = [r for r in rows if r and r[0] != record_path]
    first_meta = next((i for i, r in enumerate(rows) if r[0].startswith(dist_info + "/")), len(rows))
    new_rows = [[w.arcname, record_hash(bytes.fromhex(w.sha256)), str(w.size)] for w in written]
    rows[first_meta:first_meta] = new_rows
    rows.append([record_path, "", ""])
    text = io.StringIO()
    writer = csv.writer(text, delimiter=",", quotechar='"', lineterminator="\n")
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    method = record_info.compress_type
    if method != zipfile.ZIP_STORED:
        method, payload = zipfile.ZIP_DEFLATED, deflate_block(data, None, True, DEFLATE_LEVEL)
    else:
        payload = data
    e = entry_like(
        record_info,
        name=record_path.encode("utf-8"),
        flags=record_info.flag_bits & UTF8_FLAG,
        method=method,
        crc=zlib.crc32(data),
        compressed_size=len(payload),
        size=len(data),
    )
    out.begin(e)
    out.fh.write(payload)
    out.finish(e)
