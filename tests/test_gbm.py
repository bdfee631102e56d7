"""Gradient-boosted trees: XGBoost (JSON, UBJSON), LightGBM (text) and CatBoost (cbm), native and pickled.

The fast tests drive the static readers (UBJSON, LightGBM text, CatBoost's FlatBuffers core) with
real files made by the libraries, hand-made documents, truncations, garbage and hypothesis, and the
generated loader's functions in-process. The slow ones build one wheel holding every native format
(with smoke checks) and one holding scikit-learn pipelines around the three wrappers with
``python -m build``, install each into a fresh virtual environment that sees this interpreter's
libraries (so the wheels' requirements are checked against them, not downloaded again), load, and
compare predictions with the originals.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import struct
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import UV, Project, Venv, requires_dist, run, wheel_metadata, wheel_names
from hypothesis import given, settings
from hypothesis import strategies as st

from hatch_modelpack import ubjson
from hatch_modelpack.config import load_config
from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats.boosters import apply_to_inspection
from hatch_modelpack.formats.catboost import CatBoostFormat, read_model_bytes
from hatch_modelpack.formats.lightgbm import LightGBMFormat
from hatch_modelpack.formats.registry import detect
from hatch_modelpack.formats.xgboost import XGBoostFormat, version_from_raw
from hatch_modelpack.manifest import analyse, hash_file
from hatch_modelpack.runtime import _modelpack_check, _modelpack_formats, _modelpack_integrity, _modelpack_versions
from hatch_modelpack.scanning import Call, Global, Opaque, SDict

# -- a tiny UBJSON encoder, for hand-made documents ---------------------------------------------


def ubj(value: Any, typed: bool = False) -> bytes:
    """Encode as XGBoost does (big-endian; ``typed`` writes float lists as ``[$d#`` arrays)."""
    if value is None:
        return b"Z"
    if value is True:
        return b"T"
    if value is False:
        return b"F"
    if isinstance(value, int):
        for marker, fmt in ((b"i", ">b"), (b"l", ">i"), (b"L", ">q")):
            with contextlib.suppress(struct.error):
                return marker + struct.pack(fmt, value)
        raise ValueError(value)
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return b"S" + ubj(len(data)) + data
    if isinstance(value, list):
        if typed and value and all(isinstance(v, float) for v in value):
            return b"[$d#" + ubj(len(value)) + b"".join(struct.pack(">f", v) for v in value)
        return b"[" + b"".join(ubj(v, typed) for v in value) + b"]"
    if isinstance(value, dict):
        out = b"{"
        for k, v in value.items():
            key = k.encode()
            out += ubj(len(key))[0:] + key + ubj(v, typed)
        return out + b"}"
    raise TypeError(type(value))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_ubjson_round_trips_what_it_reads(value):
    assert ubjson.loads(ubj(value)) == value


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_ubjson_garbage_raises_only_its_own_error(data):
    with contextlib.suppress(ubjson.UBJError):
        ubjson.loads(data)


def test_ubjson_typed_arrays_are_skipped_and_every_truncation_is_refused():
    doc = {"learner": {"trees": [{"w": [0.5, 1.5, 2.5]}, {"w": [1.0]}], "name": "x"}, "version": [3, 2, 0]}
    data = ubj(doc, typed=True)
    shape = {"version": ubjson.ALL, "learner": {"trees": ubjson.COUNT, "name": ubjson.ALL}}
    assert ubjson.loads(data, shape) == {"learner": {"trees": 2, "name": "x"}, "version": [3, 2, 0]}
    assert ubjson.loads(data)["learner"]["trees"][0]["w"] == [0.5, 1.5, 2.5]
    for cut in range(len(data)):
        with pytest.raises(ubjson.UBJError):
            ubjson.loads(data[:cut], shape)
    with pytest.raises(ubjson.UBJError, match="follow the end"):
        ubjson.loads(data + b"Z")
    with pytest.raises(ubjson.UBJError, match="past the end"):  # a huge typed array in a small file
        ubjson.loads(b"[$d#L" + struct.pack(">q", 1 << 40))
    with pytest.raises(ubjson.UBJError, match="empty values"):  # a count bomb of zero-byte elements
        ubjson.loads(b"[$Z#L" + struct.pack(">q", 1 << 40))
    with pytest.raises(ubjson.UBJError, match="nested too deeply"):
        ubjson.loads(b"[" * 500)


# -- real models, made once per session ---------------------------------------------------------


@pytest.fixture(scope="session")
def gbm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Small seeded models of each library, saved natively and as joblib'd pipelines, with predictions."""
    pytest.importorskip("xgboost")
    pytest.importorskip("lightgbm")
    pytest.importorskip("catboost")
    import catboost
    import joblib
    import lightgbm
    import numpy as np
    import pandas as pd
    import xgboost
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    out = tmp_path_factory.mktemp("gbm")
    rng = np.random.default_rng(13)
    n = 300
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 5, n).astype(float)})
    y = ((X["a"] + 0.5 * X["b"] + rng.normal(scale=0.3, size=n)) > 0).astype(int)
    Xc = X.assign(city=rng.choice(["oslo", "rome", "lima"], n))
    yc = ((Xc["a"] + (Xc["city"] == "rome")) > 0.4).astype(int)
    X_test, Xc_test = X.head(40), Xc.head(40)

    xgb_clf = xgboost.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    xgb_clf.save_model(out / "xgb_clf.json")
    xgb_reg = xgboost.train({"objective": "reg:squarederror", "seed": 0}, xgboost.DMatrix(X, label=X["a"] * 2.0), 6)
    xgb_reg.save_model(out / "xgb_reg.ubj")
    lgb = lightgbm.LGBMClassifier(n_estimators=7, random_state=0, verbose=-1).fit(X, y)
    lgb.booster_.save_model(out / "lgb.txt")
    cb_clf = catboost.CatBoostClassifier(iterations=9, depth=3, random_seed=0, verbose=0, allow_writing_files=False)
    cb_clf.fit(Xc, yc, cat_features=["city"])
    cb_clf.save_model(out / "cb_clf.cbm")
    cb_reg = catboost.CatBoostRegressor(iterations=6, depth=3, random_seed=0, verbose=0, allow_writing_files=False).fit(
        X, X["b"]
    )
    cb_reg.save_model(out / "cb_reg.cbm")

    pipes = {
        "xgb": Pipeline(
            [("scale", StandardScaler()), ("model", xgboost.XGBClassifier(n_estimators=5, max_depth=2, random_state=0))]
        ),
        "lgb": Pipeline(
            [
                ("scale", StandardScaler()),
                ("model", lightgbm.LGBMClassifier(n_estimators=5, random_state=0, verbose=-1)),
            ]
        ),
        "cb": Pipeline(
            [
                ("scale", StandardScaler()),
                (
                    "model",
                    catboost.CatBoostClassifier(iterations=5, random_seed=0, verbose=0, allow_writing_files=False),
                ),
            ]
        ),
    }
    pipe_proba = {}
    for name, pipe in pipes.items():
        pipe.fit(X, y)
        joblib.dump(pipe, out / f"pipe_{name}.joblib")
        pipe_proba[name] = pipe.predict_proba(X_test).tolist()

    X_test.to_csv(out / "X.csv", index=False)
    Xc_test.to_csv(out / "Xc.csv", index=False)
    np.save(out / "X.npy", X_test.to_numpy())
    preds = {
        "xgb_clf": xgb_clf.get_booster().predict(xgboost.DMatrix(X_test)).tolist(),
        "xgb_reg": xgb_reg.predict(xgboost.DMatrix(X_test)).tolist(),
        "lgb": lgb.booster_.predict(X_test).tolist(),
        "cb_clf": cb_clf.predict_proba(Xc_test).tolist(),
        "cb_reg": cb_reg.predict(X_test).tolist(),
    }
    np.save(out / "xgb_reg_expected.npy", np.asarray(preds["xgb_reg"]))
    np.save(out / "lgb_expected.npy", np.asarray(preds["lgb"]))
    np.save(out / "cb_clf_expected.npy", cb_clf.predict(Xc_test))
    return {
        "dir": out,
        "preds": preds,
        "pipe_proba": pipe_proba,
        "versions": {d: importlib_metadata.version(d) for d in ("xgboost", "lightgbm", "catboost", "scikit-learn")},
    }


