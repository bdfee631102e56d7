"""Real builds: evasion artifacts fail `python -m build` cleanly; an installed wheel whose artifact and
manifest digests were swapped by a test-only helper (bypassing the scan) refuses to unpickle it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from conftest import save_model
from sklearn.ensemble import HistGradientBoostingClassifier
from test_evasion import _materialise

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", ["pandas_pipe", "dtype_flags_say_objects", "nested_protocol_0", "getattr_module"])
def test_evasion_artifacts_fail_the_build(case, project, build_env, tmp_path):
    path, marker, kind = _materialise(tmp_path, case)
    rel = f"artifacts/churn.{kind if kind == 'joblib' else 'pkl'}"
    p = project(models=f'churn = {{ path = "{rel}", format = "{kind}" }}')
    (p.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (p.root / rel).write_bytes(path.read_bytes())
    proc = p.build(build_env, "--wheel", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert rel in out and "models.churn" in out and "Traceback" not in out
    assert not list((p.root / "dist").glob("*.whl")) if (p.root / "dist").exists() else True
    assert not marker.exists()


def _swap_bypassing_the_scan(site, data: bytes) -> None:
    """Test-only: put ``data`` in place of the installed artifact and make the manifest's digest match,
    keeping the globals the build recorded (what a build fooled by a bypass would have shipped)."""
    pkg = site / "churn_model"
    manifest = json.loads((pkg / "_modelpack.json").read_text())
    entry = manifest["models"]["churn"]
    artifact = pkg / entry["path"]
    artifact.unlink()
    artifact.write_bytes(data)
    (f,) = entry["files"]
    f.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    f.pop("chunks", None)
    (pkg / "_modelpack.json").write_text(json.dumps(manifest))


def test_installed_wheel_loads_restricted_and_refuses_a_bypass(project, build_env, venv, tmp_path):
    n = 60
    X = pd.DataFrame({"num": np.linspace(0, 1, n), "cat": pd.Categorical([f"c{i % 3}" for i in range(n)])})
    y = np.arange(n) % 2
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=5).fit(X, y)
    p = project(deps='"pandas"')
    save_model(model, p.root / "artifacts" / "churn.joblib")
    p.build(build_env, "--wheel")
    env = venv()
    env.install(str(p.wheel()))
    X.to_pickle(tmp_path / "X.pkl")
    got = env.json(f"""
        import json, pandas as pd, churn_model
        X = pd.read_pickle({str(tmp_path / "X.pkl")!r})
        print(json.dumps({{"p": churn_model.load().predict_proba(X).tolist(), "g": churn_model.metadata()["globals"]}}))
    """)
    np.testing.assert_allclose(got["p"], model.predict_proba(X))
    assert "functools.partial" in got["g"]

    for case, expect in (("dtype_flags_say_objects", "hold objects"), ("pandas_pipe", "pandas.core.common.pipe")):
        evil, marker, _ = (
            _materialise(tmp_path / case, case) if (tmp_path / case).mkdir() is None else (None, None, None)
        )
        _swap_bypassing_the_scan(env.site_packages(), evil.read_bytes())
        got = env.json("""
            import json, churn_model
            try:
                churn_model.load()
            except churn_model.IntegrityError as exc:
                print(json.dumps({"error": str(exc)}))
            else:
                print(json.dumps({"error": None}))
        """)
        assert got["error"] and expect in got["error"] and "nothing" in got["error"].lower()
        assert not marker.exists()
