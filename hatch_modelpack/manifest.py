"""From validated config to analysed models, requirements and the manifest the loader reads.

The manifest is the contract between build and load: per model, the files with their size and sha256,
the format, the run-time requirements, the framework versions the artifact records, and what the
pickle scan found. It holds no absolute paths and no times (except in editable installs, which point
at the source tree), so two builds of the same sources are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hatch_modelpack import __version__
from hatch_modelpack.config import ModelConfig, PackConfig
from hatch_modelpack.errors import ArtifactError, UnsafePickleError
from hatch_modelpack.formats import Format, Inspection, detect
from hatch_modelpack.requirements import DEFAULT_PINS, merge, pin, specifier_clauses
from hatch_modelpack.safety import check_globals
from hatch_modelpack.smoke import check_manifest

MANIFEST_VERSION = 1
MANIFEST_NAME = "_modelpack.json"
#: Written into the sdist so a wheel built from it still knows the commit it came from.
SOURCE_RECORD = "_modelpack_source.json"
LOADER_NAME = "_modelpack.py"
DATA_DIR = "_models"
HASH_CHUNK = 1 << 20
#: Files of at least CHUNKED_MIN bytes also record a sha256 per CHUNK_SIZE bytes (the loader hashes them in parallel).
CHUNK_SIZE = 4 << 20
CHUNKED_MIN = 16 << 20

# Hatchling leaves these out of force-included directories; the manifest must list what ships.
_SKIP_DIRS = frozenset({".git", "__pycache__", ".hg", ".svn", ".tox", ".nox", ".venv", "venv"})
_SKIP_FILES = frozenset({"Thumbs.db", "ehthumbs.db", "Desktop.ini", ".DS_Store"})
try:  # Prefer hatchling's own lists when it is importable (it always is during a build).
    from hatchling.builders.constants import EXCLUDED_DIRECTORIES as _HD
    from hatchling.builders.constants import EXCLUDED_FILES as _HF

    _SKIP_DIRS, _SKIP_FILES = frozenset(_HD), frozenset(_HF)
except ImportError:  # pragma: no cover - the CLI may run without hatchling
    pass


@dataclass(frozen=True)
class FileEntry:
    path: str  # posix, relative to the artifact's parent directory
    source: Path
    size: int
    sha256: str
    chunks: tuple[str, ...] = ()
    # (dev, ino, size, mtime_ns, ctime_ns) when unchanged across hashing: lets the wheel writer reuse
    # the digest instead of hashing the same bytes again. Not part of the manifest.
    fingerprint: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.chunks:
            out["chunk_size"] = CHUNK_SIZE
            out["chunks"] = list(self.chunks)
        return out


@dataclass
class PackedModel:
    config: ModelConfig
    format: Format
    inspection: Inspection
    requires: list[str]
    version_checks: list[dict[str, Any]]
    files: list[FileEntry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def basename(self) -> str:
        return self.config.source.name


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, streamed in 1 MiB chunks so memory stays flat at any size."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


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
        while data := f.read(CHUNK_SIZE):
            futures.append(pool.submit(_sha256_hex, data))
            digest.update(data)
            size += len(data)
            while len(futures) > 2:
                chunks.append(futures.popleft().result())
        chunks.extend(fut.result() for fut in futures)
    return size, digest.hexdigest(), tuple(chunks) if size >= CHUNKED_MIN else ()


def fingerprint(path: Path) -> tuple[int, ...]:
    """What changes when a file's bytes can have changed; ctime cannot be set back without root."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hashed_entry(rel: str, src: Path) -> FileEntry:
    before = fingerprint(src)
    size, sha, chunks = hash_file_chunked(src)
    return FileEntry(rel, src, size, sha, chunks, before if fingerprint(src) == before else ())


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _artifact_files(model: ModelConfig, root: Path) -> list[tuple[str, Path]]:
    src = model.source
    if src.is_file():
        return [(src.name, src)]
    root_real = Path(os.path.realpath(root))
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fname in sorted(filenames):
            if fname in _SKIP_FILES:
                continue
            full = Path(dirpath) / fname
            real = Path(os.path.realpath(full))
            if root_real not in real.parents:
                raise ArtifactError(
                    f"{full}: a symbolic link in the artifact of `models.{model.name}` leads outside the project "
                    f"({real}). Replace the link with the file itself."
                )
            rel = (Path(src.name) / full.relative_to(src)).as_posix()
            out.append((rel, full))
    if not out:
        raise ArtifactError(f"{src}: the artifact directory of `models.{model.name}` holds no files. Export the model into it again.")
    return out


def _version_checks(frameworks: dict[str, str], requires: list[str]) -> list[dict[str, Any]]:
    by_name = {canonicalize_name(Requirement(r).name): r for r in requires}
    checks = []
    for dist, recorded in sorted(frameworks.items()):
        req = by_name.get(canonicalize_name(dist))
        if req is None:
            continue
        checks.append({"distribution": dist, "recorded": recorded, "requirement": req, "clauses": specifier_clauses(req)})
    return checks


