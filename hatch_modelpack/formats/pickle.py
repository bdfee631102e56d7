"""Plain pickle files (``pickle.dump``): scanned statically, loaded with ``pickle.load``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ScanError, WrongFormatError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats.boosters import apply_to_inspection
from hatch_modelpack.requirements import distribution_for_module
from hatch_modelpack.scanning import one_version, scan_file, sklearn_input_schema

_SAVE = {"joblib": "joblib.dump(model, path)", "pickle": "pickle.dump(model, f, protocol=5)"}


def inspect_pickled(path: Path, label: str, kind: str) -> Inspection:
    """Shared by pickle and joblib: scan, then map the globals to distributions."""
    try:
        result = scan_file(path, kind, label)  # once per process: the Analysis that asks is memoised
    except WrongFormatError:
        raise  # it says the one fix; the generic advice below would contradict it
    except ScanError as exc:
        # The scanner says what it could not read; the user needs to know what to do about it.
        raise ScanError(
            f"{exc}. hatch-modelpack reads every {kind} artifact without unpickling it and refuses what it "
            f"cannot fully account for. Check that this is the file {_SAVE[kind]} wrote (not truncated, "
            "overwritten or an unrelated file) and save the model again, or fix the model's `path`/`format`."
        ) from None
    requires: set[str] = set()
    for g in result.globals:
        dist = distribution_for_module(g.module)
        if dist is None:
            continue
        # numpy 2 writes numpy._core paths, which numpy 1.x cannot import (numpy/numpy#28340).
        if dist == "numpy" and (g.module == "numpy._core" or g.module.startswith("numpy._core.")):
            requires.add("numpy>=2")
        else:
            requires.add(dist)
    if "numpy>=2" in requires:
        requires.discard("numpy")
    frameworks = {}
    for dist, versions in result.recorded_versions.items():
        version = one_version(label, dist, versions)
        if version is not None:
            frameworks[dist] = version
    details: dict[str, Any] = {"protocol": result.protocol, "compression": result.compression}
    schema = sklearn_input_schema(result.root)
    if schema:
        details["input_schema"] = schema
    if result.nested_pickles:
        details["nested_pickles"] = result.nested_pickles
    if requires & {"xgboost", "lightgbm", "catboost"}:  # version bounds from the embedded native models
        apply_to_inspection(result.root, requires, frameworks, details, label)
    return Inspection(
        requires=sorted(requires),
        frameworks=frameworks,
        details=details,
        globals=set(result.globals),
        uses={g: set(u) for g, u in result.uses.items()},
    )


class PickleFormat(Format):
    name: ClassVar[str] = "pickle"
    suffixes: ClassVar[tuple[str, ...]] = (".pkl", ".pickle", ".pk")

    def sniff(self, path: Path, head: bytes) -> bool:
        # Protocol 2+ starts with PROTO; protocols 0 and 1 start with an opcode such as '(' or 'c'.
        return head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"}", b"]", b"I", b"N", b"S", b"V")

    def inspect(self, path: Path, label: str) -> Inspection:
        return inspect_pickled(path, label, "pickle")
