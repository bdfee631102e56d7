"""The opt-in smoke check: the build loads the model in a subprocess, runs the example, compares.

Builds go through ``uv build`` (isolated): the hook's ``dependencies()`` must bring the model's
frameworks into the build environment, or the check could not load anything.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import UV, make_pipeline, run, save_model, tamper, wheel_names

from hatch_modelpack.config import PackConfig, load_config
from hatch_modelpack.errors import ConfigError

CHECK = """
[tool.hatch.build.hooks.modelpack.models.churn]
path = "artifacts/churn.joblib"

[tool.hatch.build.hooks.modelpack.models.churn.check]
input = "checks/X.csv"
expected = "checks/proba.npy"
tolerance = 1e-9
method = "predict_proba"
"""


def _uv_build(p, env, *args: str, check: bool = True):
    return run([UV, "build", *args, "--out-dir", str(p.root / "dist"), str(p.root)], env=env, check=check)


def _checked_project(project, seed: int = 11):
    model, X = make_pipeline(seed=seed)
    p = project(models=CHECK, deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    (p.root / "checks").mkdir()
    X.head(20).to_csv(p.root / "checks" / "X.csv", index=False)
    np.save(p.root / "checks" / "proba.npy", model.predict_proba(X.head(20)))
    return p, model, X


@pytest.mark.slow
def test_passing_check_ships_and_runs_again_in_the_service(project, build_env, venv):
    p, _, _ = _checked_project(project)
    proc = _uv_build(p, build_env)  # sdist, then the wheel from it: the check files travel through the sdist
    assert (
        "smoke check of `churn`: predict_proba on checks/X.csv matches the expected output" in proc.stdout + proc.stderr
    )
    wheel = p.wheel()
    assert {"churn_model/_checks/churn/X.csv", "churn_model/_checks/churn/proba.npy"} <= set(wheel_names(wheel))
    with zipfile.ZipFile(wheel) as zf:
        check = json.loads(zf.read("churn_model/_modelpack.json"))["models"]["churn"]["check"]
    assert check["input"]["path"] == "_checks/churn/X.csv" and check["expected"]["path"] == "_checks/churn/proba.npy"
    assert check["tolerance"] == 1e-9 and check["method"] == "predict_proba"
    assert len(check["input"]["sha256"]) == 64

    env = venv()
    env.install(str(wheel))
    got = env.json("""
        import json
        import churn_model
        first = churn_model.check()
        again = churn_model.check(model=churn_model.load())
        print(json.dumps({"first": first, "again": again, "meta": churn_model.metadata()["check"]["method"]}))
    """)
    assert got["first"]["compared"] is True and got["first"]["shape"] == [20, 2]
    assert got["first"]["max_abs_diff"] <= 1e-9 and got["again"]["compared"] is True
    assert got["meta"] == "predict_proba"

    # A changed check file is caught like a changed artifact.
    installed = env.site_packages() / "churn_model" / "_checks" / "churn" / "proba.npy"
    tamper(installed, installed.read_bytes()[:-8] + b"\x00" * 8)
    proc = env.py("import churn_model; churn_model.check()", check=False)
    assert proc.returncode != 0 and "IntegrityError" in proc.stderr and "proba.npy" in proc.stderr


@pytest.mark.slow
def test_drift_fails_the_build_with_a_clear_message(project, build_env):
    p, model, X = _checked_project(project, seed=12)
    drifted = model.predict_proba(X.head(20))
    drifted[3, 1] += 0.01
    np.save(p.root / "checks" / "proba.npy", drifted)
    proc = _uv_build(p, build_env, "--wheel", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "smoke check" in out and "drifted from the expected output" in out and "1 of 40 values" in out
    assert "first at index (3, 1)" in out and "checks/proba.npy" in out
    assert "Traceback" not in out
    assert not (p.root / "dist").exists() or not list((p.root / "dist").glob("*.whl"))


@pytest.mark.slow
def test_an_example_the_model_cannot_take_fails_the_build(project, build_env):
    p, _, X = _checked_project(project, seed=13)
    X[["a", "b"]].head(5).to_csv(p.root / "checks" / "X.csv", index=False)  # a column is missing
    proc = _uv_build(p, build_env, "--wheel", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "could not run predict_proba on checks/X.csv" in out and "missing" in out and "Traceback" not in out


@pytest.mark.slow
def test_onnx_check_with_a_json_example(project, build_env, venv):
    from skl2onnx import to_onnx

    model, X = make_pipeline(seed=14)
    p = project(
        models="""
[tool.hatch.build.hooks.modelpack.models.churn]
path = "artifacts/churn.onnx"
check = { input = "checks/x.json", expected = "checks/proba.npy", tolerance = 1e-5, method = "probabilities" }
"""
    )
    (p.root / "artifacts").mkdir()
    (p.root / "checks").mkdir()
    onx = to_onnx(model, X.to_numpy(np.float32)[:1], options={"zipmap": False})
    (p.root / "artifacts" / "churn.onnx").write_bytes(onx.SerializeToString())
    (p.root / "checks" / "x.json").write_text(json.dumps({"X": X.head(10).to_numpy().tolist()}))
    np.save(p.root / "checks" / "proba.npy", model.predict_proba(X.head(10)))
    _uv_build(p, build_env, "--wheel")
    env = venv()
    env.install(str(p.wheel()))
    got = env.json("import json, churn_model; print(json.dumps(churn_model.check()))")
    assert got["compared"] is True and got["method"] == "probabilities" and got["shape"] == [10, 2]


# -- configuration, without a build ------------------------------------------------------------


def _config(root: Path, check: object) -> PackConfig:
    models = {"churn": {"path": "m.joblib", "check": check}}
    return load_config(root, {"models": json.loads(json.dumps(models))}, "churn-model")


@pytest.mark.parametrize(
    ("check", "files", "message"),
    [
        ({"input": "x.txt"}, ["x.txt"], "is 'x.txt', which is not an .npy, .csv or .json file"),
        ({"expected": "y.npy"}, ["y.npy"], "has no `input`"),
        ({"input": "x.npy", "tolerance": 1e-3}, ["x.npy"], "there is no `expected` output"),
        ({"input": "x.npy", "expected": "y.npy", "tolerance": -1}, ["x.npy", "y.npy"], "Write a non-negative number"),
        ({"input": "x.npy", "tolerence": 1}, ["x.npy"], "Did you mean `tolerance`?"),
        ({"input": "missing.npy"}, [], "does not exist"),
        ({"input": "x.npy", "method": 3}, ["x.npy"], "method"),
    ],
)
def test_check_config_mistakes_name_the_key_and_the_fix(tmp_path, check, files, message):
    (tmp_path / "m.joblib").write_bytes(b"\x80\x04N.")
    for f in files:
        (tmp_path / f).write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, check)
    text = str(info.value)
    assert message in text and "models.churn.check" in text and str(tmp_path / "pyproject.toml") in text


def test_check_config_is_parsed(tmp_path):
    (tmp_path / "m.joblib").write_bytes(b"\x80\x04N.")
    for f in ("x.json", "y.csv"):
        (tmp_path / f).write_text("")
    pack = _config(tmp_path, {"input": "x.json", "expected": "y.csv", "method": "predict_proba"})
    check = pack.model("churn").check
    assert (check.input, check.expected, check.tolerance, check.method) == ("x.json", "y.csv", 1e-6, "predict_proba")
    assert _config(tmp_path, "x.json").model("churn").check.expected is None  # the short form: just the input
