"""Ordinary models the exact allowlist must admit (and the package-name rules), each loaded back
through the restricted unpickler with only the recorded globals and compared with the original."""

from __future__ import annotations

import functools
import os
import pathlib
import pickle
import sys
import textwrap
import types
import zoneinfo

import joblib
import numpy as np
import pandas as pd
import pytest
from _restricted import load_restricted, scan_and_check
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from hatch_modelpack.formats.joblib import JoblibFormat

N = 40
Y = np.arange(N) % 2


def frame(strings: str | None = None) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "num": np.linspace(0, 1, N),
            "text": [f"s{i % 3}" for i in range(N)],
            "cat": pd.Categorical([f"c{i % 4}" for i in range(N)]),
            "when": pd.date_range("2024-01-01", periods=N, freq="h", tz="Europe/Paris"),
        }
    )
    return df.astype({"text": pd.StringDtype(strings)}) if strings else df


def roundtrip(tmp_path, obj, kind="joblib", **kw):
    path = tmp_path / f"m.{kind}"
    if kind == "joblib":
        joblib.dump(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=5))
    result, findings = scan_and_check(path, kind, **kw)
    assert findings == [], [f"{f.name}: {f.reason}" for f in findings]
    return load_restricted(path, result.global_names(), kind), result


def _hgb():
    df = frame()[["num", "cat"]]
    return HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=5).fit(df, Y), df


@pytest.mark.parametrize("kind", ["joblib", "pickle"])
def test_hist_gradient_boosting_with_categorical_features(tmp_path, kind):
    model, X = _hgb()
    loaded, result = roundtrip(tmp_path, model, kind)
    assert "functools.partial" in result.global_names()  # scikit-learn stores partial(check_array, ...)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_column_transformer_on_dataframes_with_tz_aware_columns(tmp_path):
    df = frame()
    ct = ColumnTransformer([("n", StandardScaler(), ["num"]), ("c", OneHotEncoder(), ["text", "cat"])])
    model = make_pipeline(ct, LogisticRegression()).fit(df, Y)
    loaded, _ = roundtrip(tmp_path, {"model": model, "sample": df})
    pd.testing.assert_frame_equal(loaded["sample"], df)
    np.testing.assert_array_equal(loaded["model"].predict_proba(df), model.predict_proba(df))
    zone, result = roundtrip(tmp_path, zoneinfo.ZoneInfo("Europe/Paris"))
    assert zone is zoneinfo.ZoneInfo("Europe/Paris")
    assert "zoneinfo.ZoneInfo._unpickle" in result.global_names()


def test_pandas_string_columns_python_storage(tmp_path):
    df = frame("python")
    loaded, _ = roundtrip(tmp_path, df)
    pd.testing.assert_frame_equal(loaded, df)


@pytest.mark.slow
def test_pandas_string_columns_pyarrow_storage_require_pyarrow(tmp_path):
    """pyarrow stays out of the suite's interpreter (it would change pandas' default string storage for
    every other test), so this case runs in a venv of its own that adds it."""
    from conftest import REPO, UV, run

    venv = tmp_path / "venv"
    run([UV, "venv", "--quiet", "--system-site-packages", "--python", sys.executable, str(venv)])
    run([UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "pyarrow"])
    code = "import pathlib, sys; from test_allowlist_cases import pyarrow_case; pyarrow_case(pathlib.Path(sys.argv[1]))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    run([str(venv / "bin" / "python"), "-c", code, str(tmp_path)], env=env)


def pyarrow_case(tmp_path: pathlib.Path) -> None:
    import pyarrow  # noqa: F401  (the point of the case: fail loudly if it is missing)

    df = frame("pyarrow")
    loaded, result = roundtrip(tmp_path, df)
    pd.testing.assert_frame_equal(loaded, df)
    assert any(g.module.startswith("pyarrow") for g in result.globals)
    joblib.dump(df, tmp_path / "f.joblib")
    assert "pyarrow" in JoblibFormat().inspect(tmp_path / "f.joblib", "f").requires


def test_function_transformers_with_partial_and_ufuncs(tmp_path):
    X = np.linspace(-2, 2, 12).reshape(6, 2)
    models = [
        FunctionTransformer(functools.partial(np.clip, a_min=0, a_max=1)).fit(X),
        FunctionTransformer(np.log1p, inverse_func=np.expm1).fit(np.abs(X)),
    ]
    loaded, _ = roundtrip(tmp_path, models)
    np.testing.assert_array_equal(loaded[0].transform(X), models[0].transform(X))
    np.testing.assert_array_equal(loaded[1].transform(np.abs(X)), models[1].transform(np.abs(X)))


