"""What the code claims about its own shape: the shipped files, the values they repeat, no import cycle.

The files in ``hatch_modelpack/runtime/`` ship inside every model wheel and run wherever the model
does: standard library only, Python 3.8 syntax. ``ast.parse(feature_version=(3, 8))`` checks the
syntax on any interpreter, so the promise does not rest on a 3.8 being installed. The ``modelpack``
CLI's own modules keep the same promise, since ``--python`` runs them in another environment.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from hatch_modelpack import contract
from hatch_modelpack.config import FORMATS as CONFIG_FORMATS
from hatch_modelpack.config import load_config
from hatch_modelpack.formats.registry import FORMATS as REGISTRY
from hatch_modelpack.manifest import build_manifest
from hatch_modelpack.runtime import _modelpack_formats, editable, loader
from hatch_modelpack.wheel_writer import COMPRESSION_MODES

PACKAGE = Path(__file__).resolve().parent.parent / "hatch_modelpack"
RUNTIME = sorted((PACKAGE / "runtime").glob("*.py"))
#: Run by ``modelpack --python`` inside environments without hatch-modelpack (cli.py imports scaffold
#: only inside ``init``, which needs the build side anyway).
CLI_STDLIB = [
    PACKAGE / n for n in ("cli.py", "cli_render.py", "sources.py", "inspection.py", "contract.py", "hashing.py")
]


def _imports(tree: ast.AST, *, top_level_only: bool = False) -> set[str]:
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else ast.walk(tree)
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


#: What the shipped loader may import inside a function, only when a caller asks for a signature check.
LAZY_OPTIONAL = {"cryptography", "model_signing"}


@pytest.mark.parametrize("path", RUNTIME + CLI_STDLIB, ids=lambda p: p.name)
def test_parses_as_python_3_8_and_imports_only_the_standard_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))
    shipped = path.parent.name == "runtime"
    top_level = _imports(tree, top_level_only=True)
    for name in _imports(tree, top_level_only=not shipped):
        top = name.split(".")[0]
        if shipped and top in LAZY_OPTIONAL and name not in top_level:
            continue
        if not shipped and top == "hatch_modelpack":
            assert PACKAGE / (name.split(".")[1] + ".py") in CLI_STDLIB, f"{path.name} imports {name}"
            continue
        assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {name}"


def test_runtime_files_are_the_whole_runtime_package() -> None:
    assert {p.name for p in RUNTIME} == {
        "__init__.py",
        "package_init.py",
        "editable.py",
        *contract.LOADER_FILES.values(),
    }


def test_the_loaders_modules_ship_under_the_names_they_import_each_other_by() -> None:
    """``from . import _modelpack_formats`` must find the same module in this package and in a model package."""
    assert contract.LOADER_FILES[contract.LOADER_NAME] == "loader.py"
    parts = {shipped: source for shipped, source in contract.LOADER_FILES.items() if shipped != contract.LOADER_NAME}
    assert all(shipped == source and shipped.startswith(editable.LOADER + "_") for shipped, source in parts.items())
    for source in contract.LOADER_FILES.values():
        tree = ast.parse((PACKAGE / "runtime" / source).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                names = [node.module] if node.module else [a.name for a in node.names]
                # The parts import each other and never the public module (it is `loader` here, `_modelpack` there).
                assert all(f"{n}.py" in parts for n in names), f"{source} imports .{names}"


def test_the_editable_finder_serves_every_module_of_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    site = tmp_path / "site"
    (site / "own_model").mkdir(parents=True)
    for shipped in contract.LOADER_FILES:
        (site / "own_model" / shipped).write_text("")
    finder_file = site / f"{contract.EDITABLE_PREFIX}own_model.py"
    finder_file.write_bytes((PACKAGE / "runtime" / "editable.py").read_bytes())
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    spec = importlib.util.spec_from_file_location(finder_file.stem, finder_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    finder = module.ModelpackEditableFinder
    assert finder in sys.meta_path
    for shipped in contract.LOADER_FILES:
        found = finder.find_spec("own_model." + shipped[: -len(".py")])
        assert found is not None and found.origin == str(site / "own_model" / shipped)
    assert finder.find_spec("own_model._modelpack_missing") is None
    assert finder.find_spec("own_model.train") is None and finder.find_spec("other_model._modelpack") is None


# -- values the runtime repeats ------------------------------------------------------------------


def test_the_loader_knows_every_format_and_nothing_else() -> None:
    assert set(_modelpack_formats._LOADERS) == set(contract.FORMAT_NAMES)
    assert set(REGISTRY) == set(contract.FORMAT_NAMES)
    assert CONFIG_FORMATS == contract.FORMAT_NAMES
    assert COMPRESSION_MODES == contract.COMPRESSIONS


def test_runtime_constants_equal_the_build_side() -> None:
    assert loader.MANIFEST_NAME == contract.MANIFEST_NAME
    assert loader.MANIFEST_VERSION == contract.MANIFEST_VERSION
    assert editable.PREFIX == contract.EDITABLE_PREFIX


def _keys_read(tree: ast.AST) -> dict[str, set[str]]:
    """receiver name -> the strings the loader reads it with: ``name["key"]`` and ``name.get("key", ...)``."""
    keys: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            receiver, key = node.value, node.slice.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            receiver, key = node.func.value, node.args[0].value
        else:
            continue
        name = (
            receiver.attr
            if isinstance(receiver, ast.Attribute)
            else receiver.id
            if isinstance(receiver, ast.Name)
            else ""
        )
        keys.setdefault(name, set()).add(key)
    return keys


def test_the_loader_reads_only_manifest_keys_the_build_writes() -> None:
    read: dict[str, set[str]] = {}
    for source in contract.LOADER_FILES.values():  # every module of the loader
        for receiver, keys in _keys_read(ast.parse((PACKAGE / "runtime" / source).read_text(encoding="utf-8"))).items():
            read.setdefault(receiver, set()).update(keys)
    # The loader's names for a manifest, a model entry and a file entry.
    assert read["manifest"] <= contract.MANIFEST_KEYS, read["manifest"] - contract.MANIFEST_KEYS
    assert read["entry"] <= contract.MODEL_ENTRY_KEYS, read["entry"] - contract.MODEL_ENTRY_KEYS
    assert read["expected"] <= contract.FILE_KEYS, read["expected"] - contract.FILE_KEYS
    assert {"manifest_version", "models", "default"} <= read["manifest"]
    assert {"format", "files", "path"} <= read["entry"]


def test_the_build_writes_only_the_keys_the_contract_names(tmp_path: Path) -> None:
    from conftest import make_pipeline, save_model

    from hatch_modelpack.analysis import analyse

    save_model(make_pipeline(seed=1)[0], tmp_path / "m.joblib")
    (tmp_path / "x.json").write_text("[]")
    pack = load_config(tmp_path, {"models": {"churn": {"path": "m.joblib", "check": "x.json"}}}, "churn-model")
    manifest = build_manifest(pack, analyse(pack), distribution="churn-model", version="1.0", editable_root=tmp_path)
    assert set(manifest) <= contract.MANIFEST_KEYS
    entry = manifest["models"]["churn"]
    assert set(entry) <= contract.MODEL_ENTRY_KEYS
    assert all(set(f) <= contract.FILE_KEYS for f in entry["files"])
    assert set(entry["check"]) - {"tolerance"} <= contract.CHECK_ENTRY_KEYS
    assert all(set(c) <= contract.VERSION_CHECK_KEYS for c in entry["version_checks"])


def test_a_manifest_newer_than_the_loader_is_refused_with_the_fix(tmp_path: Path) -> None:
    manifest = {"manifest_version": contract.MANIFEST_VERSION + 1, "generator": "hatch-modelpack 9.0", "models": {}}
    (tmp_path / contract.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(loader.ModelpackLoadError) as info:
        loader._Pack(tmp_path).names()
    msg = str(info.value)
    assert "manifest version 2" in msg and "hatch-modelpack 9.0" in msg and "rebuild the model package" in msg
    manifest["manifest_version"] = contract.MANIFEST_VERSION
    (tmp_path / contract.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert loader._Pack(tmp_path).names() == ()


# -- layers --------------------------------------------------------------------------------------


def _module_graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # `if TYPE_CHECKING:` imports are for the type checker, not a run-time edge
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                node.body = []
        package = name if rel.name == "__init__" else name.rpartition(".")[0]
        graph[name] = {m for m in _imports(tree) | _relative_imports(tree, package) if m.startswith("hatch_modelpack")}
    # `from hatch_modelpack.formats import Format` depends on the package, `from x import module` on the module.
    return {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}


def _relative_imports(tree: ast.AST, package: str) -> set[str]:
    """``from . import x`` and ``from .x import y`` inside ``package``: the modules they may name."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.module else base
            out |= {module} | {f"{module}.{a.name}" for a in node.names}
    return out


def test_no_import_cycle() -> None:
    graph = _module_graph()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(node) :], node]))
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, [*stack, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    # The loader's relative imports are edges too (its format loaders import the unpicklers, and so on).
    assert "hatch_modelpack.runtime._modelpack_formats" in graph["hatch_modelpack.runtime.loader"]
    assert "hatch_modelpack.runtime._modelpack_unpickle" in graph["hatch_modelpack.runtime._modelpack_formats"]


def test_the_package_init_lists_exactly_the_loaders_public_names() -> None:
    """The lazy ``__init__`` cannot import the loader to ask (that is the point): its copy is checked here."""

    def all_of(name: str) -> list[str]:
        tree = ast.parse((PACKAGE / "runtime" / name).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                return list(ast.literal_eval(node.value))
        raise AssertionError(f"{name} has no __all__")

    assert sorted(all_of("package_init.py")) == sorted([*all_of("loader.py"), "__version__"])
