"""Load time: tampered files are refused before a byte is unpickled, versions are checked, threads are safe.

The fast tests drive the generated loader directly (``hatch_modelpack.runtime.loader._Pack`` pointed at a
package directory made from a real manifest); the slow ones go through a real wheel installed into
a fresh venv, since that is what a service runs.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import threading
import warnings
from pathlib import Path

import pytest
from conftest import make_pipeline, save_model, tamper

from hatch_modelpack.config import load_config
from hatch_modelpack.manifest import MANIFEST_NAME, analyse, build_manifest, dumps
from hatch_modelpack.runtime import _modelpack_integrity, loader


class Marker:
    """Unpickling this creates ``path``: proof that a payload ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_bytes(marker: Path) -> bytes:
    return pickle.dumps({"model": Marker(marker)}, protocol=4)


def make_pack(tmp_path: Path, fmt: str = "joblib") -> tuple[loader._Pack, object, object]:
    """A package directory laid out like an installed wheel, with a manifest made by the real build code."""
    model, X = make_pipeline(seed=4)
    root = tmp_path / "project"
    rel = f"artifacts/churn.{'joblib' if fmt == 'joblib' else 'pkl'}"
    save_model(model, root / rel, how=fmt)
    pack = load_config(root, {"models": {"churn": rel}}, "churn-model")
    models = analyse(pack)
    manifest = build_manifest(pack, models, distribution="churn-model", version="1.0.0")
    pkg = tmp_path / "site" / "churn_model"
    dest = pkg / manifest["models"]["churn"]["path"]
    dest.parent.mkdir(parents=True)
    shutil.copyfile(root / rel, dest)
    (pkg / MANIFEST_NAME).write_text(dumps(manifest))
    return loader._Pack(pkg), model, X