def _flat(values: list[Any]) -> list[float]:
    return [x for v in values for x in (_flat(v) if isinstance(v, list) else [v])]


def _floor(version: str) -> str:
    return ".".join(version.split(".")[:2])


# -- xgboost ------------------------------------------------------------------------------------


def test_xgboost_json_and_ubj_read_statically(gbm):
    v = gbm["versions"]["xgboost"]
    clf = detect(gbm["dir"] / "xgb_clf.json", None, "xgb_clf.json", "models.m")
    reg = detect(gbm["dir"] / "xgb_reg.ubj", None, "xgb_reg.ubj", "models.m")
    assert clf.name == reg.name == "xgboost"
    got = clf.inspect(gbm["dir"] / "xgb_clf.json", "xgb_clf.json")
    assert (got.requires, got.frameworks) == ([f"xgboost>={_floor(v)}"], {"xgboost": v})
    d = got.details
    assert (d["container"], d["objective"], d["trees"], d["rounds"], d["n_features"]) == (
        "json",
        "binary:logistic",
        8,
        8,
        3,
    )
    assert d["scikit_learn"]["_estimator_type"] == "classifier"
    assert d["input_schema"] == {
        "n_features": 3,
        "features": ["a", "b", "c"],
        "feature_types": ["float", "float", "float"],
    }
    d = reg.inspect(gbm["dir"] / "xgb_reg.ubj", "xgb_reg.ubj").details
    assert (d["container"], d["objective"], d["trees"], d["rounds"]) == ("ubj", "reg:squarederror", 6, 6)
    assert "scikit_learn" not in d and d["input_schema"]["features"] == ["a", "b", "c"]


