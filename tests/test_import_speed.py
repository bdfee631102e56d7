"""`import <package>` costs what the interpreter already paid for; the first load() hides the hash.

The generated ``__init__.py`` imports nothing and opens no file (beyond its own source or bytecode):
the public names come from the loader on first use (PEP 562). Checked in a fresh process by diffing
``sys.modules`` around the import and by an audit hook on ``open``; fast on a package laid out by hand,
and slow on an installed wheel in a clean ``uv venv`` (no system site-packages).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import run, tamper

from hatch_modelpack.contract import LOADER_FILES

RUNTIME = Path(__file__).resolve().parent.parent / "hatch_modelpack" / "runtime"
PUBLIC = {
    "CheckError",
    "IntegrityError",
    "ModelpackLoadError",
    "UnknownModelError",
    "VersionMismatchError",
    "__version__",
    "check",
    "check_versions",
    "load",
    "metadata",
    "models",
    "path",
    "verify",
}

#: Runs in a fresh interpreter: what `import <package>` adds to sys.modules and which files it opens.
IMPORT_PROBE = """
import sys
{path_setup}
before = set(sys.modules)
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
import {pkg}
added = sorted(set(sys.modules) - before)
files = list(opened)
import json
print(json.dumps({{"added": added, "opened": files, "init": {pkg}.__file__}}))
"""

#: Then the names SPEC.md fixes, from the package and from its loader, and what dir() and * give.
NAMES_PROBE = """
import json, sys
{path_setup}
import {pkg}
from {pkg} import load, metadata, path, verify, models, __version__, IntegrityError
from {pkg} import CheckError, ModelpackLoadError, UnknownModelError, VersionMismatchError, check, check_versions
from {pkg} import _modelpack
same = all(getattr({pkg}, n) is getattr(_modelpack, n) for n in {pkg}.__all__ if n != "__version__")
star = {{}}
exec("from {pkg} import *", star)
try:
    {pkg}.no_such_name
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({{
    "version": {pkg}.__version__, "loader_version": _modelpack.__version__, "all": sorted({pkg}.__all__),
    "dir": sorted(dir({pkg})), "same": same, "star": sorted(k for k in star if k != "__builtins__"),
    "models": list(models()), "integrity_is_exception": issubclass({pkg}.IntegrityError, Exception),
    "missing": missing, "error_modules": sorted({{getattr({pkg}, n).__module__ for n in {pkg}.__all__ if n.endswith("Error")}}),
}}))
"""


def _probe(python: str, template: str, pkg: str, path_setup: str = "", env: dict[str, str] | None = None) -> dict:
    code = textwrap.dedent(template.format(pkg=pkg, path_setup=path_setup))
    out = run([python, "-c", code], env=env).stdout.strip().splitlines()
    return json.loads(out[-1])


def _check_import(result: dict, pkg: str) -> None:
    assert result["added"] == [pkg], f"`import {pkg}` imported more than the package: {result['added']}"
    init = Path(result["init"])
    cache = init.parent / "__pycache__"
    # Its own source, or its bytecode (looked for even when there is none); nothing else.
    other = [
        f
        for f in map(Path, result["opened"])
        if f != init and not (f.parent == cache and f.name.startswith("__init__.") and f.suffix == ".pyc")
    ]
    assert not other, f"`import {pkg}` opened files: {other}"


def _check_names(result: dict, version: str, pkg: str) -> None:
    assert result["version"] == result["loader_version"] == version
    assert set(result["all"]) == PUBLIC
    assert set(result["dir"]) >= PUBLIC
    assert result["same"]
    assert set(result["star"]) >= PUBLIC - {"__version__"}
    assert result["integrity_is_exception"]
    assert "no_such_name" in result["missing"]
    # Defined in a private part, the errors are named where users import them from (as in tracebacks).
    assert result["error_modules"] == [f"{pkg}._modelpack"]


def _hand_made_package(root: Path, pkg: str, payload: bytes, globals_: list[str]) -> Path:
    """The layout a wheel installs: generated __init__, the loader's modules (_modelpack.py and its parts),
    manifest, artifact."""
    d = root / pkg
    (d / "_models" / "churn").mkdir(parents=True)
    (d / "__init__.py").write_bytes((RUNTIME / "package_init.py").read_bytes())
    for shipped, source in LOADER_FILES.items():
        (d / shipped).write_bytes((RUNTIME / source).read_bytes())
    artifact = d / "_models" / "churn" / "churn.pkl"
    artifact.write_bytes(payload)
    entry = {
        "name": "churn",
        "format": "pickle",
        "path": "_models/churn/churn.pkl",
        "files": [{"path": "churn.pkl", "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}],
        "globals": globals_,
    }
    manifest = {
        "manifest_version": 1,
        "distribution": pkg,
        "version": "1.2.0",
        "default": "churn",
        "models": {"churn": entry},
    }
    (d / "_modelpack.json").write_text(json.dumps(manifest))
    return artifact


@pytest.mark.parametrize("bytecode", [False, True], ids=["source", "bytecode"])
def test_import_adds_only_the_package_and_opens_nothing(tmp_path: Path, bytecode: bool) -> None:
    _hand_made_package(tmp_path, "churn_model", pickle.dumps({"a": 1}), [])
    if bytecode:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp_path / "churn_model")], check=True)
    setup = f"sys.path.insert(0, {str(tmp_path)!r})"
    _check_import(_probe(sys.executable, IMPORT_PROBE, "churn_model", setup), "churn_model")
    _check_names(_probe(sys.executable, NAMES_PROBE, "churn_model", setup), "1.2.0", "churn_model")


#: What `from <package> import load` adds, and then what the first load() adds.
LOAD_PROBE = """
import json, sys
{path_setup}
before = set(sys.modules)
from {pkg} import load
imported = sorted(set(sys.modules) - before)
load()
print(json.dumps({{"import": imported, "load": sorted(set(sys.modules) - before - set(imported))}}))
"""


def test_the_loaders_parts_are_imported_when_they_are_needed(tmp_path: Path) -> None:
    """The public names need the errors, hashes, versions and trust; the format loaders and the restricted
    unpicklers wait for the first load(), the smoke check for check(). No stdlib module the one-file loader
    imported only when used is imported any earlier."""
    _hand_made_package(tmp_path, "lazy_model", pickle.dumps({"a": 1}), [])
    got = _probe(sys.executable, LOAD_PROBE, "lazy_model", f"sys.path.insert(0, {str(tmp_path)!r})")
    eager = {"_modelpack", "_modelpack_errors", "_modelpack_integrity", "_modelpack_versions", "_modelpack_signature"}
    assert {m for m in got["import"] if m.startswith("lazy_model")} == {
        "lazy_model",
        *(f"lazy_model.{m}" for m in eager),
    }
    late = {"pickle", "_compat_pickle", "base64", "csv", "concurrent.futures", "importlib.metadata"}
    assert not late & set(got["import"]), late & set(got["import"])
    assert {"lazy_model._modelpack_formats", "lazy_model._modelpack_unpickle", "pickle"} <= set(got["load"])
    assert "lazy_model._modelpack_check" not in got["load"]


def test_first_load_imports_the_reviewed_globals_and_still_hashes_first(tmp_path: Path) -> None:
    """load() imports the globals' modules while it hashes; a changed artifact is still refused unread."""
    artifact = _hand_made_package(tmp_path, "frac_model", pickle.dumps(Fraction(1, 3)), ["fractions.Fraction"])
    setup = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
    got = run([sys.executable, "-c", setup + "import frac_model; print(repr(frac_model.load()))"]).stdout.strip()
    assert got == "Fraction(1, 3)"
    tamper(artifact, pickle.dumps(Fraction(2, 3)))
    code = setup + textwrap.dedent(
        """
        import frac_model
        try:
            frac_model.load()
        except frac_model.IntegrityError as exc:
            print("refused:", exc)
        """
    )
    out = run([sys.executable, "-c", code]).stdout
    assert "refused:" in out and "nothing was loaded" in out


@pytest.mark.slow
def test_installed_wheel_in_a_clean_venv(project, build_env, venv) -> None:
    """The same promise as installed by uv (no bytecode) and by pip (bytecode), with no system site-packages."""
    p = project(models='churn = "artifacts/churn.pkl"')
    (p.root / "artifacts").mkdir()
    (p.root / "artifacts" / "churn.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    p.build(build_env)
    for compiled in (False, True):
        v = venv()
        v.install(*(["--compile-bytecode"] if compiled else []), str(p.wheel()))
        env = dict(build_env, PYTHONDONTWRITEBYTECODE="1")
        _check_import(_probe(str(v.python), IMPORT_PROBE, "churn_model", env=env), "churn_model")
        _check_names(_probe(str(v.python), NAMES_PROBE, "churn_model", env=env), "1.2.0", "churn_model")
        assert v.py("import churn_model; print(churn_model.load())").stdout.strip() == "{'weights': [1.0, 2.0]}"


def test_the_modules_imported_ahead_belong_to_known_formats() -> None:
    from hatch_modelpack.runtime import _modelpack_formats

    assert set(_modelpack_formats._FRAMEWORK_MODULES) <= set(_modelpack_formats._LOADERS)
