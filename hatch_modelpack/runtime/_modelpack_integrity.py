"""The sha256 checks: every file of a model hashed against the manifest before a byte is deserialised.

Part of the loader that ships in every model package beside ``_modelpack.py``: standard library
only, Python 3.8 syntax. Files that matched are remembered by their stat fingerprint, so a loader
reads (``_open_verified``) only the file that was hashed, not whatever sits at its path later.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ._modelpack_errors import IntegrityError

_HASH_CHUNK = 1 << 20


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: Path -> stat fingerprint of every file whose sha256 matched in this process.
_VERIFIED_FILES: Dict[str, Tuple[int, ...]] = {}


def _open_verified(file_path: Path) -> Any:
    """Open the file that was verified, not whatever sits at its path now.

    The unpickler reads from this handle, and the handle's device, inode, size, mtime and ctime must
    be those recorded when the sha256 matched: a file swapped or rewritten after the check is refused.
    """
    f = open(file_path, "rb")  # noqa: SIM115 - returned to the caller's with-block
    st = os.fstat(f.fileno())
    if _VERIFIED_FILES.get(str(file_path)) != _stat_key(st):
        f.close()
        raise IntegrityError(
            f"{file_path}: changed between its sha256 check and loading; nothing was loaded. Something is "
            "writing to the installed package: stop it and reinstall the package."
        )
    return f


def _verify_files(
    parent: Path, files: List[Dict[str, Any]], manifest: Dict[str, Any], whole: bool = False, spare: int = 0
) -> Optional[Tuple[Tuple[int, ...], ...]]:
    """Hash each file against its manifest entry (IntegrityError on a mismatch).

    Returns the files' fingerprints, remembered as verified, when no file changed while it was hashed;
    None otherwise (a file replaced during the check must not be remembered as good). ``spare``: cores
    left to the caller's own work (load() imports the framework meanwhile).
    """
    fingerprints = tuple(_fingerprint(parent / f["path"]) for f in files)
    for f in files:
        # whole: the sha256 of the whole file, not the (unsigned) chunk digests.
        _check_file(parent / f["path"], {k: v for k, v in f.items() if k != "chunks"} if whole else f, manifest, spare)
    if tuple(_fingerprint(parent / f["path"]) for f in files) != fingerprints:
        return None
    for f, fp in zip(files, fingerprints):
        _VERIFIED_FILES[str(parent / f["path"])] = fp
    return fingerprints


def _fingerprint(file_path: Path) -> Tuple[int, ...]:
    try:
        return _stat_key(os.stat(file_path))
    except OSError:
        return ()


def _stat_key(st: os.stat_result) -> Tuple[int, ...]:
    """What changes when a file's bytes can have changed (the build side's hashing.stat_fingerprint)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _check_file(file_path: Path, expected: Dict[str, Any], manifest: Dict[str, Any], spare: int = 0) -> None:
    editable = bool(manifest.get("editable_root"))
    fix = (
        "this is an editable install: run `pip install -e .` again"
        if editable
        else f"reinstall {manifest.get('distribution')}=={manifest.get('version')} from your package index "
        "(pip install --force-reinstall --no-deps ...)"
    )
    chunks = expected.get("chunks")
    if chunks:
        _check_chunks(file_path, expected, chunks, fix, spare)
        return
    digest = hashlib.sha256()
    size = 0
    try:
        with open(file_path, "rb") as f:
            buf = bytearray(_HASH_CHUNK)
            view = memoryview(buf)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                digest.update(view[:n])
                size += n
    except OSError as exc:
        raise IntegrityError(f"{file_path}: cannot be read ({exc.strerror}); {fix}") from None
    if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
        if editable:
            raise IntegrityError(
                f"{file_path}: the artifact changed since `pip install -e .` recorded it (sha256 "
                f"{digest.hexdigest()}, {size} bytes; recorded {expected['sha256']}, {expected['size']} bytes); "
                "nothing was loaded. To pick up the new model, run `pip install -e .` again (its requirements may "
                "have changed too)."
            )
        raise IntegrityError(
            f"{file_path}: sha256 {digest.hexdigest()} ({size} bytes) does not match the manifest's "
            f"{expected['sha256']} ({expected['size']} bytes); nothing was loaded. The file was modified "
            f"or corrupted after the package was built; {fix}"
        )


def _check_chunks(file_path: Path, expected: Dict[str, Any], chunks: List[str], fix: str, spare: int = 0) -> None:
    """Hash fixed-size chunks on all cores but ``spare`` (sha256 runs at 1-2 GB/s per core; hashlib
    releases the GIL).

    Every chunk's digest is in the manifest, so this is as strict as the whole-file sha256: any
    changed, missing or extra byte changes a chunk's digest or the size.
    """
    from concurrent.futures import ThreadPoolExecutor

    chunk_size = int(expected["chunk_size"])
    try:
        size = os.stat(file_path).st_size
    except OSError as exc:
        raise IntegrityError(f"{file_path}: cannot be read ({exc.strerror}); {fix}") from None

    def digest(index: int) -> str:
        with open(file_path, "rb", buffering=0) as f:  # one handle per chunk: no shared file position
            f.seek(index * chunk_size)
            return hashlib.sha256(f.read(chunk_size)).hexdigest()

    bad = None
    if size == expected["size"]:
        cores = available_cpus() - spare
        try:
            with ThreadPoolExecutor(max(1, min(cores, len(chunks), 8))) as pool:
                for index, got in enumerate(pool.map(digest, range(len(chunks)))):
                    if got != chunks[index]:
                        bad = index
                        break
        except OSError as exc:
            raise IntegrityError(f"{file_path}: cannot be read ({exc.strerror}); {fix}") from None
    if size != expected["size"] or bad is not None:
        where = (
            f"bytes {bad * chunk_size}-{min(size, (bad + 1) * chunk_size) - 1} differ"
            if bad is not None
            else f"{size} bytes, expected {expected['size']}"
        )
        raise IntegrityError(
            f"{file_path}: does not match the manifest ({where}; the manifest's sha256 is {expected['sha256']}); "
            f"nothing was loaded. The file was modified or corrupted after the package was built; {fix}"
        )
