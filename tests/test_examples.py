"""The two example projects, as a user would run them: train, build, install clean, serve."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, Project, requires_dist, run, wheel_metadata

pytestmark = pytest.mark.slow


def _copy_example(name: str, tmp_path: Path) -> Project:
    root = tmp_path / name
    shutil.copytree(REPO / name, root, ignore=shutil.ignore_patterns("artifacts", "dist", "__pycache__"))
    return Project(root, name)


def test_churn_demo_the_readme_runs():
    """The README's main command, as is: train, build, install clean, predict, serve over HTTP."""
    out = run([sys.executable, str(REPO / "example_project" / "demo.py")], timeout=1200).stdout
    assert out.rstrip().endswith("demo passed"), out
    assert "churn_model/_models/churn/churn.joblib" in out and "churn_model/_modelpack.py" in out
    # Pinned exactly to whatever scikit-learn the demo's own training environment installed.
    assert re.search(r"Requires-Dist: scikit-learn==\d+\.\d+", out), out
    assert "(identical to training time)" in out
    assert "service health: {'package': 'churn-model', 'version': '1.2.0', 'model': 'churn'" in out
    workdir = Path(out.split("working in ", 1)[1].split()[0])
    assert not workdir.exists(), "the demo cleans up after itself"


@pytest.mark.tensorflow
def test_keras_example_trains_builds_installs_and_scores(tmp_path, build_env, venv):
    pytest.importorskip("tensorflow")
    p = _copy_example("example_keras", tmp_path)
    run([sys.executable, str(p.root / "train.py"), "--rows", "600", "--epochs", "2"], timeout=600)
    p.build(build_env, "--wheel")
    reqs = requires_dist(wheel_metadata(p.wheel()))
    assert any(r.startswith("keras") for r in reqs) and any(r.startswith("tensorflow>=") for r in reqs)
    env = venv()
    env.install(str(p.wheel()))
    out = run([str(env.python), str(p.root / "service.py")], cwd=p.root, timeout=600).stdout
    lines = [line for line in out.splitlines() if "p(failure)" in line]
    assert lines, out
    for line in lines:  # the .keras model and its SavedModel export agree
        keras_p = float(line.split("p(failure) = ")[1].split()[0])
        saved_p = float(line.split("(SavedModel: ")[1].rstrip(")"))
        assert keras_p == pytest.approx(saved_p, abs=1e-3)
