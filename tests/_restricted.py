"""Test helpers: run the static scan and the policy like the build, and load like the installed loader.

``load_restricted`` calls the loader's restricted unpicklers directly on a file, with the globals a
manifest would record; ``scan_and_check`` is the build's scan + policy. Neither is a user-facing switch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatch_modelpack.runtime import _modelpack_integrity, _modelpack_unpickle
from hatch_modelpack.safety import Finding, check_globals
from hatch_modelpack.scanning import ScanResult, scan_file


def scan_and_check(
    path: Path, kind: str, package: str = "churn_model", allow: tuple[str, ...] = (), root: Path | None = None
) -> tuple[ScanResult, list[Finding]]:
    result = scan_file(path, kind)
    return result, check_globals(result.globals, package, allow, uses=result.uses, root=root)


def load_restricted(path: Path, globals_: list[str] | set[str], kind: str, **kwargs: Any) -> Any:
    """What the installed loader does after the hash check, for a file whose manifest records ``globals_``."""
    _modelpack_integrity._VERIFIED_FILES[str(path)] = _modelpack_integrity._fingerprint(path)
    entry = {"name": "m", "format": kind, "globals": sorted(globals_)}
    load = (
        _modelpack_unpickle._restricted_joblib_load if kind == "joblib" else _modelpack_unpickle._restricted_pickle_load
    )
    return load(path, entry, dict(kwargs))