def test_xgboost_refuses_json_that_is_not_a_model_and_damaged_files(gbm, tmp_path):
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"name": "not a model", "learner": 1}))
    with pytest.raises(ArtifactError, match=r"config\.json.*\.json suffix of the xgboost format.*none of the formats"):
        detect(other, None, "config.json", "models.m")
    lookalike = tmp_path / "lookalike.json"
    lookalike.write_text(json.dumps({"version": [1, 2], "data": []}))
    fmt = detect(lookalike, None, "lookalike.json", "models.m")
    with pytest.raises(ArtifactError, match=r"not an XGBoost model.*`learner` object.*save_model"):
        fmt.inspect(lookalike, "lookalike.json")
    data = (gbm["dir"] / "xgb_reg.ubj").read_bytes()
    for cut in (100, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.ubj"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match=r"damaged UBJSON.*truncated.*save_model"):
            XGBoostFormat().inspect(bad, bad.name)
    text = (gbm["dir"] / "xgb_clf.json").read_bytes()
    bad = tmp_path / "cut.json"
    bad.write_bytes(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match="not valid JSON"):
        XGBoostFormat().inspect(bad, "cut.json")
    rng = random.Random(7)
    for i in range(150):  # flipped bytes after a valid head: an ArtifactError or a result, never a crash
        junk = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            junk[rng.randrange(40, len(junk))] = rng.randrange(256)
        path = tmp_path / f"junk{i}.ubj"
        path.write_bytes(bytes(junk))
        with contextlib.suppress(ArtifactError):
            XGBoostFormat().inspect(path, path.name)


# -- lightgbm -----------------------------------------------------------------------------------


def test_lightgbm_text_read_statically(gbm):
    path = gbm["dir"] / "lgb.txt"
    got = detect(path, None, "lgb.txt", "models.m").inspect(path, "lgb.txt")
    assert got.requires == ["lightgbm>=4.0.0"] and got.frameworks == {}
    d = got.details
    assert (d["format_version"], d["trees"], d["rounds"], d["objective"]) == ("v4", 7, 7, "binary sigmoid:1")
    assert d["input_schema"] == {"n_features": 3, "features": ["a", "b", "c"], "feature_types": ["numerical"] * 3}
    assert d["pandas_categorical"] in ([], None) and "model format v4" in d["requirement_source"]


def test_lightgbm_pandas_categorical_is_recorded_and_loaded(tmp_path):
    import lightgbm
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.normal(size=200), "city": pd.Categorical(rng.choice(["oslo", "rome", "lima"], 200))})
    y = ((X["a"] + (X["city"] == "rome")) > 0.5).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=4, verbose=-1).fit(X, y)
    model.booster_.save_model(tmp_path / "cat.txt")
    entry = _entry(tmp_path / "cat.txt")
    assert entry["details"]["pandas_categorical"] == [["lima", "oslo", "rome"]]
    assert entry["details"]["input_schema"]["feature_types"] == ["numerical", "categorical"]
    _modelpack_integrity._verify_files(tmp_path, entry["files"], {})
    booster = _modelpack_formats._LOADERS["lightgbm"](tmp_path / "cat.txt", entry, {})
    assert booster.predict(X.head(20)).tolist() == pytest.approx(model.booster_.predict(X.head(20)).tolist(), abs=1e-12)