def analyse(pack: PackConfig, *, hash_files: bool = True) -> list[PackedModel]:
    """Detect, scan and (optionally) hash every model; refuse unsafe pickles. Reads, never loads."""
    table = pack.table
    models = []
    for m in pack.models:
        key = f"{table}.models.{m.name}"
        label = f"{m.path} (models.{m.name})"
        fmt = detect(m.source, m.format, label, key)
        inspection = fmt.inspect(m.source, label)
        if inspection.globals is not None:
            allow = (*pack.allow_globals, *m.allow_globals)
            findings = check_globals(inspection.globals, pack.package, allow, uses=inspection.uses, root=pack.root)
            if findings:
                lines = "; ".join(f"{f.name} {f.reason}" for f in findings)
                overridable = [f.name for f in findings if f.overridable]
                fix = (
                    f"If you trust them, allow them with allow-globals = {json.dumps(overridable)} in [{key}] and build again."
                    if overridable and len(overridable) == len(findings)
                    else "These cannot be allowed: re-train and save the model without them, or ship it as a safer format."
                )
                raise UnsafePickleError(f"{label}: unpickling this artifact would import globals that hatch-modelpack refuses: {lines}. {fix}")
        if m.requires is not None:
            requires = merge(m.requires)
        else:
            pinned = []
            for req in inspection.requires:
                name = Requirement(req).name
                recorded = inspection.frameworks.get(name)
                if recorded is not None and not Requirement(req).specifier:
                    policy = m.pin or pack.pin or DEFAULT_PINS.get(name, "minimum")
                    pinned.append(pin(name, recorded, policy))
                else:
                    pinned.append(req)
            requires = merge(pinned)
        packed = PackedModel(m, fmt, inspection, requires, _version_checks(inspection.frameworks, requires))
        if hash_files:
            packed.files = [_hashed_entry(rel, src) for rel, src in _artifact_files(m, pack.root)]
        models.append(packed)
    return models


def requirements(models: list[PackedModel]) -> list[str]:
    """Every run-time requirement of the models, one line per distribution."""
    return merge(r for m in models for r in m.requires)


def model_entry(packed: PackedModel, path: str) -> dict[str, Any]:
    m = packed.config
    entry: dict[str, Any] = {
        "name": m.name,
        "format": packed.format.name,
        "path": path,
        "kind": "directory" if packed.format.directory or packed.config.source.is_dir() else "file",
        "files": [f.as_dict() for f in packed.files],
        "requires": packed.requires,
        "frameworks": dict(sorted(packed.inspection.frameworks.items())),
        "version_checks": packed.version_checks,
        "description": m.description,
        "metadata": m.metadata,
        "source": m.path,
    }
    if packed.inspection.details:
        entry["details"] = packed.inspection.details
    if packed.inspection.globals is not None:
        entry["globals"] = sorted(str(g) for g in packed.inspection.globals)
    return entry


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def source_info(root: Path) -> dict[str, Any]:
    """Where the build's sources came from: the git commit, and whether tracked files had changes.

    A wheel built from an sdist has no git checkout; the sdist carries the record (SOURCE_RECORD).
    """
    record = root / SOURCE_RECORD
    if record.is_file():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            data = None
        if isinstance(data, dict):
            return {k: data[k] for k in ("commit", "dirty") if k in data}
    if _git(root, "rev-parse", "--is-inside-work-tree") != "true":
        return {}
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return {}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def build_time() -> str | None:
    """The build time, only when SOURCE_DATE_EPOCH fixes it: otherwise builds would differ byte-wise."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch or not epoch.isdigit():
        return None
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(
    pack: PackConfig,
    models: list[PackedModel],
    *,
    distribution: str,
    version: str,
    editable_root: Path | None = None,
) -> dict[str, Any]:
    """The manifest as a dict. In a wheel, model paths are relative to the package directory."""
    entries = {}
    for packed in models:
        if editable_root is None:
            path = f"{DATA_DIR}/{packed.name}/{packed.basename}"
        else:
            path = packed.config.source.relative_to(os.path.realpath(editable_root)).as_posix()
        entries[packed.name] = model_entry(packed, path)
        check = check_manifest(packed.config, editable_root)
        if check is not None:
            entries[packed.name]["check"] = check
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "generator": f"hatch-modelpack {__version__}",
        "distribution": distribution,
        "version": version,
        "package": pack.package,
        "default": pack.default,
        "models": entries,
    }
    source = source_info(pack.root)
    if source:
        manifest["source"] = source
    when = build_time()
    if when:
        manifest["build_time"] = when
    if editable_root is not None:
        manifest["editable_root"] = str(os.path.realpath(editable_root))
    return manifest


def dumps(manifest: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, fixed indentation, a final newline."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
