"""joblib files (``joblib.dump``), plain or compressed: scanned statically, loaded with ``joblib.load``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats.pickle import PickleFormat, inspect_pickled
from hatch_modelpack.scanning import detect_compression


class JoblibFormat(Format):
    name: ClassVar[str] = "joblib"
    suffixes: ClassVar[tuple[str, ...]] = (".joblib", ".jbl", ".jl")

    def sniff(self, path: Path, head: bytes) -> bool:
        return detect_compression(head) is not None or PickleFormat().sniff(path, head)

    def inspect(self, path: Path, label: str) -> Inspection:
        inspection = inspect_pickled(path, label, "joblib")
        inspection.requires = sorted({*inspection.requires, "joblib"})
        return inspection