def test_lightgbm_cut_off_tree_section_is_refused(gbm, tmp_path):
    text = (gbm["dir"] / "lgb.txt").read_bytes()
    end = text.index(b"end of trees")
    cases = {
        "cut": text[: text.index(b"Tree=3") + 40],
        "tree missing, end kept": text[: text.index(b"Tree=5")] + text[end:],
        "cut inside a tree, end kept": text[: text.index(b"Tree=2") + 60] + b"\n\n" + text[text.index(b"Tree=3") :],
    }
    for what, data in cases.items():
        path = tmp_path / "bad.txt"
        path.write_bytes(data)
        with pytest.raises(
            ArtifactError, match=r"bad\.txt \(m\): is not a complete LightGBM model.*save_model"
        ) as info:
            LightGBMFormat().inspect(path, "bad.txt (m)")
        assert "\n" not in str(info.value), what
    for cut in range(5, end, 97):  # any cut before the end of the trees
        path = tmp_path / "cut.txt"
        path.write_bytes(text[:cut])
        with pytest.raises(ArtifactError):
            LightGBMFormat().inspect(path, "cut.txt")
    other = tmp_path / "notes.txt"
    other.write_text("tree\nthis is a note about trees\n")
    with pytest.raises(ArtifactError, match=r"\.txt suffix of the lightgbm format"):
        detect(other, None, "notes.txt", "models.m")


# -- catboost -----------------------------------------------------------------------------------


def test_catboost_cbm_read_statically(gbm):
    v = gbm["versions"]["catboost"]
    path = gbm["dir"] / "cb_clf.cbm"
    got = detect(path, None, "cb_clf.cbm", "models.m").inspect(path, "cb_clf.cbm")
    assert (got.requires, got.frameworks) == ([f"catboost>={v}"], {"catboost": v})
    d = got.details
    assert (d["catboost_version"], d["model_class"], d["loss_function"], d["trees"]) == (v, "classifier", "Logloss", 9)
    assert d["class_params"]["class_names"] == [0, 1]
    assert d["input_schema"] == {
        "n_features": 4,
        "features": ["a", "b", "c", "city"],
        "feature_types": ["numerical", "numerical", "numerical", "categorical"],
    }
    assert d["parts"]  # the CTR tables of the categorical feature follow the core
    d = CatBoostFormat().inspect(gbm["dir"] / "cb_reg.cbm", "cb_reg.cbm").details
    assert (d["model_class"], d["loss_function"]) == ("regressor", "RMSE") and "class_params" not in d


def test_catboost_random_bytes_and_damage_are_refused(gbm, tmp_path):
    rng = random.Random(11)
    noise = tmp_path / "noise.cbm"
    noise.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    with pytest.raises(ArtifactError, match=r"noise\.cbm.*\.cbm suffix of the catboost format"):
        detect(noise, None, "noise.cbm", "models.m")
    data = (gbm["dir"] / "cb_clf.cbm").read_bytes()
    for cut in (8, 9, 100, len(data) // 2, len(data) - 1):
        path = tmp_path / "cut.cbm"
        path.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match=r"not a readable CatBoost model.*save_model"):
            CatBoostFormat().inspect(path, "cut.cbm")
    for i in range(200):  # CBM1 and a plausible size, then noise; or flipped bytes in a real core
        if i % 2:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(8, 600)))
            blob = b"CBM1" + struct.pack("<I", len(body)) + body
        else:
            junk = bytearray(data)
            for _ in range(rng.randrange(1, 6)):
                junk[rng.randrange(8, len(junk))] = rng.randrange(256)
            blob = bytes(junk)
        path = tmp_path / f"j{i}.cbm"
        path.write_bytes(blob)
        with contextlib.suppress(ArtifactError):
            CatBoostFormat().inspect(path, path.name)


@given(st.binary(min_size=0, max_size=300))
@settings(max_examples=300, deadline=None)
def test_catboost_core_reader_never_crashes(body):
    try:
        read_model_bytes(b"CBM1" + struct.pack("<I", len(body)) + body)
    except Exception as exc:  # only the reader's own error may escape
        assert type(exc).__name__ == "CbmError", repr(exc)


# -- pickles of the scikit-learn wrappers -------------------------------------------------------


