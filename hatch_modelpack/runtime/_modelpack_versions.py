"""The framework version check: installed distributions against the versions an artifact records.

Part of the loader that ships in every model package beside ``_modelpack.py``: standard library
only, Python 3.8 syntax. ``importlib.metadata`` is imported only when a version is looked up.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional, Tuple


def _release(version: str) -> Tuple[int, ...]:
    """The numeric release segment ("1.9.1rc1" -> (1, 9, 1)), padded for comparison."""
    parts: List[int] = []
    for piece in version.split("+", 1)[0].split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    while len(parts) < 4:
        parts.append(0)
    return tuple(parts)


_COMPARE: Dict[str, Callable[[Tuple[int, ...], Tuple[int, ...]], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def version_problems(entry: Dict[str, Any]) -> List[str]:
    """How the installed framework versions miss what a model entry records (empty: they match).

    Also used by ``modelpack verify``, so a Docker build catches what load() would refuse.
    """
    problems = []
    for check in entry.get("version_checks", []):
        dist = check["distribution"]
        installed = _installed_version(dist)
        if installed is None:
            problems.append(
                f"{dist} is not installed (the artifact records {check['recorded']}, needs {check['requirement']})"
            )
            continue
        have = _release(installed)
        for op, version in check["clauses"]:
            if not _COMPARE[op](have, _release(version)):
                problems.append(
                    f"{dist} {installed} is installed, but the artifact was recorded with {dist} "
                    f"{check['recorded']} and needs {check['requirement']}"
                )
                break
    return problems


#: Distributions that install the same import package under another name; the check accepts any of them.
_SAME_PACKAGE: Dict[str, Tuple[str, ...]] = {
    "tensorflow": ("tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tensorflow-rocm", "tensorflow-aarch64"),
    "xgboost": ("xgboost-cpu",),
}


def _installed_version(dist: str) -> Optional[str]:
    # Imported here: importlib.metadata is most of what `import <package>` would cost otherwise.
    from importlib import metadata as _importlib_metadata

    # Search a snapshot of sys.path: in a server that loads several models at once, another thread may
    # insert into sys.path while this one iterates it, and an entry (site-packages) would be skipped.
    path = list(sys.path)
    for candidate in (dist, *_SAME_PACKAGE.get(dist, ())):
        found = next(iter(_importlib_metadata.distributions(name=candidate, path=path)), None)
        if found is not None:
            return str(found.version)
    return None
