"""The core promise: a model file in, a wheel out that installs, verifies and loads anywhere."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import tarfile
import zipfile

import pytest
from conftest import REPO, make_pipeline, requires_dist, run, save_model, tamper, wheel_metadata, wheel_names

from hatch_modelpack.contract import LOADER_FILES

pytestmark = pytest.mark.slow


def test_python_m_build_installs_and_predicts(project, build_env, venv, sklearn_version):
    model, X = make_pipeline(seed=1)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    before = p.tree()
    p.build(build_env)
    wheel = p.wheel()
    assert wheel.name == "churn_model-1.2.0-py3-none-any.whl"
    assert {
        "churn_model/__init__.py",
        "churn_model/_modelpack.py",
        "churn_model/_modelpack.json",
        "churn_model/_models/churn/churn.joblib",
        *(f"churn_model/{shipped}" for shipped in LOADER_FILES),  # the loader and its private parts
    } <= set(wheel_names(wheel))
    with zipfile.ZipFile(wheel) as zf:
        for shipped, source in LOADER_FILES.items():
            assert zf.read(f"churn_model/{shipped}") == (REPO / "hatch_modelpack" / "runtime" / source).read_bytes()
    reqs = requires_dist(wheel_metadata(wheel))
    assert f"scikit-learn=={sklearn_version}" in reqs
    assert not any(r.startswith("hatch-modelpack") for r in reqs)
    # No generated file is left in the source tree.
    assert p.tree() - before <= {"dist"} | {f"dist/{w.name}" for w in (p.root / "dist").iterdir()}

    env = venv()
    env.install(str(wheel))
    X.to_csv(p.root / "X.csv", index=False)
    got = env.json(f"""
        import json, sys
        import churn_model
        imported = [m for m in ("joblib", "sklearn", "numpy", "pandas") if m in sys.modules]
        import pandas as pd
        model = churn_model.load()
        pred = model.predict_proba(pd.read_csv({str(p.root / "X.csv")!r}))[:, 1].tolist()
        print(json.dumps({{"imported": imported, "pred": pred, "version": churn_model.__version__, "models": list(churn_model.models())}}))
    """)
    assert got["imported"] == []
    assert got["version"] == "1.2.0"
    assert got["models"] == ["churn"]
    assert got["pred"] == pytest.approx(model.predict_proba(X)[:, 1].tolist(), abs=1e-12)


def _predict_json(env, pkg: str, csv, name: str | None = None, **load_kwargs) -> list[float]:
    args = ", ".join([repr(name)] if name else [])
    kw = ", ".join(f"{k}={v!r}" for k, v in load_kwargs.items())
    call = ", ".join(a for a in (args, kw) if a)
    return env.json(f"""
        import json
        import pandas as pd
        import {pkg}
        print(json.dumps({pkg}.load({call}).predict_proba(pd.read_csv({str(csv)!r}))[:, 1].tolist()))
    """)


def test_user_package_is_kept_and_loader_sits_beside_it(project, build_env, venv):
    model, X = make_pipeline(seed=2)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    init = p.write(
        "churn_model/__init__.py",
        '''
        """Churn features and scoring (the team's own code)."""
        from ._modelpack import load, metadata, models, path, verify, IntegrityError


        def add_ratio(frame):
            return frame.assign(ratio=frame["a"] / (1 + frame["b"].abs()))


        def score(frame):
            return load().predict_proba(frame)[:, 1]
        ''',
    )
    # pip wheel: the second front end the issue names.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(p.root / "dist"), str(p.root)], env=build_env)
    wheel = p.wheel()
    names = set(wheel_names(wheel))
    assert {
        "churn_model/__init__.py",
        "churn_model/_modelpack.json",
        *(f"churn_model/{m}" for m in LOADER_FILES),
    } <= names
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("churn_model/__init__.py") == init.read_bytes()
    assert not any((p.root / "churn_model" / m).exists() for m in LOADER_FILES)

    env = venv()
    env.install(str(wheel))
    X.to_csv(p.root / "X.csv", index=False)
    got = env.json(f"""
        import json
        import pandas as pd
        import churn_model
        from churn_model._modelpack import load, models, __version__
        frame = pd.read_csv({str(p.root / "X.csv")!r})
        print(json.dumps({{"score": churn_model.score(frame).tolist(), "ratio": "ratio" in churn_model.add_ratio(frame),
                          "models": list(models()), "version": __version__}}))
    """)
    assert got["score"] == pytest.approx(model.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    assert got["ratio"] and got["models"] == ["churn"] and got["version"] == "1.2.0"


def test_several_models_metadata_path_verify(project, build_env, venv, sklearn_version):
    logistic, X = make_pipeline(seed=3)
    forest, _ = make_pipeline(seed=3, kind="forest")
    p = project(
        deps='"pandas"',
        models="""
[tool.hatch.build.hooks.modelpack.models.churn]
path = "artifacts/churn.joblib"
default = true
description = "Logistic churn model"
metadata = { auc = 0.91, training-data = "s3://bucket/churn/2026-11-01.parquet" }

[tool.hatch.build.hooks.modelpack.models.forest]
path = "artifacts/forest.pkl"
description = "Random forest challenger"
""",
    )
    save_model(logistic, p.root / "artifacts" / "churn.joblib", compress=3)
    save_model(forest, p.root / "artifacts" / "forest.pkl", how="pickle")
    p.build(build_env)
    env = venv()
    env.install(str(p.wheel()))
    X.to_csv(p.root / "X.csv", index=False)

    assert _predict_json(env, "churn_model", p.root / "X.csv") == pytest.approx(
        logistic.predict_proba(X)[:, 1].tolist(), abs=1e-12
    )
    assert _predict_json(env, "churn_model", p.root / "X.csv", "forest") == pytest.approx(
        forest.predict_proba(X)[:, 1].tolist(), abs=1e-12
    )

    got = env.json("""
        import json, hashlib
        import churn_model
        out = {"models": list(churn_model.models()), "meta": churn_model.metadata(), "forest": churn_model.metadata("forest")}
        out["path"] = str(churn_model.path())
        out["path_sha"] = hashlib.sha256(churn_model.path().read_bytes()).hexdigest()
        out["forest_is_file"] = churn_model.path("forest").is_file()
        churn_model.verify()
        churn_model.verify("forest")
        try:
            churn_model.load("nope")
        except KeyError as exc:
            out["unknown"] = [type(exc).__name__, str(exc), isinstance(exc, churn_model.UnknownModelError)]
        print(json.dumps(out))
    """)
    assert got["models"] == ["churn", "forest"]
    meta = got["meta"]
    assert meta["name"] == "churn" and meta["format"] == "joblib" and meta["description"] == "Logistic churn model"
    assert meta["metadata"] == {"auc": 0.91, "training-data": "s3://bucket/churn/2026-11-01.parquet"}
    assert meta["frameworks"] == {"scikit-learn": sklearn_version}
    assert f"scikit-learn=={sklearn_version}" in meta["requires"] and "joblib" in meta["requires"]
    assert meta["details"]["compression"] == "zlib"
    assert "sklearn.pipeline.Pipeline" in meta["globals"]
    src = (p.root / "artifacts" / "churn.joblib").read_bytes()
    assert meta["files"] == [{"path": "churn.joblib", "size": len(src), "sha256": hashlib.sha256(src).hexdigest()}]
    assert got["path_sha"] == hashlib.sha256(src).hexdigest() and got["path"].endswith(
        "churn_model/_models/churn/churn.joblib"
    )
    assert got["forest"]["format"] == "pickle" and got["forest_is_file"]
    assert "joblib" not in got["forest"]["requires"]
    assert got["unknown"][0] == "UnknownModelError" and got["unknown"][2]
    assert "'churn'" in got["unknown"][1] and "'forest'" in got["unknown"][1] and "'nope'" in got["unknown"][1]


def test_tampered_artifact_is_refused_before_unpickling(project, build_env, venv, tmp_path):
    model, _ = make_pipeline(seed=4)
    p = project()
    save_model(model, p.root / "artifacts" / "churn.joblib")
    p.build(build_env, "--wheel")
    env = venv()
    env.install(str(p.wheel()))
    marker = tmp_path / "pwned"
    installed = env.site_packages() / "churn_model" / "_models" / "churn" / "churn.joblib"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    tamper(installed, pickle.dumps(Boom()))
    out = env.py(
        """
        import churn_model
        for call in (churn_model.load, churn_model.verify):
            try:
                call()
            except churn_model.IntegrityError as exc:
                print("refused:", exc)
        """
    ).stdout
    assert out.count("refused:") == 2
    assert "churn.joblib" in out and "does not match the manifest" in out
    assert not marker.exists()


def test_kwargs_reach_the_framework_mmap_mode(project, build_env, venv):
    import numpy as np

    p = project()
    save_model({"weights": np.arange(100_000, dtype="float64")}, p.root / "artifacts" / "churn.joblib")
    p.build(build_env, "--wheel")
    env = venv()
    env.install(str(p.wheel()))
    got = env.json("""
        import json
        import numpy as np
        import churn_model
        plain = churn_model.load()
        mapped = churn_model.load(mmap_mode="r")
        print(json.dumps([type(plain["weights"]).__name__, type(mapped["weights"]).__name__, float(mapped["weights"].sum())]))
    """)
    assert got == ["ndarray", "memmap", float(np.arange(100_000, dtype="float64").sum())]


def test_pin_setting_and_requires_override(project, build_env, sklearn_version):
    model, _ = make_pipeline(seed=5)
    major, minor = (int(x) for x in sklearn_version.split(".")[:2])
    p = project(
        hook='pin = "minor"',
        models="""
churn = "artifacts/churn.joblib"

[tool.hatch.build.hooks.modelpack.models.other]
path = "artifacts/other.pkl"
requires = ["scikit-learn>=1.5", "numpy"]
""",
        extra="",
    )
    # Two models need a default.
    text = (
        (p.root / "pyproject.toml")
        .read_text()
        .replace('churn = "artifacts/churn.joblib"', 'churn = { path = "artifacts/churn.joblib", default = true }')
    )
    (p.root / "pyproject.toml").write_text(text)
    save_model(model, p.root / "artifacts" / "churn.joblib")
    save_model(model, p.root / "artifacts" / "other.pkl", how="pickle")
    p.build(build_env, "--wheel")
    reqs = requires_dist(wheel_metadata(p.wheel()))
    assert f"scikit-learn<{major}.{minor + 1},>={sklearn_version}" in reqs
    assert "scikit-learn>=1.5" in reqs
    with zipfile.ZipFile(p.wheel()) as zf:
        manifest = json.loads(zf.read("churn_model/_modelpack.json"))
    assert manifest["models"]["other"]["requires"] == ["numpy", "scikit-learn>=1.5"]
    assert manifest["models"]["churn"]["version_checks"][0]["clauses"] == [
        ["<", f"{major}.{minor + 1}"],
        [">=", sklearn_version],
    ]


def test_static_dependencies_still_reach_the_wheel_with_a_warning(project, build_env):
    model, _ = make_pipeline(seed=6)
    p = project(dynamic=False, deps='"pandas>=2"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    out = p.build(build_env, "--wheel")
    reqs = requires_dist(wheel_metadata(p.wheel()))
    assert "pandas>=2" in reqs and any(r.startswith("scikit-learn==") for r in reqs)
    assert 'dynamic = ["dependencies"]' in out.stdout + out.stderr


def test_gitignored_artifacts_travel_through_the_sdist(project, build_env, venv):
    model, _ = make_pipeline(seed=7)
    p = project()
    save_model(model, p.root / "artifacts" / "churn.joblib")
    p.write(".gitignore", "artifacts/\ndist/\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    run([*git, "init", "-q"], cwd=p.root)
    run([*git, "add", "."], cwd=p.root)
    run([*git, "commit", "-qm", "init"], cwd=p.root)
    commit = run(["git", "rev-parse", "HEAD"], cwd=p.root).stdout.strip()
    p.build(build_env)  # sdist, then the wheel from the unpacked sdist (no .git there)
    sdist = next((p.root / "dist").glob("*.tar.gz"))
    with tarfile.open(sdist) as tf:
        names = tf.getnames()
    assert "churn_model-1.2.0/artifacts/churn.joblib" in names
    with zipfile.ZipFile(p.wheel()) as zf:
        manifest = json.loads(zf.read("churn_model/_modelpack.json"))
        assert zf.read("churn_model/_models/churn/churn.joblib") == (p.root / "artifacts" / "churn.joblib").read_bytes()
    assert manifest["source"] == {"commit": commit, "dirty": False}
    assert "build_time" not in manifest


@pytest.mark.parametrize("own_package", [False, True])
def test_pip_install_editable_reads_the_source_tree(project, build_env, venv, own_package):
    model, X = make_pipeline(seed=8)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    if own_package:
        p.write("churn_model/__init__.py", "from ._modelpack import load, path, IntegrityError\n")
    before = p.tree()
    env = venv(seed_pip=True)
    env.pip("install", "-e", str(p.root), env=build_env)
    assert p.tree() == before, "an editable install must not write into the source tree"
    X.to_csv(p.root.parent / "X.csv", index=False)
    got = env.json(
        f"""
        import json
        import pandas as pd
        import churn_model
        print(json.dumps([str(churn_model.path()), churn_model.load().predict_proba(pd.read_csv({str(p.root.parent / "X.csv")!r}))[:, 1].tolist()]))
    """,
        cwd=p.root.parent,
    )
    assert got[0] == str((p.root / "artifacts" / "churn.joblib").resolve())
    assert got[1] == pytest.approx(model.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    # Retraining changes the artifact: the next load says exactly what to do.
    retrained, _ = make_pipeline(seed=9)
    save_model(retrained, p.root / "artifacts" / "churn.joblib")
    out = env.py(
        """
        import churn_model
        try:
            churn_model.load()
        except churn_model.IntegrityError as exc:
            print(exc)
    """,
        cwd=p.root.parent,
    ).stdout
    assert "pip install -e ." in out


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_installing_the_source_tree_pulls_the_inferred_requirements(
    project, build_env, venv, installer, sklearn_version
):
    model, _ = make_pipeline(seed=10)
    p = project()
    save_model(model, p.root / "artifacts" / "churn.joblib")
    if installer == "uv":
        env = venv()
        env.install(str(p.root), env=build_env)
    else:
        env = venv(seed_pip=True)
        env.pip("install", str(p.root), env=build_env)
    got = env.json("""
        import json, importlib.metadata as md
        import churn_model
        churn_model.load()
        print(json.dumps([md.version("scikit-learn"), md.requires("churn-model")]))
    """)
    assert got[0] == sklearn_version
    assert f"scikit-learn=={sklearn_version}" in got[1]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, {"noise": zipfile.ZIP_STORED, "zeros": zipfile.ZIP_DEFLATED}),
        ("store", {"noise": zipfile.ZIP_STORED, "zeros": zipfile.ZIP_STORED}),
        ("deflate", {"noise": zipfile.ZIP_DEFLATED, "zeros": zipfile.ZIP_DEFLATED}),
    ],
)
def test_compression_is_chosen_per_artifact(project, build_env, venv, setting, expected):
    """`auto` stores what deflate cannot shrink (random bytes) and deflates the rest; both load."""
    import numpy as np

    hook = f'compression = "{setting}"' if setting else ""
    p = project(
        hook=hook,
        models='noise = { path = "artifacts/noise.joblib", default = true }\nzeros = "artifacts/zeros.joblib"',
    )
    noise = np.random.default_rng(0).integers(0, 256, 3_200_000, dtype=np.uint8)
    save_model({"w": noise}, p.root / "artifacts" / "noise.joblib")
    save_model({"w": np.zeros(400_000)}, p.root / "artifacts" / "zeros.joblib")
    p.build(build_env, "--wheel")
    with zipfile.ZipFile(p.wheel()) as zf:
        assert zf.testzip() is None
        got = {n: zf.getinfo(f"churn_model/_models/{n}/{n}.joblib").compress_type for n in ("noise", "zeros")}
        assert zf.namelist()[-1].endswith(".dist-info/RECORD")
    assert got == expected
    env = venv()
    env.install(str(p.wheel()))
    sums = env.json("""
        import json, churn_model
        churn_model.verify()
        print(json.dumps([float(churn_model.load()["w"].sum()), float(churn_model.load("zeros")["w"].sum())]))
    """)
    assert sums == [float(noise.sum()), 0.0]


def test_an_artifact_inside_the_package_directory_is_warned_about(project, build_env):
    model, _ = make_pipeline(seed=12)
    p = project(models='churn = "churn_model/model.joblib"')
    p.write("churn_model/__init__.py", "from ._modelpack import load\n")
    save_model(model, p.root / "churn_model" / "model.joblib")
    out = p.build(build_env, "--wheel")
    assert "churn_model/model.joblib lies inside the package directory churn_model/" in out.stdout + out.stderr
    names = wheel_names(p.wheel())
    assert "churn_model/_models/churn/model.joblib" in names and "churn_model/model.joblib" in names
