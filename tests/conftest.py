"""Shared fixtures: a fresh wheelhouse holding this plugin, real projects in temp dirs, fresh venvs.

Builds go through real front ends in isolated environments, so hatch-modelpack must be installable
from somewhere: it is built once per test session into a temp wheelhouse named after the wheel's sha256
(so neither pip's nor uv's cache, keyed by path, ever serves a stale plugin) and exposed through
``PIP_FIND_LINKS`` / ``UV_FIND_LINKS``. Virtual environments are made with uv, which installs from its
cache by hardlink: a test that tampers with an installed file must unlink it first (``tamper()``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# The interpreter's own scripts directory first: pyenv shims are not refreshed by `python -m pip install`.
SCRIPTS = Path(sysconfig.get_path("scripts"))
UV = str(SCRIPTS / "uv") if (SCRIPTS / "uv").exists() else (shutil.which("uv") or "uv")


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; on an unexpected failure show everything it printed."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing run leaves nothing under the temp dir: its venvs and wheels add up to gigabytes.

    A failing run keeps everything (with ``tmp_path_retention_policy = "failed"``, the passing tests'
    own directories are gone already) for debugging. Under xdist each worker removes its own tree.
    """
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if exitstatus == 0 and basetemp is not None:
        shutil.rmtree(basetemp, ignore_errors=True)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new directory holding a wheel of this checkout of hatch-modelpack."""
    built = tmp_path_factory.mktemp("plugin-build")
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(built), str(REPO)])
    wheels = list(built.glob("hatch_modelpack-*.whl"))
    assert wheels, "the plugin wheel was not built"
    # uv caches a find-links wheel by its path, and temp paths repeat across sessions (a passing session
    # removes its basetemp, so the next one reuses the number): name the directory after the wheel's
    # bytes, so a changed plugin always gets a new path and an unchanged one may use the cache.
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()[:16]
    out = tmp_path_factory.getbasetemp() / f"wheelhouse-{digest}"
    out.mkdir()
    shutil.move(str(wheels[0]), out / wheels[0].name)
    return out


@pytest.fixture(scope="session")
def build_env(wheelhouse: Path) -> dict[str, str]:
    """Environment for front ends: they find the plugin in the wheelhouse, everything else as usual."""
    env = dict(os.environ)
    env["PIP_FIND_LINKS"] = " ".join(filter(None, [str(wheelhouse), os.environ.get("PIP_FIND_LINKS", "")]))
    env["UV_FIND_LINKS"] = str(wheelhouse)
    env.pop("SOURCE_DATE_EPOCH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# -- models ------------------------------------------------------------------------------------


def make_data(seed: int = 0, n: int = 200) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 5, n).astype(float)})
    y = ((X["a"] + 0.5 * X["b"] + rng.normal(scale=0.3, size=n)) > 0).astype(int)
    return X, y


def make_pipeline(seed: int = 0, kind: str = "logistic") -> tuple[Any, Any]:
    """A small fitted scikit-learn Pipeline and the frame it was trained on."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_data(seed)
    est = (
        RandomForestClassifier(n_estimators=10, max_depth=4, random_state=seed)
        if kind == "forest"
        else LogisticRegression()
    )
    return Pipeline([("scale", StandardScaler()), ("model", est)]).fit(X, y), X


def save_model(model: Any, path: Path, how: str = "joblib", **kwargs: Any) -> Path:
    import pickle

    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "joblib":
        joblib.dump(model, path, **kwargs)
    else:
        path.write_bytes(pickle.dumps(model, protocol=kwargs.get("protocol", pickle.HIGHEST_PROTOCOL)))
    return path


# -- projects ----------------------------------------------------------------------------------


@dataclass
class Project:
    root: Path
    name: str

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def build(self, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python -m build`` (sdist, then the wheel from the sdist) into ``dist/``."""
        return run(
            [sys.executable, "-m", "build", *args, "--outdir", str(self.root / "dist"), str(self.root)],
            env=env,
            check=check,
        )

    def wheel(self) -> Path:
        wheels = sorted((self.root / "dist").glob("*.whl"))
        assert len(wheels) == 1, wheels
        return wheels[0]

    def tree(self) -> set[str]:
        """Every path in the project, for no-stray-files assertions."""
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")}


def pyproject(
    name: str = "churn-model",
    version: str = "1.2.0",
    models: str = 'churn = "artifacts/churn.joblib"',
    extra: str = "",
    dynamic: bool = True,
    hook: str = "",
    deps: str = "",
) -> str:
    """A pyproject.toml as a user writes it (the recommended form: dynamic dependencies)."""
    project_deps = "" if dynamic else f"dependencies = [{deps}]\n"
    dyn = 'dynamic = ["dependencies"]\n' if dynamic else ""
    meta = f"[tool.hatch.metadata.hooks.modelpack]\ndependencies = [{deps}]\n" if dynamic else ""
    return (
        '[build-system]\nrequires = ["hatchling", "hatch-modelpack"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.10"\nreadme = "README.md"\n{dyn}{project_deps}\n'
        f"{meta}\n[tool.hatch.build.hooks.modelpack]\n{hook}\n[tool.hatch.build.hooks.modelpack.models]\n{models}\n\n{extra}"
    )


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Project]:
    """Factory: a project folder with pyproject.toml and README; artifacts are added by the test."""

    def make(name: str = "churn-model", **kwargs: Any) -> Project:
        root = tmp_path / name
        root.mkdir()
        p = Project(root, name)
        p.write("pyproject.toml", pyproject(name=name, **kwargs))
        p.write("README.md", f"# {name}\n")
        return p

    return make


# -- virtual environments ----------------------------------------------------------------------


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def install(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run([UV, "pip", "install", "--python", str(self.python), *args], env=env)

    def pip(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([str(self.python), "-m", "pip", *args], env=env, check=check)

    def py(
        self, code: str, *, check: bool = True, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run([str(self.python), "-c", textwrap.dedent(code)], check=check, env=env, cwd=cwd)

    def json(self, code: str, **kwargs: Any) -> Any:
        """Run code that prints one JSON document as its last line; return it parsed."""
        out = self.py(code, **kwargs).stdout.strip().splitlines()
        return json.loads(out[-1])

    def site_packages(self) -> Path:
        return Path(self.py("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())


@pytest.fixture
def venv(tmp_path: Path) -> Callable[..., Venv]:
    """Factory: a fresh virtual environment (with pip when asked, for pip-driven installs)."""
    counter = iter(range(1000))

    def make(seed_pip: bool = False) -> Venv:
        path = tmp_path / f"venv{next(counter)}"
        run([UV, "venv", "--quiet", "--python", sys.executable, *(["--seed"] if seed_pip else []), str(path)])
        return Venv(path)

    return make


def tamper(file: Path, data: bytes) -> None:
    """Replace an installed file's bytes without touching uv's cache (it installs by hardlink)."""
    file.unlink()
    file.write_bytes(data)


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name).decode()


def requires_dist(metadata_text: str) -> list[str]:
    return sorted(
        line.split(":", 1)[1].strip() for line in metadata_text.splitlines() if line.startswith("Requires-Dist:")
    )


@pytest.fixture(scope="session")
def sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


@pytest.fixture
def tmp_cwd(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)