def _analyse(root: Path, models: dict[str, Any]) -> dict[str, Any]:
    pack = load_config(root, {"models": models}, "gbm-test")
    return {m.name: m for m in analyse(pack, hash_files=False)}


def test_pickled_wrappers_are_bounded_by_their_embedded_models(gbm):
    v = gbm["versions"]
    models = {f"pipe_{n}": {"path": f"pipe_{n}.joblib", "default": n == "xgb"} for n in ("xgb", "lgb", "cb")}
    got = _analyse(gbm["dir"], models)
    assert f"xgboost=={v['xgboost']}" in got["pipe_xgb"].requires
    assert got["pipe_xgb"].inspection.frameworks["xgboost"] == v["xgboost"]
    assert got["pipe_xgb"].inspection.details["boosters"] == [
        {"class": "xgboost.core.Booster", "version": v["xgboost"]}
    ]
    assert "lightgbm>=4.0.0" in got["pipe_lgb"].requires
    assert "model format v4" in got["pipe_lgb"].inspection.details["lightgbm_requirement_source"]
    assert f"catboost=={v['catboost']}" in got["pipe_cb"].requires
    for packed in got.values():
        assert f"scikit-learn=={v['scikit-learn']}" in packed.requires
        checks = {c["distribution"]: c for c in packed.version_checks}
        for dist in ("xgboost", "catboost"):
            if dist in packed.inspection.frameworks:
                assert checks[dist]["requirement"] == f"{dist}=={v[dist]}"


def test_xgboost_version_from_pickled_raw_bytes(gbm):
    import xgboost

    booster = xgboost.Booster(model_file=str(gbm["dir"] / "xgb_reg.ubj"))
    state = booster.__getstate__()
    assert version_from_raw(state["handle"]) == gbm["versions"]["xgboost"]
    assert version_from_raw(bytearray(b"{Lgarbage")) is None
    assert version_from_raw(b"") is None


def test_boosters_too_large_for_the_scan_are_reported_not_guessed(gbm):
    """The scanner keeps byte strings up to 1 MiB; a larger embedded model leaves the version unread."""
    import xgboost

    raw = bytes(xgboost.Booster(model_file=str(gbm["dir"] / "xgb_reg.ubj")).__getstate__()["handle"])
    big = Call(
        Global("xgboost.core", "Booster"),
        (),
        SDict([("handle", Call(Global("builtins", "bytearray"), (Opaque("5000000 bytes"),)))]),
    )
    requires, frameworks, details = {"xgboost"}, {}, {}
    apply_to_inspection([big], requires, frameworks, details, "big.joblib")
    assert (requires, frameworks) == ({"xgboost"}, {})
    assert "larger than the scanner keeps" in details["boosters"][0]["unread"]

    @dataclass(frozen=True)
    class OpaqueWithHead(Opaque):  # what a scanner that keeps a prefix of large values would hand over
        head: bytes = b""

    prefixed = Call(
        Global("xgboost.core", "Booster"),
        (),
        SDict([("handle", Call(Global("builtins", "bytearray"), (OpaqueWithHead("5000000 bytes", raw[:4096]),)))]),
    )
    text = (gbm["dir"] / "lgb.txt").read_text()
    lgb = Call(
        Global("lightgbm.basic", "Booster"), (), SDict([("_handle", OpaqueWithHead("9 MB", text[:200].encode()))])
    )
    requires, frameworks, details = {"xgboost", "lightgbm"}, {}, {}
    apply_to_inspection(SDict([("a", [prefixed, (lgb,)])]), requires, frameworks, details, "big.joblib")
    assert frameworks == {"xgboost": gbm["versions"]["xgboost"]} and requires == {"xgboost", "lightgbm>=4.0.0"}
    assert version_from_raw(raw[:4096]) == gbm["versions"]["xgboost"] and version_from_raw(raw[:50]) is None


def test_several_xgboost_releases_in_one_pickle_are_refused():
    def booster(version: list[int]) -> Call:
        raw = ubj({"Config": {"version": version}, "Model": {}})
        return Call(
            Global("xgboost.core", "Booster"), (), SDict([("handle", Call(Global("builtins", "bytearray"), (raw,)))])
        )

    with pytest.raises(ArtifactError, match=r"several xgboost releases \(2\.1\.0, 3\.2\.0\)"):
        apply_to_inspection([booster([3, 2, 0]), booster([2, 1, 0])], {"xgboost"}, {}, {}, "two.joblib")


