"""Raw artifacts: any file or directory (a tokenizer, a vocabulary, a lookup table, a config).

Nothing is read or inferred: the bytes ship as they are, are hashed and verified like every other
artifact, and ``load()`` hands back their path for the service to open. A raw artifact needs no
framework, so it adds no requirement. It is never inferred from a suffix: a model declares it with
``format = "raw"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from hatch_modelpack.formats import Format, Inspection


class RawFormat(Format):
    name: ClassVar[str] = "raw"
    # A file *or* a directory: `detect()` returns this format for any path once it is declared.
    directory: ClassVar[bool] = False

    def sniff(self, path: Path, head: bytes) -> bool:
        return True

    def inspect(self, path: Path, label: str) -> Inspection:
        details = {"kind": "directory" if path.is_dir() else "file"}
        return Inspection(requires=[], frameworks={}, details=details)
