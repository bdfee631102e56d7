"""Which names the package being built defines itself, read from its source with ``ast`` (never imported).

A pickle may name the package's own classes and functions (custom transformers ship in the same
wheel). Only what a module *defines* at top level counts: a module-level ``def`` or ``class`` (and,
for a dotted name, a ``def``/``class`` nested in that class). ``from os import system`` in
``churn_model/features.py`` makes ``churn_model.features.system`` resolve to ``os.system``, so an
imported name is not the package's own; a name bound to a ``lambda`` cannot be imported by pickle's
name lookup at all.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

DEFINED = "defined"
LAMBDA = "lambda"
NOT_DEFINED = "not-defined"
NO_SOURCE = "no-source"


def module_source(root: Path, module: str) -> Path | None:
    """The source file of ``module`` in the project (flat or src layout), or None."""
    parts = module.split(".")
    for base in (root, root / "src"):
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


@functools.lru_cache(maxsize=256)
def _parse(path: Path, mtime_ns: int) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _lookup(body: list[ast.stmt], name: str) -> str:
    """How ``name`` is bound at the top of ``body``: the last binding wins, as at import time."""
    verdict = NOT_DEFINED
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            verdict = DEFINED
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                verdict = LAMBDA if isinstance(node.value, ast.Lambda) else NOT_DEFINED
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            verdict = NOT_DEFINED
    return verdict


def _class_body(body: list[ast.stmt], name: str) -> list[ast.stmt] | None:
    found = None
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            found = node.body
    return found


def defines(root: Path, module: str, qualname: str) -> str:
    """DEFINED, LAMBDA, NOT_DEFINED or NO_SOURCE for ``module.qualname`` in the project's source."""
    path = module_source(root, module)
    if path is None:
        return NO_SOURCE
    tree = _parse(path, path.stat().st_mtime_ns)
    if tree is None:
        return NO_SOURCE
    body: list[ast.stmt] = tree.body
    *outer, last = qualname.split(".")
    for part in outer:
        inner = _class_body(body, part)
        if inner is None:
            return NOT_DEFINED
        body = inner
    return _lookup(body, last)
