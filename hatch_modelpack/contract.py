"""Names fixed between the build and the files that ship in model wheels: one home for each.

The runtime files (:mod:`hatch_modelpack.runtime`) must stay standard-library only, so they repeat a
few of these values; ``tests/test_runtime.py`` asserts that their copies equal the ones here.
Standard library only as well: the ``modelpack`` CLI's library runs inside other environments.
"""

from __future__ import annotations

#: Written into every manifest; the loader refuses a manifest newer than the one it understands.
MANIFEST_VERSION = 1
MANIFEST_NAME = "_modelpack.json"
#: The generated loader module inside the package.
LOADER_NAME = "_modelpack.py"
#: Every module of the loader as it ships inside the package -> its file in hatch_modelpack/runtime/.
#: ``_modelpack.py`` is the public one; the others are its private parts, which it imports relatively
#: (``from . import _modelpack_formats``), so their files carry the names they ship under.
LOADER_FILES = {
    LOADER_NAME: "loader.py",
    "_modelpack_errors.py": "_modelpack_errors.py",
    "_modelpack_integrity.py": "_modelpack_integrity.py",
    "_modelpack_versions.py": "_modelpack_versions.py",
    "_modelpack_signature.py": "_modelpack_signature.py",
    "_modelpack_unpickle.py": "_modelpack_unpickle.py",
    "_modelpack_formats.py": "_modelpack_formats.py",
    "_modelpack_check.py": "_modelpack_check.py",
}
#: Artifacts live at ``<package>/_models/<model>/<basename>``; check examples under ``_checks/<model>/``.
DATA_DIR = "_models"
CHECK_DIR = "_checks"
#: Written into the sdist so a wheel built from it still knows the commit it came from.
SOURCE_RECORD = "_modelpack_source.json"
#: Installed model packages are discoverable through this entry-point group without importing them.
ENTRY_POINT_GROUP = "modelpack.models"
#: Editable installs of packages with their own ``__init__.py`` get an import hook of this name prefix.
EDITABLE_PREFIX = "_modelpack_editable_"

#: Every format a model may declare (``raw`` is only ever declared, never inferred).
FORMAT_NAMES = (
    "joblib",
    "pickle",
    "keras",
    "savedmodel",
    "skops",
    "onnx",
    "raw",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch",
    "torchscript",
    "pt2",
    "safetensors",
    "transformers",
)
#: How an artifact is stored in the wheel; ``auto`` stores files deflate would not shrink.
COMPRESSIONS = ("auto", "deflate", "store")

#: The manifest's keys: top level, per model, per file, per check. The loader reads a subset of them.
MANIFEST_KEYS = frozenset(
    {
        "manifest_version",
        "generator",
        "distribution",
        "version",
        "package",
        "default",
        "models",
        "source",
        "build_time",
        "editable_root",
    }
)
MODEL_ENTRY_KEYS = frozenset(
    {
        "name",
        "format",
        "path",
        "kind",
        "files",
        "requires",
        "frameworks",
        "version_checks",
        "description",
        "metadata",
        "source",
        "details",
        "globals",
        "check",
        "signature",  # written by a shipped signature or `modelpack sign`; absent when unsigned
    }
)
FILE_KEYS = frozenset({"path", "size", "sha256", "chunk_size", "chunks"})
CHECK_ENTRY_KEYS = frozenset({"input", "expected", "tolerance", "method"})
VERSION_CHECK_KEYS = frozenset({"distribution", "recorded", "requirement", "clauses"})