# -- the generated loader, in-process -----------------------------------------------------------


def _entry(path: Path) -> dict[str, Any]:
    fmt = detect(path, None, path.name, "models.m")
    size, sha = hash_file(path)
    entry = {"name": path.stem, "format": fmt.name, "details": fmt.inspect(path, path.name).details}
    entry["files"] = [{"path": path.name, "size": size, "sha256": sha}]
    return entry


def test_loader_functions_load_each_format_and_check_it(gbm):
    import numpy as np

    d = gbm["dir"]
    cases = {  # model -> (check input, expected output, what the check compares)
        "xgb_reg.ubj": ("X.npy", "xgb_reg_expected.npy", "xgb_reg"),
        "lgb.txt": ("X.csv", "lgb_expected.npy", "lgb"),
        "cb_clf.cbm": ("Xc.csv", "cb_clf_expected.npy", None),
    }
    for name, (example, expected, pred) in cases.items():
        entry = _entry(d / name)
        _modelpack_integrity._verify_files(d, entry["files"], {})
        model = _modelpack_formats._LOADERS[entry["format"]](d / name, entry, {})
        entry["check"] = {
            "input": {"path": str(d / example)},
            "expected": {"path": str(d / expected)},
            "tolerance": 1e-6,
        }
        result = _modelpack_check._run_check(model, entry, Path("/"))
        assert result["compared"] and result["shape"] == [40], (name, result)
        if pred:
            assert result["max_abs_diff"] < 1e-6
    entry = _entry(d / "cb_reg.cbm")
    _modelpack_integrity._verify_files(d, entry["files"], {})
    assert type(_modelpack_formats._LOADERS["catboost"](d / "cb_reg.cbm", entry, {})).__name__ == "CatBoostRegressor"
    entry = _entry(d / "xgb_clf.json")
    _modelpack_integrity._verify_files(d, entry["files"], {})
    booster = _modelpack_formats._LOADERS["xgboost"](d / "xgb_clf.json", entry, {})
    X = np.load(d / "X.npy")
    assert booster.predict(_modelpack_check._xgboost_input(X, entry)).tolist() == pytest.approx(
        gbm["preds"]["xgb_clf"], abs=1e-6
    )


def test_version_check_accepts_xgboost_cpu():
    assert _modelpack_versions._SAME_PACKAGE["xgboost"] == ("xgboost-cpu",)


# -- real builds ----------------------------------------------------------------------------------

NATIVE = {  # model name -> (file in the gbm fixture, check table or None)
    "xgb_clf": ("xgb_clf.json", None),
    "xgb_reg": ("xgb_reg.ubj", {"input": "X.npy", "expected": "xgb_reg_expected.npy"}),
    "lgb": ("lgb.txt", {"input": "X.csv", "expected": "lgb_expected.npy"}),
    "cb_clf": ("cb_clf.cbm", {"input": "Xc.csv", "expected": "cb_clf_expected.npy"}),
    "cb_reg": ("cb_reg.cbm", None),
}


def gbm_project(
    root: Path, name: str, gbm: dict[str, Any], models: dict[str, tuple[str, dict[str, str] | None]], default: str
) -> Project:
    p = Project(root, name)
    tables = []
    for model, (src, check) in models.items():
        (root / "artifacts").mkdir(parents=True, exist_ok=True)
        shutil.copy2(gbm["dir"] / src, root / "artifacts" / src)
        table = f'[tool.hatch.build.hooks.modelpack.models.{model}]\npath = "artifacts/{src}"\n'
        if model == default:
            table += "default = true\n"
        if check:
            (root / "checks").mkdir(exist_ok=True)
            for f in check.values():
                shutil.copy2(gbm["dir"] / f, root / "checks" / f)
            table += f'[tool.hatch.build.hooks.modelpack.models.{model}.check]\ninput = "checks/{check["input"]}"\nexpected = "checks/{check["expected"]}"\n'
        tables.append(table)
    p.write(
        "pyproject.toml",
        '[build-system]\nrequires = ["hatchling", "hatch-modelpack"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "1.0.0"\nrequires-python = ">=3.10"\ndynamic = ["dependencies"]\n\n'
        "[tool.hatch.metadata.hooks.modelpack]\n\n[tool.hatch.build.hooks.modelpack]\n\n" + "\n".join(tables),
    )
    return p


