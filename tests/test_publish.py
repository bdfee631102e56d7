"""Publishing to a real private index and installing from it, pinned and offline.

A pypiserver on 127.0.0.1 (a free port, its own package directory) receives churn-model 1.2.0 via
``twine upload`` and the retrained 1.3.0 via ``uv publish`` (and a 1.3.1 via ``hatch publish``).
Services then ``pip install churn-model==1.2.0`` in fresh venvs, with pip isolated from this
machine's pip configuration so the package provably comes from that index (PyPI is the extra index
for scikit-learn and friends).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from conftest import SCRIPTS, UV, Project, make_pipeline, pyproject, run, save_model

pytestmark = pytest.mark.slow

PYPI = "https://pypi.org/simple"


def twine_upload(index: str, files: Iterable[Path], check: bool = True) -> subprocess.CompletedProcess[str]:
    """twine to our index (pypiserver wants dummy credentials with --non-interactive)."""
    cmd = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--repository-url", f"{index}/"]
    return run([*cmd, "-u", "x", "-p", "x", *map(str, files)], check=check)


def tool(name: str) -> str:
    """A console script of this interpreter (pyenv shims may be stale), else from PATH."""
    return str(SCRIPTS / name) if (SCRIPTS / name).exists() else (shutil.which(name) or name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    """A pypiserver accepting unauthenticated uploads; yields its base URL and stops it afterwards."""
    packages = tmp_path / "index-packages"
    packages.mkdir()
    port = free_port()
    log = open(tmp_path / "pypiserver.log", "w")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [
            tool("pypi-server"),
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-a",
            ".",
            "-P",
            ".",
            "--disable-fallback",
            str(packages),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/simple/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"pypiserver did not start: {(tmp_path / 'pypiserver.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def pip_env(tmp_path: Path) -> dict[str, str]:
    """pip without this machine's config, local indexes or find-links: only what the command names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_DEFAULT_TIMEOUT"] = "180"
    return env


