"""The size rules the code keeps: no module over 400 lines, no function over 80, and the CLI's reach.

Small modules with one concern and short functions are the project's style (see HELPERS.md); this
test names the file, or file:function, that breaks it, so a long function is split when it is written
rather than found in review. It only parses (``ast``), so it runs in well under a second.

The CLI check follows the top-level imports of ``cli.py`` (and of ``signatures.py``, which ``verify
--public-key`` imports) through the package: every module reached that way is loaded by ``modelpack
--python`` from this package's directory inside another environment, so each must parse as Python 3.8
and import only the standard library (and each other) at module level. It derives the set that
``tests/test_runtime.py``'s ``CLI_STDLIB`` lists by hand.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hatch_modelpack"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_no_module_is_over_400_lines() -> None:
    too_long = []
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"hatch_modelpack/{_rel(path)}: {lines} lines")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them along their seams): {too_long}"


def test_no_function_is_over_80_lines() -> None:
    too_long = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                span = node.end_lineno - node.lineno + 1
                if span > MAX_FUNCTION_LINES:
                    too_long.append(f"hatch_modelpack/{_rel(path)}:{node.name} ({span} lines)")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (break them into named steps): {too_long}"


def _top_level_imports(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would hide an edge from this check"
            out |= (
                {node.module} if node.module != "hatch_modelpack" else {f"hatch_modelpack.{a.name}" for a in node.names}
            )
    return out


def test_the_cli_reaches_only_standard_library_modules_that_parse_as_python_3_8() -> None:
    seen: set[str] = set()
    todo = ["cli", "signatures"]  # signatures: `verify --public-key` imports it, inside the other environment too
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = PACKAGE / f"{name}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))
        for imported in _top_level_imports(tree):
            parts = imported.split(".")
            if parts[0] == "hatch_modelpack":
                assert len(parts) == 2, f"{name}.py imports {imported}: the CLI reaches only flat modules"
                todo.append(parts[1])
            else:
                assert parts[0] in sys.stdlib_module_names or parts[0] == "__future__", f"{name}.py imports {imported}"
    # The reach is what `--python` loads; a new module in it is fine, as long as the rules above hold.
    assert {"cli", "cli_render", "sources", "inspection", "contract", "hashing", "signing_keys"} <= seen