@pytest.fixture(scope="session")
def gbm_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv that sees this interpreter's xgboost/lightgbm/catboost: pip checks the wheels'
    Requires-Dist against them instead of downloading the libraries (and xgboost's CUDA NCCL) again."""
    path = tmp_path_factory.mktemp("gbm_venv") / "venv"
    run([UV, "venv", "--quiet", "--seed", "--system-site-packages", "--python", sys.executable, str(path)])
    return Venv(path)


def _satisfied(env: Venv, requirements: list[str]) -> None:
    """Every requirement is met by what the venv imports (pip already refused otherwise; this says which)."""
    got = env.json(
        f"""
        import json
        from importlib import metadata
        from packaging.requirements import Requirement
        out = {{}}
        for text in {requirements!r}:
            r = Requirement(text)
            v = metadata.version(r.name)
            out[text] = [v, r.specifier.contains(v, prereleases=True)]
        print(json.dumps(out))
        """
    )
    assert all(ok for _, ok in got.values()), got


PREDICT = """
import json, sys
import {package} as pkg
imported = sorted(m for m in ("xgboost", "lightgbm", "catboost", "sklearn", "numpy", "pandas") if m in sys.modules)
import numpy as np, pandas as pd, xgboost
X = pd.read_csv({X!r}); Xc = pd.read_csv({Xc!r})
preds = {{}}
for name in pkg.models():
    m = pkg.load(name)
    if name.startswith("xgb"):
        preds[name] = m.predict(xgboost.DMatrix(X)).tolist()
    elif name == "cb_clf":
        preds[name] = m.predict_proba(Xc).tolist()
    elif name.startswith("pipe_"):
        preds[name] = m.predict_proba(X).tolist()
    else:
        preds[name] = np.asarray(m.predict(X)).tolist()
checks = {{n: pkg.check(n)["compared"] for n in pkg.models() if "check" in pkg.metadata(n)}}
print(json.dumps({{"imported": imported, "preds": preds, "checks": checks, "types": {{n: type(pkg.load(n)).__name__ for n in pkg.models()}},
    "meta": {{n: pkg.metadata(n) for n in pkg.models()}}}}))
"""


@pytest.mark.slow
def test_native_formats_in_one_wheel(tmp_path, build_env, gbm, gbm_venv):
    v = gbm["versions"]
    p = gbm_project(tmp_path / "gbm-native", "gbm-native", gbm, NATIVE, default="xgb_clf")
    proc = p.build(build_env)
    out = proc.stdout + proc.stderr
    for name in ("xgb_reg", "lgb", "cb_clf"):
        assert f"smoke check of `{name}`" in out and "matches the expected output" in out, out
    wheel = p.wheel()
    reqs = requires_dist(wheel_metadata(wheel))
    assert reqs == [f"catboost>={v['catboost']}", "lightgbm>=4.0.0", f"xgboost>={_floor(v['xgboost'])}"]
    names = set(wheel_names(wheel))
    assert {f"gbm_native/_models/{m}/{src}" for m, (src, _) in NATIVE.items()} <= names
    with zipfile.ZipFile(wheel) as zf:
        manifest = json.loads(zf.read("gbm_native/_modelpack.json"))
    for name, (src, _) in NATIVE.items():
        assert zf.getinfo(f"gbm_native/_models/{name}/{src}").file_size == (gbm["dir"] / src).stat().st_size
    entries = manifest["models"]
    assert [c["distribution"] for c in entries["xgb_reg"]["version_checks"]] == ["xgboost"]
    assert entries["lgb"]["version_checks"] == []  # LightGBM's file records no library version
    print("\nMANIFEST ENTRIES\n" + json.dumps({n: entries[n] for n in ("xgb_reg", "lgb", "cb_clf")}, indent=2))

    gbm_venv.pip("install", "--quiet", str(wheel))
    _satisfied(gbm_venv, reqs)
    got = gbm_venv.json(
        PREDICT.format(package="gbm_native", X=str(gbm["dir"] / "X.csv"), Xc=str(gbm["dir"] / "Xc.csv"))
    )
    assert got["imported"] == []
    assert got["types"] == {
        "xgb_clf": "Booster",
        "xgb_reg": "Booster",
        "lgb": "Booster",
        "cb_clf": "CatBoostClassifier",
        "cb_reg": "CatBoostRegressor",
    }
    for name in NATIVE:
        assert _flat(got["preds"][name]) == pytest.approx(_flat(gbm["preds"][name]), abs=1e-6), name
    assert got["checks"] == {"xgb_reg": True, "lgb": True, "cb_clf": True}


@pytest.mark.slow
def test_pipelines_with_wrappers_round_trip_with_pinned_versions(tmp_path, build_env, gbm, gbm_venv):
    v = gbm["versions"]
    models = {f"pipe_{n}": (f"pipe_{n}.joblib", None) for n in ("xgb", "lgb", "cb")}
    p = gbm_project(tmp_path / "gbm-pipes", "gbm-pipes", gbm, models, default="pipe_xgb")
    p.build(build_env)
    wheel = p.wheel()
    reqs = requires_dist(wheel_metadata(wheel))
    for req in (
        f"xgboost=={v['xgboost']}",
        f"catboost=={v['catboost']}",
        "lightgbm>=4.0.0",
        f"scikit-learn=={v['scikit-learn']}",
        "joblib",
    ):
        assert req in reqs, reqs
    gbm_venv.pip("install", "--quiet", str(wheel))
    _satisfied(gbm_venv, reqs)
    got = gbm_venv.json(PREDICT.format(package="gbm_pipes", X=str(gbm["dir"] / "X.csv"), Xc=str(gbm["dir"] / "Xc.csv")))
    assert got["imported"] == []
    for n in ("xgb", "lgb", "cb"):
        assert _flat(got["preds"][f"pipe_{n}"]) == pytest.approx(_flat(gbm["pipe_proba"][n]), abs=1e-9), n
        assert got["types"][f"pipe_{n}"] == "Pipeline"
    assert got["meta"]["pipe_xgb"]["frameworks"]["xgboost"] == v["xgboost"]


BAD = {  # file name -> (bytes maker, fragments of the one-paragraph message)
    "settings.json": (
        lambda g: json.dumps({"threshold": 0.5}).encode(),
        ("artifacts/settings.json", "models.m", ".json suffix of the xgboost format", "set `"),
    ),
    "model.ubj": (
        lambda g: (g["dir"] / "xgb_reg.ubj").read_bytes()[:-300],
        ("artifacts/model.ubj", "models.m", "damaged UBJSON", "save_model"),
    ),
    "model.txt": (
        lambda g: (g["dir"] / "lgb.txt").read_bytes()[:2000],
        ("artifacts/model.txt", "models.m", "cut off", "save_model"),
    ),
    "model.cbm": (
        lambda g: random.Random(3).randbytes(5000),
        ("artifacts/model.cbm", "models.m", ".cbm suffix of the catboost format", "set `"),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["settings.json", "model.cbm"])
def test_bad_native_inputs_fail_the_build_cleanly(bad, tmp_path, build_env, gbm):
    make, expect = BAD[bad]
    root = tmp_path / "gbm-bad"
    p = Project(root, "gbm-bad")
    p.write(
        "pyproject.toml",
        f'[build-system]\nrequires = ["hatchling", "hatch-modelpack"]\nbuild-backend = "hatchling.build"\n\n[project]\nname = "gbm-bad"\nversion = "1.0.0"\n\n[tool.hatch.build.hooks.modelpack.models]\nm = "artifacts/{bad}"\n',
    )
    (root / "artifacts").mkdir()
    (root / "artifacts" / bad).write_bytes(make(gbm))
    before = p.tree()
    proc = p.build(build_env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for fragment in expect:
        assert fragment in out, f"{fragment!r} not in:\n{out}"
    assert "Traceback" not in out, out
    assert not list(root.glob("dist/*.whl"))
    assert p.tree() - before <= {"dist"}


@pytest.mark.parametrize("bad", list(BAD))
def test_bad_native_inputs_are_refused_in_process(bad, tmp_path, gbm):
    """The same four inputs through the build's analysis, without a build: one paragraph each."""
    make, expect = BAD[bad]
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / bad).write_bytes(make(gbm))
    with pytest.raises(ArtifactError) as info:
        _analyse(tmp_path, {"m": f"artifacts/{bad}"})
    message = str(info.value)
    assert "\n" not in message
    for fragment in expect:
        assert fragment in message, message


def test_readers_take_io_streams():
    """The UBJSON reader is streaming: it reads from any seekable binary file object."""
    data = ubj({"learner": {"x": [1.0, 2.0]}, "version": [1, 0]}, typed=True)
    assert ubjson.read_document(io.BytesIO(data), len(data), {"version": ubjson.ALL}) == {"version": [1, 0]}