def simple_files(url: str, project: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/simple/{project}/") as r:
        html = r.read().decode()
    return sorted(part.split("#")[0].split("/")[-1] for part in html.split('href="')[1:])


def make_release(
    root: Path, version: str, seed: int, kind: str, build_env: dict[str, str]
) -> tuple[list[Path], object, object]:
    p = Project(root, "churn-model")
    p.write("pyproject.toml", pyproject(version=version, deps='"pandas"'))
    p.write("README.md", f"# churn-model {version}\n")
    model, X = make_pipeline(seed=seed, kind=kind)
    save_model(model, root / "artifacts" / "churn.joblib")
    dist = root.parent / f"dist-{version}"
    run([UV, "build", "--out-dir", str(dist), str(root)], env=build_env)
    files = sorted(f for f in dist.iterdir() if f.name.endswith((".whl", ".tar.gz")))  # uv adds a .gitignore
    assert [f.name for f in files] == [f"churn_model-{version}-py3-none-any.whl", f"churn_model-{version}.tar.gz"]
    return files, model, X


PREDICT = """
    import json, churn_model, pandas as pd
    X = pd.read_csv({csv!r})
    m = churn_model.load()
    print(json.dumps({{"version": churn_model.__version__, "meta": churn_model.metadata(), "pred": m.predict_proba(X)[:, 1].tolist(), "kind": type(m[-1]).__name__}}))
"""


def test_publish_pin_and_offline_install(index, build_env, venv, tmp_path, sklearn_version):
    src = tmp_path / "churn-model"
    src.mkdir()
    files12, model12, X = make_release(src, "1.2.0", 1, "logistic", build_env)
    files13, model13, _ = make_release(src, "1.3.0", 2, "forest", build_env)
    csv = tmp_path / "X.csv"
    X.to_csv(csv, index=False)

    # 1.2.0 with twine, 1.3.0 with uv publish, 1.3.1 with hatch publish; all to our index.
    twine_upload(index, files12)
    run([UV, "publish", "--publish-url", f"{index}/", "--username", "x", "--password", "x", *map(str, files13)])
    p = Project(src, "churn-model")
    p.write("pyproject.toml", pyproject(version="1.3.1", deps='"pandas"'))
    run([UV, "build", "--out-dir", str(tmp_path / "dist-1.3.1"), str(src)], env=build_env)
    run(
        [
            tool("hatch"),
            "publish",
            "--repo",
            f"{index}/",
            "--user",
            "x",
            "--auth",
            "x",
            "--no-prompt",
            *(str(f) for f in (tmp_path / "dist-1.3.1").glob("churn_model-*")),
        ],
        cwd=src,
    )
    assert simple_files(index, "churn-model") == sorted(
        f"churn_model-{v}{ext}" for v in ("1.2.0", "1.3.0", "1.3.1") for ext in ("-py3-none-any.whl", ".tar.gz")
    )
    # Re-uploading a published version is refused by the index (versions are immutable).
    again = twine_upload(index, [files12[0]], check=False)
    assert again.returncode != 0

    env = pip_env(tmp_path)
    pip_index = ["--isolated", "--index-url", f"{index}/simple/", "--extra-index-url", PYPI]

    # A service pins 1.2.0: that exact wheel comes from our index, the frameworks from PyPI.
    a = venv(seed_pip=True)
    report = tmp_path / "report.json"
    a.pip("install", *pip_index, "--report", str(report), "churn-model==1.2.0", env=env)
    installed = {i["metadata"]["name"]: i for i in json.loads(report.read_text())["install"]}
    assert installed["churn-model"]["download_info"]["url"] == f"{index}/packages/churn_model-1.2.0-py3-none-any.whl"
    assert installed["churn-model"]["metadata"]["version"] == "1.2.0"
    assert installed["scikit-learn"]["metadata"]["version"] == sklearn_version
    got = a.json(PREDICT.format(csv=str(csv)))
    assert got["version"] == "1.2.0" and got["kind"] == "LogisticRegression"
    assert got["pred"] == pytest.approx(model12.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    meta12 = got["meta"]

    # Unpinned, the newest release wins; pinned ==1.3.0 gives the retrained forest.
    a.pip("install", *pip_index, "churn-model==1.3.0", env=env)
    got = a.json(PREDICT.format(csv=str(csv)))
    assert got["version"] == "1.3.0" and got["kind"] == "RandomForestClassifier"
    assert got["pred"] == pytest.approx(model13.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    assert got["meta"]["files"][0]["sha256"] != meta12["files"][0]["sha256"]
    assert sorted(got["meta"]["globals"]) != sorted(meta12["globals"])
    a.pip("install", *pip_index, "--upgrade", "churn-model", env=env)
    assert a.json("import json, churn_model; print(json.dumps(churn_model.__version__))") == "1.3.1"

    # Offline: download 1.2.0 with its dependencies once, install with no index at all.
    wheelhouse = tmp_path / "wheelhouse"
    a.pip("download", *pip_index, "churn-model==1.2.0", "-d", str(wheelhouse), env=env)
    assert (wheelhouse / "churn_model-1.2.0-py3-none-any.whl").is_file()
    b = venv(seed_pip=True)
    b.pip("install", "--isolated", "--no-index", "--find-links", str(wheelhouse), "churn-model", env=env)
    got = b.json(PREDICT.format(csv=str(csv)))
    assert got["version"] == "1.2.0"  # the only version in the wheelhouse, although 1.3.1 is newest on the index
    assert got["pred"] == pytest.approx(model12.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    assert got["meta"] == meta12


def test_pip_isolation_drops_machine_config(venv, tmp_path):
    """Guard for the test above: the machine's extra indexes and find-links are really out of the way."""
    a = venv(seed_pip=True)
    assert "find-links" in a.pip("config", "list").stdout + os.environ.get("PIP_FIND_LINKS", "find-links")
    assert a.pip("--isolated", "config", "list", env=pip_env(tmp_path)).stdout.strip() == ""
