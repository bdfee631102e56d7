"""Derive hatch_modelpack/allowlist.json from the installed scientific stack (maintainer script).

    python tools/derive_allowlist.py [--check]

What goes in, and why (the README's security section describes the review around it):

- every class of ``sklearn.utils.all_estimators()`` (``call``: they are instantiated while unpickling);
- every global the fitted estimators' pickles, and a corpus of ordinary data (DataFrames with string,
  categorical and tz-aware columns, masked/object/datetime/StringDType arrays, random generators,
  sparse matrices, paths, namespaces...), actually use, read with the scanner: nothing is unpickled.
  A function is admitted for the uses observed (``call``, ``value``, ``built``), a class for all three;
- callables a model stores and calls later on data (``value`` only): numpy ufuncs and a short list
  of numpy math functions, scikit-learn's metric and score functions;
- numpy 1.x spellings (``numpy.core.*``) of every ``numpy._core.*`` entry.

Left out, whatever the walk sees: ``sklearn.callback`` (its objects connect to addresses in their
state), scipy.stats distribution generators (``rv_generic.__setstate__`` runs ``exec`` on a string of
the state); both are listed under ``refused`` with the reason, so the build can say why. Entries whose
class defines ``__setstate__``/``__reduce__`` get a note listing that, for the reviewer.

``--check`` exits 1 when the derived list differs from the committed one (run it after upgrading a
library; review the diff, then run without ``--check`` to write it).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import io
import json
import pathlib
import pickle
import platform
import sys
import types
import warnings
from importlib import import_module, metadata
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

OUT = pathlib.Path(__file__).resolve().parent.parent / "hatch_modelpack" / "allowlist.json"
NEVER = ("sklearn.callback",)
NUMPY_VALUE_FUNCTIONS = (
    "clip", "mean", "median", "sum", "std", "var", "min", "max", "amin", "amax", "abs", "round", "around",
    "nanmean", "nanmedian", "nansum", "nanstd", "nanvar", "nanmin", "nanmax", "percentile", "quantile",
    "nanpercentile", "nanquantile", "prod", "cumsum", "cumprod", "average", "ptp", "argmax", "argmin",
    "sort", "unique", "where", "asarray", "array", "ravel", "squeeze", "transpose", "stack", "hstack",
    "vstack", "column_stack", "concatenate", "any", "all", "isnan", "isfinite", "nan_to_num", "log1p",
)  # fmt: skip
BUILTIN_TYPES = (
    "object", "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
    "complex", "bool", "slice", "range",
)  # fmt: skip
#: The same classes under the module paths other Python versions pickle them with (3.13+: pathlib._local).
OTHER_SPELLINGS = {
    "pathlib:PosixPath": ("pathlib._local:PosixPath",),
    "pathlib:PurePosixPath": ("pathlib._local:PurePosixPath",),
    "pathlib:PureWindowsPath": ("pathlib._local:PureWindowsPath",),
}
VERSIONED = (
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "pyarrow",
    "joblib",
    "statsmodels",
    "xgboost",
    "lightgbm",
    "catboost",
)


def _dumps(obj: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def _corpus() -> list[tuple[str, Any]]:
    """Ordinary values a model's state holds, beyond what the estimators' own defaults produce."""

    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    n = 40
    frame = pd.DataFrame(
        {
            "num": np.linspace(0, 1, n),
            "text": [f"s{i % 3}" for i in range(n)],
            "cat": pd.Categorical([f"c{i % 4}" for i in range(n)]),
            "when": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"),
            "utc": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "flag": [bool(i % 2) for i in range(n)],
            "nullable": pd.array([i if i % 5 else None for i in range(n)], dtype="Int64"),
        }
    )
    y = np.arange(n) % 2
    ct = ColumnTransformer([("n", StandardScaler(), ["num"]), ("c", OneHotEncoder(), ["text", "cat"])])
    hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=5)
    values: list[tuple[str, Any]] = [
        ("frame", frame),
        (
            "frame_python_strings",
            [
                frame.astype({"text": pd.StringDtype("python")}),
                pd.Series(["a", None], dtype="string[python]"),
                pd.Series(["a", "b"], dtype=pd.StringDtype("python", na_value=np.nan)),
            ],
        ),
        ("frame_pyarrow_strings", frame.astype({"text": pd.StringDtype("pyarrow")}) if _has("pyarrow") else frame),
        ("column_transformer", make_pipeline(ct).fit(frame[["num", "text", "cat"]], y)),
        ("hgb_categorical", hgb.fit(frame[["num", "cat"]], y)),
        (
            "hgb_categorical_mask",
            HistGradientBoostingClassifier(categorical_features=[True, False], max_iter=5).fit(
                np.column_stack([y, np.linspace(0, 1, n)]), y
            ),
        ),
        ("function_partial", FunctionTransformer(functools.partial(np.clip, a_min=0, a_max=1)).fit(np.ones((3, 2)))),
        ("function_ufunc", FunctionTransformer(np.log1p, inverse_func=np.expm1).fit(np.ones((3, 2)))),
    ]
    values.extend(_corpus_data())
    values.extend(_statsmodels())
    values.extend(_boosters())
    return values


def _corpus_data() -> list[tuple[str, Any]]:
    """Plain values: arrays of every dtype family, generators, sparse matrices, stdlib and pandas scalars."""

    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    return [
        *_corpus_stdlib(),
        (
            "arrays",
            [
                np.array(["a", None], dtype=object),
                np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
                np.array(["2024-01-01"], dtype="datetime64[ns]"),
                np.array([1], dtype="timedelta64[s]"),
                np.array(["x", "yy"], dtype=np.dtypes.StringDType()),
                np.array([(1, 2.0)], dtype="i4,f8"),
                np.array(["ab"], dtype="U2"),
                np.float32(1),
                np.int64(2),
                np.bool_(True),
                np.complex128(1j),
            ],
        ),
        (
            "random",
            [
                np.random.RandomState(0),
                rng,
                np.random.Generator(np.random.MT19937(1)),
                np.random.Generator(np.random.Philox(1)),
                np.random.Generator(np.random.SFC64(1)),
                np.random.SeedSequence(3),
            ],
        ),
        (
            "sparse",
            [
                sp.csr_matrix(np.eye(3)),
                sp.csc_matrix(np.eye(3)),
                sp.coo_matrix(np.eye(3)),
                sp.lil_matrix(np.eye(3)),
                sp.dok_matrix(np.eye(3)),
                sp.bsr_matrix(np.eye(3)),
                sp.dia_matrix(np.eye(3)),
                sp.csr_array(np.eye(3)),
                sp.csc_array(np.eye(3)),
                sp.coo_array(np.eye(3)),
            ],
        ),
    ]


def _corpus_stdlib() -> list[tuple[str, Any]]:
    """Standard-library and pandas scalar values a model's attributes hold."""
    import collections
    import datetime
    import decimal
    import fractions
    import uuid
    import zoneinfo

    import pandas as pd

    return [
        (
            "stdlib",
            [
                pathlib.PurePosixPath("/a"),
                pathlib.PosixPath("/a"),
                pathlib.PureWindowsPath("c:/a"),
                types.SimpleNamespace(a=1),
                collections.OrderedDict(a=1),
                collections.defaultdict(list, a=[1]),
                collections.Counter("aab"),
                collections.deque([1]),
                datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
                datetime.date(2024, 1, 1),
                datetime.time(1),
                datetime.timedelta(1),
                decimal.Decimal("1.5"),
                fractions.Fraction(1, 3),
                uuid.UUID(int=1),
                {1, 2},
                frozenset({1}),
                slice(1, 2),
                range(3),
                bytearray(b"ab"),
                complex(1, 2),
                zoneinfo.ZoneInfo("Europe/Paris"),
                Ellipsis,
                NotImplemented,
            ],
        ),
        (
            "pandas_misc",
            [
                pd.Series([1.0, 2.0], index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])),
                pd.Timestamp("2024-01-01", tz="Europe/Paris"),
                pd.Timedelta("1D"),
                pd.Interval(0, 1),
                pd.Period("2024-01", freq="M"),
                pd.period_range("2024-01", periods=2, freq="M"),
                pd.interval_range(0, 2),
                pd.Series(pd.array([True, None], dtype="boolean")),
                pd.Series(pd.array([1.5, None], dtype="Float64")),
                pd.CategoricalIndex(["a", "b"]),
            ],
        ),
    ]


