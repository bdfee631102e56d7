"""The ``modelpack`` command on real wheels and real installs: inspect, verify, list, diff, init.

Two versions of the same project are built once per module (1.2.0: a logistic pipeline; 1.3.0: a
retrained random forest with new metadata), the way a team ships a retrained model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import REPO, UV, Project, Venv, make_pipeline, pyproject, run, save_model, tamper

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "hatch_modelpack"]


def cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m hatch_modelpack`` from this checkout (the console script is tested in a venv)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"modelpack {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelpack: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


META_12 = 'description = "Churn, logistic"\nmetadata = { auc = 0.81, seed = 1 }'
META_13 = 'description = "Churn, random forest"\nmetadata = { auc = 0.86, seed = 2, training-data = "s3://data/churn/2024-06" }'


def model_table(meta: str) -> str:
    return f'[tool.hatch.build.hooks.modelpack.models.churn]\npath = "artifacts/churn.joblib"\n{meta}\n'


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, build_env: dict[str, str]) -> dict[str, Path]:
    """churn-model 1.2.0 and 1.3.0 wheels, plus the artifacts they were built from."""
    root = tmp_path_factory.mktemp("cli") / "churn-model"
    root.mkdir()
    p = Project(root, "churn-model")
    p.write("README.md", "# churn-model\n")
    out: dict[str, Path] = {}
    for version, seed, kind, meta in (("1.2.0", 1, "logistic", META_12), ("1.3.0", 2, "forest", META_13)):
        p.write("pyproject.toml", pyproject(version=version, models="", extra=model_table(meta), deps='"pandas"'))
        model, _ = make_pipeline(seed=seed, kind=kind)
        art = save_model(model, root / "artifacts" / "churn.joblib")
        out[f"artifact-{version}"] = shutil.copy(art, root.parent / f"churn-{version}.joblib")
        run([UV, "build", "--wheel", "--out-dir", str(root / "dist"), str(root)], env=build_env)
        out[version] = root / "dist" / f"churn_model-{version}-py3-none-any.whl"
        assert out[version].is_file()
    return out


def test_inspect_wheel(versions, sklearn_version):
    wheel = versions["1.2.0"]
    text = cli("inspect", str(wheel)).stdout
    assert text.splitlines()[0].startswith("churn-model 1.2.0")
    assert sha256(versions["artifact-1.2.0"]) in text  # the full hash, for copy-paste
    for needle in (
        "churn *",
        "joblib",
        f"scikit-learn=={sklearn_version}",
        f"scikit-learn {sklearn_version}",
        "Churn, logistic",
        "auc: 0.81",
        "pandas",
    ):
        assert needle in text, needle

    doc = json.loads(cli("inspect", "--json", str(wheel)).stdout)
    assert doc["origin"] == "wheel"
    assert doc["metadata"]["name"] == "churn-model" and doc["metadata"]["version"] == "1.2.0"
    assert f"scikit-learn=={sklearn_version}" in doc["metadata"]["requires_dist"]
    entry = doc["manifest"]["models"]["churn"]
    assert entry["format"] == "joblib"
    assert entry["files"] == [
        {
            "path": "churn.joblib",
            "size": versions["artifact-1.2.0"].stat().st_size,
            "sha256": sha256(versions["artifact-1.2.0"]),
        }
    ]
    assert entry["frameworks"]["scikit-learn"] == sklearn_version
    assert entry["metadata"] == {"auc": 0.81, "seed": 1}


def test_diff_two_versions(versions):
    old, new = str(versions["1.2.0"]), str(versions["1.3.0"])
    text = cli("diff", old, new).stdout
    assert text.splitlines()[0] == "churn-model 1.2.0 -> churn-model 1.3.0"
    for needle in (
        "models.churn.files.churn.joblib.sha256",
        sha256(versions["artifact-1.2.0"])[:12],
        sha256(versions["artifact-1.3.0"])[:12],
        "models.churn.metadata.auc",
        "models.churn.metadata.training-data",
        "models.churn.description",
        "sklearn.ensemble._forest.RandomForestClassifier",
    ):
        assert needle in text, needle

    doc = json.loads(cli("diff", "--json", old, new).stdout)
    assert doc["old"]["version"] == "1.2.0" and doc["new"]["version"] == "1.3.0"
    changes = {c["path"]: c for c in doc["changes"]}
    assert changes["version"] == {"path": "version", "change": "changed", "old": "1.2.0", "new": "1.3.0"}
    assert changes["models.churn.files.churn.joblib.sha256"]["new"] == sha256(versions["artifact-1.3.0"])
    assert changes["models.churn.metadata.auc"] == {
        "path": "models.churn.metadata.auc",
        "change": "changed",
        "old": 0.81,
        "new": 0.86,
    }
    assert changes["models.churn.metadata.training-data"]["change"] == "added"
    assert "sklearn.linear_model._logistic.LogisticRegression" in changes["models.churn.pickle_globals"]["removed"]
    assert "models.churn.format" not in changes and "requires_dist" not in changes  # same framework, same pins

    assert cli("diff", "--exit-code", old, new, check=False).returncode == 1
    same = cli("diff", "--exit-code", old, old)
    assert "no differences" in same.stdout and json.loads(cli("diff", "--json", old, old).stdout)["changes"] == []


def test_verify_wheel(versions, tmp_path):
    assert "1 file(s) match" in cli("verify", str(versions["1.3.0"])).stdout
    # A wheel whose artifact was swapped after the build (same path, other bytes) is refused.
    import zipfile

    bad = tmp_path / versions["1.2.0"].name
    with zipfile.ZipFile(versions["1.2.0"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("churn.joblib"):
                data = versions["artifact-1.3.0"].read_bytes()
            dst.writestr(info, data)
    err = one_line_error(cli("verify", str(bad), check=False))
    assert "churn_model/_models/churn/churn.joblib" in err and "mismatch" in err


@pytest.fixture(scope="module")
def installed(versions, wheelhouse, tmp_path_factory) -> Venv:
    """A venv with the modelpack console script and churn-model 1.2.0 whose package cannot be imported."""
    env = Venv(tmp_path_factory.mktemp("clivenv") / "venv")
    run([UV, "venv", "--quiet", "--python", sys.executable, str(env.path)])
    plugin = next(wheelhouse.glob("hatch_modelpack-*.whl"))
    env.install(str(plugin))
    env.install("--no-deps", str(versions["1.2.0"]))
    # Booby-trap the package: every command below must work without importing it.
    tamper(
        env.site_packages() / "churn_model" / "__init__.py",
        b"raise RuntimeError('modelpack imported the model package')\n",
    )
    return env


def modelpack(env: Venv, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([str(env.path / "bin" / "modelpack"), *args], check=check)


def test_list_installed(installed):
    text = modelpack(installed, "list").stdout
    row = next(line for line in text.splitlines() if line.startswith("churn-model"))
    assert row.split()[:5] == ["churn-model", "1.2.0", "churn_model", "churn", "*"]
    items = json.loads(modelpack(installed, "list", "--json").stdout)
    assert [(i["distribution"], i["version"], i["package"], [m["name"] for m in i["models"]]) for i in items] == [
        ("churn-model", "1.2.0", "churn_model", ["churn"])
    ]
    assert items[0]["entry_point"] == "churn_model._modelpack"


def test_inspect_and_verify_installed(installed, versions):
    for name in ("churn-model", "churn_model", "Churn.Model"):
        doc = json.loads(modelpack(installed, "inspect", "--json", name).stdout)
        assert doc["origin"] == "installed" and doc["manifest"]["version"] == "1.2.0", name
    text = modelpack(installed, "verify", "churn-model").stdout
    assert "OK" in text and "(manifest)" in text  # the manifest is checked against the installer's RECORD


def test_verify_installed_detects_tampering(versions, wheelhouse, venv):
    env = venv()
    env.install("--no-deps", str(versions["1.3.0"]))
    artifact = env.site_packages() / "churn_model" / "_models" / "churn" / "churn.joblib"
    # Run the CLI of this checkout inside that env (which has no hatch-modelpack) through --python.
    ok = cli("verify", "--python", str(env.python), "churn_model")
    # --no-deps: no scikit-learn here, so load() would refuse; verify says so, and fails with --strict.
    assert "VERSIONS" in ok.stdout and "scikit-learn is not installed" in ok.stdout and "--strict" in ok.stdout
    err = one_line_error(cli("verify", "--strict", "--python", str(env.python), "churn_model", check=False))
    assert (
        "versions" in err and "scikit-learn is not installed" in err and "install the versions the model records" in err
    )
    tamper(artifact, artifact.read_bytes()[:-1] + b"\x00")
    err = one_line_error(cli("verify", "--python", str(env.python), "churn_model", check=False))
    assert (
        str(artifact) in err
        and "mismatch" in err
        and "pip install --force-reinstall --no-deps churn-model==1.3.0" in err
    )
    doc = json.loads(cli("verify", "--json", "--python", str(env.python), "churn_model", check=False).stdout)
    assert doc["ok"] is False and [f["status"] for f in doc["files"] if f["model"] == "churn"] == ["mismatch"]
    # A removed artifact and an edited manifest are reported too.
    artifact.unlink()
    assert "missing" in one_line_error(cli("verify", "--python", str(env.python), "churn_model", check=False))
    manifest = artifact.parents[2] / "_modelpack.json"
    tamper(manifest, manifest.read_bytes().replace(b'"1.3.0"', b'"1.2.0"'))
    doc = json.loads(cli("verify", "--json", "--python", str(env.python), "churn_model", check=False).stdout)
    assert [f["status"] for f in doc["files"] if f["model"] == "(manifest)"] == ["mismatch"]


def test_list_with_python_and_empty_env(installed, venv):
    assert "churn-model" in cli("list", "--python", str(installed.python)).stdout
    empty = venv()
    assert "no model packages installed" in cli("list", "--python", str(empty.python)).stdout
    assert json.loads(cli("list", "--json", "--python", str(empty.python)).stdout) == []


def test_errors_are_one_line(versions, wheelhouse, tmp_path):
    plugin = next(wheelhouse.glob("hatch_modelpack-*.whl"))
    assert "not a model package" in one_line_error(cli("inspect", str(plugin), check=False))
    assert "no such wheel file" in one_line_error(
        cli("inspect", str(tmp_path / "missing-1.0-py3-none-any.whl"), check=False)
    )
    assert "no installed model package named 'no-such-model'" in one_line_error(
        cli("verify", "no-such-model", check=False)
    )
    assert "holds no model manifest" in one_line_error(cli("inspect", "packaging", check=False))
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    assert "cannot be opened as a wheel" in one_line_error(cli("diff", str(junk), str(versions["1.2.0"]), check=False))
    usage = cli("frobnicate", check=False)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_console_script_and_module_agree(installed, versions):
    a = modelpack(installed, "inspect", "--json", str(versions["1.3.0"])).stdout
    b = run([str(installed.python), "-m", "hatch_modelpack", "inspect", "--json", str(versions["1.3.0"])]).stdout
    assert json.loads(a) == json.loads(b)


def test_init_writes_a_buildable_project(versions, build_env, venv, tmp_path, sklearn_version):
    proj = tmp_path / "fraud-model"
    out = cli(
        "init",
        "fraud-model",
        "--model",
        str(versions["artifact-1.2.0"]),
        "--dir",
        str(proj),
        "--description",
        "Fraud score",
        "--version",
        "2.0.0",
    )
    assert "joblib" in out.stdout and f"scikit-learn=={sklearn_version}" in out.stdout
    copied = proj / "artifacts" / "churn-1.2.0.joblib"
    assert copied.read_bytes() == versions["artifact-1.2.0"].read_bytes()
    data = tomllib.loads((proj / "pyproject.toml").read_text())
    assert data["project"]["name"] == "fraud-model" and data["project"]["version"] == "2.0.0"
    assert data["project"]["dynamic"] == ["dependencies"] and "dependencies" not in data["project"]
    assert data["tool"]["hatch"]["metadata"]["hooks"]["modelpack"] == {"dependencies": []}
    assert data["tool"]["hatch"]["build"]["hooks"]["modelpack"]["models"] == {
        "churn_1": {"path": "artifacts/churn-1.2.0.joblib", "format": "joblib", "description": "Fraud score"}
    }
    readme = (proj / "README.md").read_text()
    assert "from fraud_model import load" in readme and f"scikit-learn=={sklearn_version}" in readme

    # Refuses to overwrite, leaving both files as they were; --force overwrites.
    before = (proj / "pyproject.toml").read_text()
    err = one_line_error(cli("init", "fraud-model", "--model", str(copied), "--dir", str(proj), check=False))
    assert "already exist" in err and "--force" in err
    assert (proj / "pyproject.toml").read_text() == before
    cli(
        "init",
        "fraud-model",
        "--model",
        str(copied),
        "--dir",
        str(proj),
        "--model-name",
        "fraud",
        "--force",
        "--version",
        "2.0.0",
    )
    assert "models.fraud]" in (proj / "pyproject.toml").read_text()

    # The project builds as written, with the inferred requirements, and the model loads.
    run([UV, "build", "--out-dir", str(proj / "dist"), str(proj)], env=build_env)
    wheel = proj / "dist" / "fraud_model-2.0.0-py3-none-any.whl"
    doc = json.loads(cli("inspect", "--json", str(wheel)).stdout)
    assert f"scikit-learn=={sklearn_version}" in doc["metadata"]["requires_dist"]
    assert list(doc["manifest"]["models"]) == ["fraud"]
    env = venv()
    env.install(str(wheel), "pandas")
    assert env.py("import fraud_model; m = fraud_model.load(); print(type(m).__name__)").stdout.strip() == "Pipeline"


def test_init_errors(tmp_path):
    assert "no such file" in one_line_error(
        cli("init", "x-model", "--model", str(tmp_path / "nope.joblib"), "--dir", str(tmp_path / "p"), check=False)
    )
    bad = tmp_path / "model.joblib"
    bad.write_bytes(b"this is not a model")
    err = one_line_error(cli("init", "x-model", "--model", str(bad), "--dir", str(tmp_path / "q"), check=False))
    assert err.startswith(f"modelpack: cannot package {bad}") and "pyproject.toml" not in err
    assert not (tmp_path / "q").exists()  # refused before anything was written or copied
    typo = one_line_error(
        cli("init", "x-model", "--model", str(bad), "--format", "jobilb", "--dir", str(tmp_path / "r"), check=False)
    )
    assert "--format 'jobilb'" in typo and "joblib" in typo
    assert "not a valid project name" in one_line_error(cli("init", "bad name!", "--model", str(bad), check=False))
