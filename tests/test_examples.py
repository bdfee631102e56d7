"""The two example projects, as a user would run them: train, build, install clean, serve."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, Project, requires_dist, run, wheel_metadata

pytestmark = pytest.mark.slow


def _copy_example(name: str, tmp_path: Path) -> Project:
    root = tmp_path / name
    shutil.copytree(REPO / name, root, ignore=shutil.ignore_patterns("artifacts", "dist", "__pycache__"))
    return Project(root, name)


def test_churn_example_trains_builds_installs_and_serves(tmp_path, build_env, venv, sklearn_version):
    p = _copy_example("example_project", tmp_path)
    run([sys.executable, str(p.root / "train.py"), "--rows", "2000"])
    p.build(build_env)  # sdist, then the wheel from it: the README's `python -m build`
    wheel = p.wheel()
    assert wheel.name == "churn_model-1.2.0-py3-none-any.whl"
    assert f"scikit-learn=={sklearn_version}" in requires_dist(wheel_metadata(wheel))
    env = venv()
    env.install(str(wheel))
    artifacts = p.root / "artifacts"
    same = env.json(f"""
        import json, numpy as np, pandas as pd, churn_model
        got = churn_model.load().predict_proba(pd.read_csv({str(artifacts / "sample.csv")!r}))[:, 1]
        print(json.dumps(bool(np.allclose(got, np.load({str(artifacts / "sample_predictions.npy")!r}), atol=1e-12))))
    """)
    assert same is True

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(env.python), str(p.root / "service.py"), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(150):
            try:
                health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1))
                break
            except OSError:
                assert server.poll() is None, server.communicate()
                time.sleep(0.2)
        else:
            pytest.fail("the example service did not start")
        record = [{"tenure_months": 3, "monthly_charges": 95.0, "support_calls": 4, "contract": "monthly"}]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(record).encode(), method="POST")
        answer = json.load(urllib.request.urlopen(req, timeout=30))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert health["version"] == "1.2.0" and health["model"] == "churn"
    assert len(answer["churn_probability"]) == 1 and 0.0 <= answer["churn_probability"][0] <= 1.0


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
