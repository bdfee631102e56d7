"""Every format, in inference order, and :func:`detect`: which format an artifact is.

The names match ``hatch_modelpack.contract.FORMAT_NAMES`` (``tests/test_runtime.py`` checks it).
"""

from __future__ import annotations

from pathlib import Path

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format
from hatch_modelpack.formats.catboost import CatBoostFormat
from hatch_modelpack.formats.joblib import JoblibFormat
from hatch_modelpack.formats.keras import KerasFormat
from hatch_modelpack.formats.lightgbm import LightGBMFormat
from hatch_modelpack.formats.onnx import OnnxFormat
from hatch_modelpack.formats.pickle import PickleFormat
from hatch_modelpack.formats.pt2 import Pt2Format
from hatch_modelpack.formats.raw import RawFormat
from hatch_modelpack.formats.safetensors import SafetensorsFormat
from hatch_modelpack.formats.savedmodel import SavedModelFormat
from hatch_modelpack.formats.skops import SkopsFormat
from hatch_modelpack.formats.torch import TorchFormat
from hatch_modelpack.formats.torchscript import TorchScriptFormat
from hatch_modelpack.formats.transformers import TransformersFormat
from hatch_modelpack.formats.xgboost import XGBoostFormat

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
RAW = "raw"


def _registry() -> dict[str, Format]:
    # Order matters for inference: the first format whose suffix matches is checked against the bytes.
    # ``raw`` is never inferred; it is used only when declared.
    formats = (
        JoblibFormat(),
        PickleFormat(),
        KerasFormat(),
        SavedModelFormat(),
        SkopsFormat(),
        OnnxFormat(),
        RawFormat(),
        XGBoostFormat(),
        LightGBMFormat(),
        CatBoostFormat(),
        TorchFormat(),
        TorchScriptFormat(),
        Pt2Format(),
        SafetensorsFormat(),
        TransformersFormat(),
    )
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
            raise ArtifactError(
                f"{label}: is a Git LFS pointer file, not the artifact itself. Run `git lfs pull` (and `git lfs install` once) to fetch the real file, then build again."
            )
        return FORMATS[RAW]
    if path.is_dir():
        if declared is not None and not (FORMATS[declared].directory or FORMATS[declared].directory_too):
            raise ArtifactError(
                f"{label}: is a directory, but `{key}.format` says {declared!r}, which is a single file. Point `{key}.path` at the file, or declare the directory's format."
            )
        for fmt in FORMATS.values():
            if (fmt.directory or fmt.directory_too) and (declared in (None, fmt.name)) and fmt.sniff(path, b""):
                return fmt
        if declared == "savedmodel" or (path / "variables").is_dir():
            raise ArtifactError(
                f"{label}: is declared (or looks like) a TensorFlow SavedModel but holds no saved_model.pb. Export the model again with model.export(dir) or tf.saved_model.save(model, dir), and point `{key}.path` at that directory."
            )
        raise ArtifactError(
            f'{label}: is a directory that is not a TensorFlow SavedModel (no saved_model.pb). Point `{key}.path` at the model file itself or at a SavedModel directory, or add format = "raw" to `{key}` to ship the directory as it is (load() then returns its path).'
        )
    head = _head(path)
    if not head:
        raise ArtifactError(
            f"{label}: is an empty file. Save the model again (e.g. joblib.dump(model, path)) and check that the training run finished."
        )
    if head.startswith(LFS_POINTER):
        raise ArtifactError(
            f"{label}: is a Git LFS pointer file, not the model itself. Run `git lfs pull` (and `git lfs install` once) to fetch the real file, then build again."
        )
    if declared is not None:
        fmt = FORMATS[declared]
        if fmt.directory:
            raise ArtifactError(
                f"{label}: is a file, but `{key}.format` says {declared!r}, which is a directory format. Point `{key}.path` at the directory, or fix the format."
            )
        if not fmt.sniff(path, head):
            raise ArtifactError(
                f"{label}: is declared as {declared!r} in `{key}.format`, but its bytes are {_describe_bytes(path, head)}. Check that the file is the model you meant (not truncated or overwritten), or fix `{key}.format`."
            )
        return fmt
    suffix = path.suffix.lower()
    candidates = [fmt for fmt in FORMATS.values() if suffix in fmt.suffixes]
    for fmt in candidates:  # a suffix may belong to several formats (.pt: torch or torchscript): the bytes decide
        if fmt.sniff(path, head):
            return fmt
    if candidates:
        fmt = candidates[0]
        raise ArtifactError(
            f"{label}: has the {suffix} suffix of the {fmt.name} format, but its bytes are {_describe_bytes(path, head)}. Check that the file is the model you meant (not truncated, overwritten or garbage), or set `{key}.format`."
        )
    raise ArtifactError(
        f"{label}: the format cannot be inferred from the suffix {suffix or '(none)'!r}. Set `{key}.format` to one of: {', '.join(FORMATS)}."
    )
