"""TensorFlow SavedModel directories: loaded with ``tf.saved_model.load``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from hatch_modelpack.formats import Format, Inspection


class SavedModelFormat(Format):
    name: ClassVar[str] = "savedmodel"
    directory: ClassVar[bool] = True

    def sniff(self, path: Path, head: bytes) -> bool:
        return (path / "saved_model.pb").is_file()

    def inspect(self, path: Path, label: str) -> Inspection:
        return Inspection(requires=["tensorflow"])