def _boosters() -> list[tuple[str, Any]]:
    """The scikit-learn wrappers of XGBoost, LightGBM and CatBoost, alone and in a pipeline, where installed."""
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    made: list[tuple[str, Any]] = []
    wrappers = {
        "xgboost": ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"),
        "lightgbm": ("LGBMClassifier", "LGBMRegressor", "LGBMRanker"),
        "catboost": ("CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker"),
    }
    quiet = {
        "xgboost": {"n_estimators": 3},
        "lightgbm": {"n_estimators": 3, "verbose": -1},
        "catboost": {"iterations": 3, "verbose": False},
    }
    for module, names in wrappers.items():
        if not _has(module):
            continue
        lib = import_module(module)
        for name in names:
            est = getattr(lib, name)(**quiet[module])
            if "Ranker" in name:
                fitted = (
                    est.fit(X, y, group=[30, 30])
                    if module != "catboost"
                    else est.fit(X, y, group_id=[0] * 30 + [1] * 30)
                )
            else:
                fitted = est.fit(X, y)
            made.append((f"{module}_{name}", fitted))
        made.append(
            (f"{module}_pipeline", make_pipeline(StandardScaler(), getattr(lib, names[0])(**quiet[module])).fit(X, y))
        )
    return made


def _statsmodels() -> list[tuple[str, Any]]:
    if not _has("statsmodels"):
        return []
    import numpy as np
    import statsmodels.api as sm

    rng = np.random.RandomState(0)
    X = sm.add_constant(rng.normal(size=(50, 2)))
    y = X @ np.array([1.0, 2.0, -1.0]) + rng.normal(size=50)
    yb = (y > 1).astype(float)
    return [
        ("statsmodels_ols", sm.OLS(y, X).fit()),
        ("statsmodels_logit", sm.Logit(yb, X).fit(disp=0)),
        ("statsmodels_glm", sm.GLM(yb, X, family=sm.families.Binomial()).fit()),
    ]


