"""Keras 3 ``.keras`` archives and legacy ``.h5`` files: versions read from the file, never loaded."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class KerasFormat(Format):
    name: ClassVar[str] = "keras"
    suffixes: ClassVar[tuple[str, ...]] = (".keras", ".h5", ".hdf5")

    def sniff(self, path: Path, head: bytes) -> bool:
        if head.startswith(HDF5_SIGNATURE):
            return True
        if not head.startswith(b"PK"):
            return False
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
        return "metadata.json" in names and "config.json" in names

    def inspect(self, path: Path, label: str) -> Inspection:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(HDF5_SIGNATURE):
            return Inspection(requires=["keras", "tensorflow"], details={"container": "h5"})
        try:
            with zipfile.ZipFile(path) as zf:
                meta = json.loads(zf.read("metadata.json"))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ArtifactError(f"{label}: is not a readable .keras archive ({exc}). Save the model again with model.save(path).") from None
        version = meta.get("keras_version") if isinstance(meta, dict) else None
        frameworks = {"keras": version} if isinstance(version, str) else {}
        return Inspection(requires=["keras", "tensorflow"], frameworks=frameworks, details={"container": "keras"})
