"""The manifest the loader reads: per model, its files with size and sha256, format, requirements.

The manifest is the contract between build and load: per model, the files with their size and sha256,
the format, the run-time requirements, the framework versions the artifact records, and what the
pickle scan found. It holds no absolute paths and no times (except in editable installs, which point
at the source tree), so two builds of the same sources are byte-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hatch_modelpack import __version__
from hatch_modelpack.analysis import FileEntry, PackedModel, analyse, requirements
from hatch_modelpack.config import ModelConfig, PackConfig
from hatch_modelpack.contract import CHECK_DIR, DATA_DIR, LOADER_NAME, MANIFEST_NAME, MANIFEST_VERSION, SOURCE_RECORD
from hatch_modelpack.hashing import CHUNK_SIZE, CHUNKED_MIN, HASH_CHUNK, fingerprint, hash_file, hash_file_chunked

# Its own functions, and names that lived here before (their homes: contract, hashing, analysis), kept
# importable from here for code written against the earlier layout.
__all__ = [
    "CHUNKED_MIN",
    "CHUNK_SIZE",
    "DATA_DIR",
    "HASH_CHUNK",
    "LOADER_NAME",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "SOURCE_RECORD",
    "FileEntry",
    "PackedModel",
    "analyse",
    "build_manifest",
    "check_archive_paths",
    "dumps",
    "fingerprint",
    "hash_file",
    "hash_file_chunked",
    "model_entry",
    "requirements",
    "source_info",
]


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


def check_archive_paths(model: ModelConfig) -> dict[str, str]:
    """role -> path of the check file inside the package (``_checks/<name>/<basename>``)."""
    if model.check is None:
        return {}
    files = model.check.files()
    paths = {role: f"{CHECK_DIR}/{model.name}/{src.name}" for role, src in files.items()}
    if len(set(paths.values())) != len(paths):  # input and expected share a basename
        paths = {role: f"{CHECK_DIR}/{model.name}/{role}{src.suffix.lower()}" for role, src in files.items()}
    return paths


def check_entry(model: ModelConfig, editable_root: Path | None = None) -> dict[str, Any] | None:
    """The manifest's ``check`` entry: the files (path relative to the package, size, sha256) and settings.

    In editable installs the paths are relative to the source tree, like the artifacts'.
    """
    check = model.check
    if check is None:
        return None
    paths = check_archive_paths(model)
    written = {"input": check.input, "expected": check.expected}
    entry: dict[str, Any] = {}
    for role, src in check.files().items():
        size, sha = hash_file(src)
        rel = paths[role] if editable_root is None else src.relative_to(os.path.realpath(editable_root)).as_posix()
        entry[role] = {"path": rel, "size": size, "sha256": sha, "source": written[role]}
    entry["tolerance"] = check.tolerance
    if check.method is not None:
        entry["method"] = check.method
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
    models: list[PackedModel] | tuple[PackedModel, ...],
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
        check = check_entry(packed.config, editable_root)
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
