"""One project, every standard front end and install mode: each installs and loads the model.

Also: what ``pip install -e .`` does when the model is retrained, with and without the user's own
``__init__.py``, and that pip and uv see the inferred requirements of a source tree before building
it (prepared metadata).
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import SCRIPTS, UV, make_pipeline, requires_dist, run, save_model, wheel_metadata

pytestmark = pytest.mark.slow

HATCH = str(SCRIPTS / "hatch") if (SCRIPTS / "hatch").exists() else (shutil.which("hatch") or "hatch")

PREDICT = """
    import json, churn_model, pandas as pd
    m = churn_model.load()
    print(json.dumps({{"version": churn_model.__version__, "pred": m.predict_proba(pd.read_csv({csv!r}))[:, 1].tolist()}}))
"""

OWN_INIT = '''"""churn_model: the team's helpers around the packaged model."""
from ._modelpack import __version__, load, metadata, models, path, verify


def predict(rows):
    return load().predict_proba(rows)[:, 1]
'''


def built_wheel(out: Path) -> Path:
    wheels = sorted(out.glob("*.whl"))
    assert [w.name for w in wheels] == ["churn_model-1.2.0-py3-none-any.whl"], wheels
    return wheels[0]


def manifest_of(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read("churn_model/_modelpack.json"))


FRONTENDS = ["python -m build", "pip wheel", "uv build", "hatch build", "pip install", "uv pip install"]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_frontend_builds_installs_and_loads(frontend, project, build_env, venv, tmp_path, sklearn_version):
    model, X = make_pipeline(seed=3)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    csv = tmp_path / "X.csv"
    X.to_csv(csv, index=False)
    out = tmp_path / "out"
    env = venv(seed_pip=frontend == "pip install")
    wheel = None
    if frontend == "python -m build":
        proc = run([sys.executable, "-m", "build", "--outdir", str(out), str(p.root)], env=build_env)
        assert "Building wheel from sdist" in proc.stdout + proc.stderr  # the wheel really came from the sdist
        assert (out / "churn_model-1.2.0.tar.gz").is_file()
        wheel = built_wheel(out)
    elif frontend == "pip wheel":
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(p.root)], env=build_env)
        wheel = built_wheel(out)
    elif frontend == "uv build":
        run([UV, "build", "--out-dir", str(out), str(p.root)], env=build_env)
        wheel = built_wheel(out)
    elif frontend == "hatch build":
        run([HATCH, "build", "-t", "wheel", str(out)], cwd=p.root, env=build_env)
        wheel = built_wheel(out)
    elif frontend == "pip install":
        # No dependency is preinstalled: pip must learn scikit-learn==X from the prepared metadata.
        env.pip("install", str(p.root), env=build_env)
    elif frontend == "uv pip install":
        run([UV, "pip", "install", "--python", str(env.python), str(p.root)], env=build_env)
    if wheel is not None:
        assert f"scikit-learn=={sklearn_version}" in requires_dist(wheel_metadata(wheel))
        assert manifest_of(wheel)["models"]["churn"]["files"][0]["sha256"]
        env.install(str(wheel))
    got = env.json(PREDICT.format(csv=str(csv)))
    assert got["version"] == "1.2.0"
    assert got["pred"] == pytest.approx(model.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    assert (
        env.json("import json; from importlib.metadata import version; print(json.dumps(version('scikit-learn')))")
        == sklearn_version
    )
    # No front end leaves generated files in the project.
    assert not any(p.root.rglob("_modelpack*")), sorted(p.root.rglob("_modelpack*"))


def test_frontends_agree_on_the_manifest(project, build_env, tmp_path):
    """Wheels of the same sources are identical whichever front end built them."""
    model, _ = make_pipeline(seed=4)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    outs = {name: tmp_path / name for name in ("build", "pipwheel", "uv", "hatch")}
    run([sys.executable, "-m", "build", "--outdir", str(outs["build"]), str(p.root)], env=build_env)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(outs["pipwheel"]), str(p.root)], env=build_env)
    run([UV, "build", "--wheel", "--out-dir", str(outs["uv"]), str(p.root)], env=build_env)
    run([HATCH, "build", "-t", "wheel", str(outs["hatch"])], cwd=p.root, env=build_env)
    wheels = {name: built_wheel(out) for name, out in outs.items()}
    manifests = {name: manifest_of(w) for name, w in wheels.items()}
    assert all(m == manifests["build"] for m in manifests.values()), manifests
    contents = {name: sorted(zipfile.ZipFile(w).namelist()) for name, w in wheels.items()}
    assert all(c == contents["build"] for c in contents.values())
    digests = {name: w.read_bytes() for name, w in wheels.items()}
    assert len(set(digests.values())) == 1, "front ends produced different wheel bytes"


@pytest.mark.parametrize("own_init", [False, True], ids=["generated-package", "own-init"])
def test_editable_install_and_retraining(own_init, project, build_env, venv, tmp_path, sklearn_version):
    model1, X = make_pipeline(seed=5)
    p = project(deps='"pandas"')
    save_model(model1, p.root / "artifacts" / "churn.joblib")
    if own_init:
        p.write("churn_model/__init__.py", OWN_INIT)
    csv = tmp_path / "X.csv"
    X.to_csv(csv, index=False)
    env = venv(seed_pip=True)
    env.install(f"scikit-learn=={sklearn_version}", "pandas", "joblib")
    env.pip("install", "-e", str(p.root), env=build_env)
    got = env.json(PREDICT.format(csv=str(csv)))
    assert got["pred"] == pytest.approx(model1.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    if own_init:  # the user's code is live-edited, and it still reaches the generated loader
        assert (
            env.json(
                f"import json, churn_model, pandas as pd; print(json.dumps(churn_model.predict(pd.read_csv({str(csv)!r})).tolist()))"
            )
            == got["pred"]
        )

    # Retrain: replace the artifact. The next load() in a new process refuses the unrecorded bytes
    # and says exactly what to do; nothing is unpickled.
    model2, _ = make_pipeline(seed=6, kind="forest")
    tmp = save_model(model2, tmp_path / "retrained.joblib")
    shutil.copyfile(tmp, p.root / "artifacts" / "churn.joblib")
    proc = env.py(PREDICT.format(csv=str(csv)), check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("churn_model._modelpack.IntegrityError") or "IntegrityError" in last, proc.stderr
    assert "run `pip install -e .` again" in last and str(p.root / "artifacts" / "churn.joblib") in last
    # Nothing is unpickled: no find_class ever runs (the frameworks may be imported meanwhile, issue 16).
    refused = (
        "import json, sys, churn_model._modelpack as mp\nseen = []\n"
        "sys.addaudithook(lambda ev, args: seen.append(args) if ev == 'pickle.find_class' else None)\n"
        "try:\n    mp.load()\nexcept mp.IntegrityError:\n    print(json.dumps(seen))"
    )
    assert env.json(refused) == []

    # Doing what it says picks up the new model.
    env.pip("install", "-e", str(p.root), env=build_env)
    got = env.json(PREDICT.format(csv=str(csv)))
    assert got["pred"] == pytest.approx(model2.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    assert not any(p.root.rglob("_modelpack*"))


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_source_tree_installs_see_inferred_requirements(installer, project, build_env, venv, tmp_path, sklearn_version):
    model, _ = make_pipeline(seed=7)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    if installer == "pip":
        env = venv(seed_pip=True)
        proc = env.pip("install", "--dry-run", "--no-deps", "--quiet", "--report", "-", str(p.root), env=build_env)
        report = json.loads(proc.stdout)
        (item,) = report["install"]
        assert item["metadata"]["name"] == "churn-model"
        assert f"scikit-learn=={sklearn_version}" in item["metadata"]["requires_dist"]
        assert "pandas" in item["metadata"]["requires_dist"]
    else:
        env = venv()
        proc = run([UV, "pip", "install", "--dry-run", "--python", str(env.python), str(p.root)], env=build_env)
        assert f"+ scikit-learn=={sklearn_version}" in proc.stderr + proc.stdout
        assert "+ pandas" in proc.stderr + proc.stdout