def test_arrays_generators_paths_and_namespaces(tmp_path):
    values = {
        "object": np.array(["a", None, 3], dtype=object),
        "masked": np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
        "datetime": np.array(["2024-01-01", "2024-06-01"], dtype="datetime64[ns]"),
        "strings": np.array(["x", "yy", "zzz"], dtype=np.dtypes.StringDType()),
        "structured": np.array([(1, 2.0)], dtype="i4,f8"),
        "rs": np.random.RandomState(1),
        "gen": np.random.default_rng(2),
        "path": pathlib.PurePosixPath("/srv/models/a"),
        "local_path": pathlib.Path("relative/b"),
        "ns": types.SimpleNamespace(threshold=0.5, names=["a"]),
    }
    for kind in ("joblib", "pickle"):
        loaded, _ = roundtrip(tmp_path, values, kind)
        np.testing.assert_array_equal(loaded["object"], values["object"])
        assert loaded["masked"].mask.tolist() == [False, True, False]
        np.testing.assert_array_equal(loaded["datetime"], values["datetime"])
        assert loaded["strings"].tolist() == ["x", "yy", "zzz"]
        assert loaded["rs"].randint(1000) == np.random.RandomState(1).randint(1000)
        assert loaded["gen"].integers(1000) == np.random.default_rng(2).integers(1000)
        assert loaded["path"] == values["path"] and loaded["local_path"] == values["local_path"]
        assert loaded["ns"] == values["ns"]


def test_statsmodels_results(tmp_path):
    import statsmodels.api as sm

    rng = np.random.RandomState(0)
    X = sm.add_constant(rng.normal(size=(50, 2)))
    y = X @ np.array([1.0, 2.0, -1.0]) + rng.normal(size=50)
    res = sm.OLS(y, X).fit()
    loaded, _ = roundtrip(tmp_path, res)
    np.testing.assert_allclose(loaded.predict(X), res.predict(X))


@pytest.fixture
def own_package(tmp_path, monkeypatch):
    """A project with a package ``churn_model`` whose source defines, imports and lambda-binds names."""
    pkg = tmp_path / "proj" / "src" / "churn_model"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "features.py").write_text(
        textwrap.dedent(
            """
            from os import system
            import numpy as np
            from sklearn.base import BaseEstimator, TransformerMixin

            class Ratios(BaseEstimator, TransformerMixin):
                def fit(self, X, y=None):
                    return self
                def transform(self, X):
                    return X[:, :1] / (X[:, 1:2] + 1)

            def double(X):
                return X * 2

            halve = lambda X: X / 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(pkg.parent))
    for mod in [m for m in sys.modules if m.startswith("churn_model")]:
        monkeypatch.delitem(sys.modules, mod)
    import churn_model.features as features

    return tmp_path / "proj", features


def test_custom_classes_and_functions_defined_in_the_package(tmp_path, own_package):
    root, features = own_package
    X = np.arange(12.0).reshape(6, 2)
    model = make_pipeline(features.Ratios(), FunctionTransformer(features.double), LogisticRegression()).fit(X, Y[:6])
    loaded, _ = roundtrip(tmp_path, model, root=root)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_lambda_in_the_package_is_refused_with_the_fix(tmp_path, own_package):
    root, _features = own_package
    path = tmp_path / "m.pkl"
    # pickle.dump cannot write a lambda by name (load() could not import it); a stream can still name it
    path.write_bytes(b"\x80\x02cchurn_model.features\nhalve\n.")
    _, findings = scan_and_check(path, "pickle", root=root)
    (finding,) = findings
    assert finding.name == "churn_model.features.halve" and "define it with def" in finding.reason
    assert not finding.overridable


def test_an_imported_name_is_not_the_packages_own(tmp_path, own_package):
    root, _ = own_package
    path = tmp_path / "m.pkl"
    path.write_bytes(b"cchurn_model.features\nsystem\n(S'echo'\ntR.")
    _, findings = scan_and_check(path, "pickle", root=root)
    (finding,) = findings
    assert finding.name == "churn_model.features.system" and not finding.overridable


def test_mmap_mode_goes_through_the_restricted_unpickler(tmp_path):
    values = {"big": np.arange(1000.0), "names": np.array(["a", "b"], dtype=object)}
    path = tmp_path / "m.joblib"
    joblib.dump(values, path)
    result, findings = scan_and_check(path, "joblib")
    assert findings == []
    loaded = load_restricted(path, result.global_names(), "joblib", mmap_mode="r")
    assert isinstance(loaded["big"], np.memmap) and loaded["big"][-1] == 999.0
    assert loaded["names"].tolist() == ["a", "b"]
    with pytest.raises(Exception, match=r"numpy\.ndarray"):
        load_restricted(path, [n for n in result.global_names() if n != "numpy.ndarray"], "joblib", mmap_mode="r")