def _skops_uses(label: str, obj: Any) -> dict[Any, set[str]]:
    """The types a skops file of ``obj`` names (read from its schema.json, as the build does)."""
    import zipfile

    import skops.io

    from hatch_modelpack.formats.skops import SCHEMA, _types

    try:
        data = skops.io.dumps(obj)
    except Exception:
        return {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema = json.loads(zf.read(SCHEMA))
    return _types(schema, label)[0]


def _has(module: str) -> bool:
    try:
        import_module(module)
    except ImportError:
        return False
    return True


def _resolve(key: str) -> Any:
    module, _, qualname = key.partition(":")
    obj: Any = import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _note(obj: Any) -> str | None:
    """What a reviewer must look at: code that runs when an instance is unpickled."""
    if not inspect.isclass(obj):
        return None
    own = [m for m in ("__setstate__", "__reduce__", "__reduce_ex__", "__new__") if m in vars(obj)]
    return f"defines {', '.join(own)}: reviewed for code that runs on unpickling" if own else None


def _refused() -> dict[str, str]:
    import scipy.stats

    out: dict[str, str] = {}
    for name in dir(scipy.stats):
        obj = getattr(scipy.stats, name)
        if isinstance(obj, scipy.stats.rv_continuous | scipy.stats.rv_discrete):
            cls = type(obj)
            out[f"{cls.__module__}:{cls.__qualname__}"] = (
                "a scipy.stats distribution generator: its __setstate__ runs exec on a string of the pickled "
                "state. Store the distribution's name and parameters instead and build it in code"
            )
    for cls_name in ("rv_frozen", "rv_continuous_frozen", "rv_discrete_frozen"):
        out[f"scipy.stats._distn_infrastructure:{cls_name}"] = "holds a scipy.stats distribution generator (see above)"
    return out


def derive() -> dict[str, Any]:
    from fitted_estimators import fitted_estimators

    from hatch_modelpack.scanning import scan_bytes

    uses: dict[str, set[str]] = collections.defaultdict(set)
    failures = []

    def walk(label: str, obj: Any) -> None:
        streams = (
            (_dumps(obj), "joblib"),
            (pickle.dumps(obj, protocol=5), "pickle"),
            (pickle.dumps(obj, protocol=2), "pickle"),
        )
        for data, kind in streams:
            try:
                result = scan_bytes(data, kind, label)
            except Exception as exc:
                failures.append(f"{label} ({kind}): {exc}")
                continue
            for g, how in result.uses.items():
                uses[g.key] |= how
        for g, how in _skops_uses(label, obj).items():
            uses[g.key] |= how

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, est, _, err in fitted_estimators():
            if err is not None:
                failures.append(f"{name}: {err!r}")
                continue
            walk(name, est)
        for label, obj in _corpus():
            walk(label, obj)

    entries: dict[str, list[str]] = {}
    from sklearn.utils import all_estimators

    for _, cls in all_estimators():
        entries[f"{cls.__module__}:{cls.__qualname__}"] = ["built", "call", "value"]
    for key, how in uses.items():
        try:
            obj = _resolve(key)
        except (ImportError, AttributeError):
            obj = None
        full = ["built", "call", "value"] if inspect.isclass(obj) else sorted(how)
        entries[key] = sorted(set(entries.get(key, [])) | set(full))
    for name in BUILTIN_TYPES:  # what skops nodes and protocol 0-2 pickles name for plain data
        entries[f"builtins:{name}"] = ["built", "call", "value"]
    _add_values(entries)
    for key in [k for k in entries if k.startswith("numpy._core.")]:
        entries.setdefault("numpy.core." + key[len("numpy._core.") :], entries[key])
    for key, aliases in OTHER_SPELLINGS.items():  # where other Python versions pickle the same class
        for alias in aliases:
            if key in entries:
                entries.setdefault(alias, entries[key])
    refused = _refused()
    for key in list(entries):
        if key.startswith(NEVER) or key in refused:
            del entries[key]
    notes = {}
    for key in entries:
        try:
            note = _note(_resolve(key))
        except (ImportError, AttributeError):
            note = None
        if note:
            notes[key] = note
    notes["builtins:getattr"] = (
        "only as getattr(<allowlisted global>, '<literal name>') (how bound classmethods such as ZoneInfo._unpickle "
        "pickle); the scanner checks the full name, and the loader substitutes a getattr that resolves only recorded names"
    )
    return {
        "about": "Reviewed pickle globals hatch-modelpack admits; derived by tools/derive_allowlist.py. "
        "Keys are exact module:qualname pairs; uses: call (called or instantiated while unpickling), "
        "value (stored; the model may call it later on data), built (the object a call made is modified by BUILD/SETITEM).",
        "derived_from": _versions(),
        "failures": failures,
        "entries": dict(sorted(entries.items())),
        "notes": dict(sorted(notes.items())),
        "refused": dict(sorted(refused.items())),
    }


def _add_values(entries: dict[str, list[str]]) -> None:
    import numpy as np
    import sklearn.feature_selection
    import sklearn.metrics

    def add(key: str, how: str = "value") -> None:
        entries[key] = sorted(set(entries.get(key, [])) | {how})

    for name in dir(np):
        if isinstance(getattr(np, name), np.ufunc):
            add(f"numpy:{name}")
    for name in NUMPY_VALUE_FUNCTIONS:
        if hasattr(np, name):
            add(f"numpy:{name}")
    for module in (sklearn.metrics, sklearn.feature_selection):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and not name.startswith(("get_", "make_", "check_")):
                add(f"{obj.__module__}:{obj.__qualname__}")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the derived list differs from the committed one"
    )
    args = parser.parse_args()
    data = derive()
    text = json.dumps(data, indent=1, sort_keys=False) + "\n"
    if args.check:
        current = json.loads(OUT.read_text())
        same = current["entries"] == data["entries"] and current["refused"] == data["refused"]
        print("allowlist up to date" if same else "allowlist differs from the derived one: review and regenerate")
        return 0 if same else 1
    OUT.write_text(text)
    print(
        f"wrote {OUT}: {len(data['entries'])} entries, {len(data['refused'])} refused, {len(data['failures'])} failures"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