# -- fast: the loader module itself ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["joblib", "pickle"])
def test_replaced_artifact_is_refused_and_never_unpickled(tmp_path, fmt):
    pack, _, _ = make_pack(tmp_path, fmt)
    marker = tmp_path / "payload-ran"
    artifact = pack.path(None)
    artifact.write_bytes(evil_bytes(marker))
    with pytest.raises(loader.IntegrityError) as err:
        pack.load(None, None, {})
    assert not marker.exists()
    msg = str(err.value)
    assert str(artifact) in msg and "does not match the manifest" in msg and "nothing was loaded" in msg
    assert "reinstall churn-model==1.0.0" in msg
    # Control: the replacement really is a live payload.
    with open(artifact, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_same_size_tamper_after_a_good_load_is_caught(tmp_path):
    pack, _, X = make_pack(tmp_path)
    pack.load(None, None, {}).predict(X)
    artifact = pack.path(None)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.unlink()  # a new inode, as an attacker replacing the file would make
    artifact.write_bytes(bytes(data))
    with pytest.raises(loader.IntegrityError):
        pack.load(None, None, {})


def _with_recorded(pack: loader._Pack, recorded: str) -> None:
    manifest_path = pack.directory / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    checks = manifest["models"]["churn"]["version_checks"]
    (check,) = [c for c in checks if c["distribution"] == "scikit-learn"]
    check.update(recorded=recorded, requirement=f"scikit-learn=={recorded}", clauses=[["==", recorded]])
    manifest_path.write_text(json.dumps(manifest))
    pack._manifest = None


def test_version_mismatch_says_recorded_and_installed(tmp_path, monkeypatch, sklearn_version):
    pack, _, X = make_pack(tmp_path)
    _with_recorded(pack, "1.5.0")
    monkeypatch.delenv(loader.SKIP_VERSION_CHECK_ENV, raising=False)
    with pytest.raises(loader.VersionMismatchError) as err:
        pack.load(None, None, {})
    msg = str(err.value)
    assert f"scikit-learn {sklearn_version} is installed" in msg
    assert "recorded with scikit-learn 1.5.0" in msg
    assert "check_versions=False" in msg and "MODELPACK_SKIP_VERSION_CHECK=1" in msg
    pack.load(None, False, {}).predict(X)  # the argument opts out
    monkeypatch.setenv(loader.SKIP_VERSION_CHECK_ENV, "1")
    pack.load(None, None, {}).predict(X)  # and so does the environment variable
    with pytest.raises(loader.VersionMismatchError):
        pack.load(None, True, {})  # an explicit True wins over the environment


def test_exact_version_match_gives_no_inconsistent_version_warning(tmp_path):
    from sklearn.exceptions import InconsistentVersionWarning

    pack, model, X = make_pack(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        loaded = pack.load(None, None, {})
    assert (loaded.predict(X) == model.predict(X)).all()
    # The scan's result travels in the manifest: metadata() shows what unpickling imports.
    entry = pack.entry(None)
    assert "sklearn.pipeline.Pipeline" in entry["globals"]
    assert all(not g.startswith(("os.", "builtins.eval")) for g in entry["globals"])


def test_many_threads_load_at_once_and_hash_once(tmp_path, monkeypatch):
    pack, model, X = make_pack(tmp_path)
    calls: list[str] = []
    real = _modelpack_integrity._check_file

    def counting(file_path, expected, manifest, spare=0):
        calls.append(str(file_path))
        return real(file_path, expected, manifest, spare)

    monkeypatch.setattr(_modelpack_integrity, "_check_file", counting)
    n = 16
    barrier = threading.Barrier(n)
    results: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(pack.load(None, None, {}).predict(X).tolist())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == n and all(r == model.predict(X).tolist() for r in results)
    assert len(calls) == 1, calls
    # An explicit verify() always re-hashes.
    pack.verify(None, force=True)
    assert len(calls) == 2


def test_concurrent_first_access_to_the_manifest(tmp_path):
    pack, _, _ = make_pack(tmp_path)
    fresh = loader._Pack(pack.directory)
    barrier = threading.Barrier(8)
    seen: list[int] = []

    def worker() -> None:
        barrier.wait()
        seen.append(id(fresh.manifest))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(seen) == 8 and len(set(seen)) == 1


# -- slow: real wheels in real venvs -----------------------------------------------------------------


@pytest.mark.slow
def test_installed_wheel_refuses_a_replaced_pickle(project, build_env, venv, tmp_path):
    model, X = make_pipeline(seed=6)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    p.build(build_env)
    env = venv()
    env.install(str(p.wheel()))
    X.to_csv(tmp_path / "X.csv", index=False)

    # Exact version match first: no InconsistentVersionWarning.
    got = env.json(f"""
        import json, warnings
        import pandas as pd
        from sklearn.exceptions import InconsistentVersionWarning
        warnings.simplefilter("error", InconsistentVersionWarning)
        import churn_model
        print(json.dumps(churn_model.load().predict(pd.read_csv({str(tmp_path / "X.csv")!r})).tolist()))
    """)
    assert got == model.predict(X).tolist()

    artifact = env.site_packages() / "churn_model" / "_models" / "churn" / "churn.joblib"
    marker = tmp_path / "payload-ran"
    tamper(artifact, evil_bytes(marker))
    got = env.json("""
        import json
        import churn_model
        try:
            churn_model.load()
        except churn_model.IntegrityError as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        else:
            print(json.dumps({"error": None}))
    """)
    assert got["error"] == "IntegrityError"
    assert str(artifact) in got["message"] and "nothing was loaded" in got["message"]
    assert not marker.exists()
    # Control: the same bytes do run when something unpickles them.
    env.py(f"import joblib; joblib.load({str(artifact)!r})")
    assert marker.exists()


@pytest.mark.slow
def test_installed_wheel_version_mismatch_and_opt_outs(project, build_env, venv, tmp_path, sklearn_version):
    model, X = make_pipeline(seed=7)
    p = project(deps='"pandas"')
    path = save_model(model, p.root / "artifacts" / "churn.joblib")
    data = path.read_bytes()
    current = sklearn_version.encode()
    fake = b"1.5.0"
    assert len(current) == len(fake) and data.count(current) >= 1
    path.write_bytes(data.replace(current, fake))  # the artifact now says it was pickled by 1.5.0
    p.build(build_env)
    env = venv()
    env.install("--no-deps", str(p.wheel()))
    env.install(f"scikit-learn=={sklearn_version}", "pandas", "joblib")
    X.to_csv(tmp_path / "X.csv", index=False)
    code = f"""
        import json, os, sys, warnings
        warnings.simplefilter("ignore")
        import pandas as pd
        import churn_model
        X = pd.read_csv({str(tmp_path / "X.csv")!r})
        out = {{"recorded": churn_model.metadata()["frameworks"]}}
        try:
            churn_model.load()
        except churn_model.VersionMismatchError as exc:
            out["error"] = str(exc)
        if sys.argv[-1] == "arg":
            out["pred"] = churn_model.load(check_versions=False).predict(X).tolist()
        elif sys.argv[-1] == "env":
            out["pred"] = churn_model.load().predict(X).tolist()
        print(json.dumps(out))
    """
    import subprocess
    import textwrap

    def run(mode: str, extra_env: dict[str, str]) -> dict:
        proc = subprocess.run(
            [str(env.python), "-c", textwrap.dedent(code), mode],
            capture_output=True, text=True, env={**os.environ, **extra_env}, check=True,
        )  # fmt: skip
        return json.loads(proc.stdout.strip().splitlines()[-1])

    got = run("arg", {})
    assert got["recorded"] == {"scikit-learn": "1.5.0"}
    assert f"scikit-learn {sklearn_version} is installed" in got["error"]
    assert "recorded with scikit-learn 1.5.0" in got["error"]
    assert got["pred"] == model.predict(X).tolist()
    got = run("env", {"MODELPACK_SKIP_VERSION_CHECK": "1"})
    assert "error" not in got
    assert got["pred"] == model.predict(X).tolist()
