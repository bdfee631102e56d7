"""From validated config to analysed models: format, scan result, requirements, files with digests.

Reads, never loads. One :class:`Analysis` per configuration and per state of the artifacts' bytes is
kept for the process, so the metadata hook, the build hook's steps, the smoke check and
``modelpack init`` share it instead of detecting and scanning every artifact again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hatch_modelpack.config import ModelConfig, PackConfig
from hatch_modelpack.errors import ArtifactError, UnsafePickleError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats.registry import detect
from hatch_modelpack.hashing import CHUNK_SIZE, fingerprint, hash_file_chunked
from hatch_modelpack.requirements import DEFAULT_PINS, merge, pin, specifier_clauses
from hatch_modelpack.safety import check_globals

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
    """One analysed artifact. ``files`` is empty until :meth:`Analysis.hash_files` (only wheels need digests)."""

    config: ModelConfig
    format: Format
    inspection: Inspection
    requires: list[str]
    version_checks: list[dict[str, Any]]
    files: list[FileEntry] = field(default_factory=list)
    sources: tuple[tuple[str, Path], ...] = ()  # (path relative to the artifact's parent, file) that ship

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def basename(self) -> str:
        return self.config.source.name


@dataclass
class Analysis:
    """Every model of one :class:`PackConfig`, analysed, and the union of their requirements."""

    pack: PackConfig
    models: tuple[PackedModel, ...]
    requirements: list[str]

    def hash_files(self) -> Analysis:
        """Fill in every model's files with size and sha256 (once; a wheel build needs them)."""
        for packed in self.models:
            if not packed.files:
                packed.files = [_hashed_entry(rel, src) for rel, src in packed.sources]
        return self


def _hashed_entry(rel: str, src: Path) -> FileEntry:
    before = fingerprint(src)
    size, sha, chunks = hash_file_chunked(src)
    return FileEntry(rel, src, size, sha, chunks, before if fingerprint(src) == before else ())


def artifact_files(model: ModelConfig, root: Path) -> list[tuple[str, Path]]:
    """The files that ship for ``model``: (path relative to the artifact's parent, file), in a fixed order."""
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
        raise ArtifactError(
            f"{src}: the artifact directory of `models.{model.name}` holds no files. Export the model into it again."
        )
    return out


def _version_checks(frameworks: dict[str, str], requires: list[str]) -> list[dict[str, Any]]:
    by_name = {canonicalize_name(Requirement(r).name): r for r in requires}
    checks = []
    for dist, recorded in sorted(frameworks.items()):
        req = by_name.get(canonicalize_name(dist))
        if req is None:
            continue
        checks.append(
            {"distribution": dist, "recorded": recorded, "requirement": req, "clauses": specifier_clauses(req)}
        )
    return checks


def _refuse_unsafe(pack: PackConfig, m: ModelConfig, inspection: Inspection, label: str, key: str) -> None:
    if inspection.globals is None:
        return
    allow = (*pack.allow_globals, *m.allow_globals)
    findings = check_globals(inspection.globals, pack.package, allow, uses=inspection.uses, root=pack.root)
    if not findings:
        return
    lines = "; ".join(f"{f.name} {f.reason}" for f in findings)
    overridable = [f.name for f in findings if f.overridable]
    fix = (
        f"If you trust them, allow them with allow-globals = {json.dumps(overridable)} in [{key}] and build again."
        if overridable and len(overridable) == len(findings)
        else "These cannot be allowed: re-train and save the model without them, or ship it as a safer format."
    )
    raise UnsafePickleError(
        f"{label}: unpickling this artifact would import globals that hatch-modelpack refuses: {lines}. {fix}"
    )


def _requires(pack: PackConfig, m: ModelConfig, inspection: Inspection) -> list[str]:
    if m.requires is not None:
        return merge(m.requires)
    pinned = []
    for req in inspection.requires:
        name = Requirement(req).name
        recorded = inspection.frameworks.get(name)
        if recorded is not None and not Requirement(req).specifier:
            policy = m.pin or pack.pin or DEFAULT_PINS.get(name, "minimum")
            pinned.append(pin(name, recorded, policy))
        else:
            pinned.append(req)
    return merge(pinned)


def _analyse_model(pack: PackConfig, m: ModelConfig) -> PackedModel:
    key = f"{pack.table}.models.{m.name}"
    label = f"{m.path} (models.{m.name})"
    fmt = detect(m.source, m.format, label, key)
    inspection = fmt.inspect(m.source, label)
    fmt.review(inspection, m, pack, label, key)
    _refuse_unsafe(pack, m, inspection, label, key)
    requires = _requires(pack, m, inspection)
    sources = tuple(artifact_files(m, pack.root))
    return PackedModel(m, fmt, inspection, requires, _version_checks(inspection.frameworks, requires), sources=sources)


# id(pack) -> (fingerprints of every file read, its analysis). The Analysis holds the pack, so the
# id stays unique while the entry lives; a changed file changes the fingerprints and forces a new one.
_ANALYSES: dict[int, tuple[tuple[Any, ...], Analysis]] = {}


def _state(pack: PackConfig) -> tuple[Any, ...]:
    state: list[Any] = []
    for m in pack.models:
        if m.source.is_dir():
            state += [(str(p), fingerprint(p)) for p in sorted(m.source.rglob("*")) if p.is_file()]
        elif m.source.exists():
            state.append((str(m.source), fingerprint(m.source)))
    return tuple(state)


def analysis_of(pack: PackConfig) -> Analysis:
    """Detect, scan and check every model of ``pack``, once per state of the artifacts; refuse unsafe pickles."""
    state = _state(pack)
    cached = _ANALYSES.get(id(pack))
    if cached is not None and cached[0] == state and cached[1].pack is pack:
        return cached[1]
    models = tuple(_analyse_model(pack, m) for m in pack.models)
    analysis = Analysis(pack, models, merge(r for m in models for r in m.requires))
    _ANALYSES[id(pack)] = (state, analysis)
    return analysis


def analyse(pack: PackConfig, *, hash_files: bool = True) -> list[PackedModel]:
    """The analysed models of ``pack`` (see :func:`analysis_of`), with digests when ``hash_files``."""
    analysis = analysis_of(pack)
    if hash_files:
        analysis.hash_files()
    return list(analysis.models)


def requirements(models: list[PackedModel]) -> list[str]:
    """Every run-time requirement of the models, one line per distribution."""
    return merge(r for m in models for r in m.requires)
