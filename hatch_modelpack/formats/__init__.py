"""Artifact formats behind one small interface.

A format knows three things at build time: whether some bytes are its own (``sniff``), what an
artifact needs to load (``inspect``: requirements, recorded framework versions, scan results), and
whether it is a file or a directory. Loading lives in the generated loader, which must not import
this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.scanning import Global

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
RAW = "raw"


@dataclass
class Inspection:
    """What the build learned about an artifact without loading it."""

    requires: list[str]  # unpinned or format-constrained requirements
    frameworks: dict[str, str] = field(default_factory=dict)  # distribution -> version recorded in the artifact
    details: dict[str, Any] = field(default_factory=dict)  # format-specific manifest entries
    globals: set[Global] | None = None  # for pickle-based formats: what unpickling imports
    uses: dict[Global, set[str]] = field(default_factory=dict)  # how the stream uses each global (the policy checks each use)


class Format:
    """One artifact format. Subclasses are stateless; instances live in :data:`FORMATS`."""

    name: ClassVar[str]
    directory: ClassVar[bool] = False
    suffixes: ClassVar[tuple[str, ...]] = ()

    def sniff(self, path: Path, head: bytes) -> bool:
        """Whether the artifact's first bytes (or directory layout) belong to this format."""
        raise NotImplementedError

    def inspect(self, path: Path, label: str) -> Inspection:
        """Read what loading needs, statically. ``label`` names the artifact in errors."""
        raise NotImplementedError


def _registry() -> dict[str, Format]:
    from hatch_modelpack.formats.joblib import JoblibFormat
    from hatch_modelpack.formats.keras import KerasFormat
    from hatch_modelpack.formats.onnx import OnnxFormat
    from hatch_modelpack.formats.pickle import PickleFormat
    from hatch_modelpack.formats.raw import RawFormat
    from hatch_modelpack.formats.savedmodel import SavedModelFormat
    from hatch_modelpack.formats.skops import SkopsFormat

    # Order matters for inference: the first format whose suffix matches is checked against the bytes.
    # ``raw`` is never inferred; it is used only when declared.
    formats = (JoblibFormat(), PickleFormat(), KerasFormat(), SavedModelFormat(), SkopsFormat(), OnnxFormat(), RawFormat())
    return {f.name: f for f in formats}


FORMATS: dict[str, Format] = _registry()


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _describe_bytes(path: Path, head: bytes) -> str:
    for fmt in FORMATS.values():
        if not fmt.directory and fmt.name != RAW and fmt.sniff(path, head):
            return f"a {fmt.name} file"
    if head.startswith(b"PK"):
        return "a zip archive"
    return "none of the formats hatch-modelpack knows"


def detect(path: Path, declared: str | None, label: str, key: str) -> Format:
    """The format of the artifact at ``path``: the declared one, checked against the bytes, or inferred.

    ``label`` names the artifact and ``key`` the config key to change, for the error message.
    """
    if declared == RAW:  # any file or directory, shipped as it is; only a Git LFS pointer is surely wrong
        if path.is_file() and _head(path).startswith(LFS_POINTER):
            raise ArtifactError(f"{label}: is a Git LFS pointer file, not the artifact itself. Run `git lfs pull` (and `git lfs install` once) to fetch the real file, then build again.")
        return FORMATS[RAW]
    if path.is_dir():
        if declared is not None and not FORMATS[declared].directory:
            raise ArtifactError(f"{label}: is a directory, but `{key}.format` says {declared!r}, which is a single file. Point `{key}.path` at the file, or declare the directory's format.")
        for fmt in FORMATS.values():
            if fmt.directory and (declared in (None, fmt.name)) and fmt.sniff(path, b""):
                return fmt
        if declared == "savedmodel" or (path / "variables").is_dir():
            raise ArtifactError(f"{label}: is declared (or looks like) a TensorFlow SavedModel but holds no saved_model.pb. Export the model again with model.export(dir) or tf.saved_model.save(model, dir), and point `{key}.path` at that directory.")
        raise ArtifactError(f"{label}: is a directory that is not a TensorFlow SavedModel (no saved_model.pb). Point `{key}.path` at the model file itself or at a SavedModel directory, or add format = \"raw\" to `{key}` to ship the directory as it is (load() then returns its path).")
    head = _head(path)
    if not head:
        raise ArtifactError(f"{label}: is an empty file. Save the model again (e.g. joblib.dump(model, path)) and check that the training run finished.")
    if head.startswith(LFS_POINTER):
        raise ArtifactError(f"{label}: is a Git LFS pointer file, not the model itself. Run `git lfs pull` (and `git lfs install` once) to fetch the real file, then build again.")
    if declared is not None:
        fmt = FORMATS[declared]
        if fmt.directory:
            raise ArtifactError(f"{label}: is a file, but `{key}.format` says {declared!r}, which is a directory format. Point `{key}.path` at the directory, or fix the format.")
        if not fmt.sniff(path, head):
            raise ArtifactError(f"{label}: is declared as {declared!r} in `{key}.format`, but its bytes are {_describe_bytes(path, head)}. Check that the file is the model you meant (not truncated or overwritten), or fix `{key}.format`.")
        return fmt
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            if not fmt.sniff(path, head):
                raise ArtifactError(f"{label}: has the {suffix} suffix of the {fmt.name} format, but its bytes are {_describe_bytes(path, head)}. Check that the file is the model you meant (not truncated, overwritten or garbage), or set `{key}.format`.")
            return fmt
    raise ArtifactError(f"{label}: the format cannot be inferred from the suffix {suffix or '(none)'!r}. Set `{key}.format` to one of: {', '.join(FORMATS)}.")
