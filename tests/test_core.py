"""The core promise: a model file in, a wheel out that installs, verifies and loads anywhere."""

from __future__ import annotations

import json

import pytest
from conftest import make_pipeline, requires_dist, save_model, wheel_metadata, wheel_names

pytestmark = pytest.mark.slow


def test_python_m_build_installs_and_predicts(project, build_env, venv, sklearn_version):
    model, X = make_pipeline(seed=1)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    before = p.tree()
    p.build(build_env)
    wheel = p.wheel()
    assert wheel.name == "churn_model-1.2.0-py3-none-any.whl"
    assert {"churn_model/__init__.py", "churn_model/_modelpack.py", "churn_model/_modelpack.json", "churn_model/_models/churn/churn.joblib"} <= set(wheel_names(wheel))
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
