"""skops, ONNX and raw artifacts: packaged, installed into fresh venvs, loaded, compared with the original."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_pipeline, requires_dist, tamper, wheel_metadata, wheel_names

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats.onnx import OnnxFormat
from hatch_modelpack.formats.skops import SkopsFormat

SLOW = pytest.mark.slow  # the tests that build wheels and make venvs


def _manifest(wheel: Path, package: str) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read(f"{package}/_modelpack.json"))


def _save_skops(model, path: Path) -> Path:
    import skops.io as sio

    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def _save_onnx(model, X, path: Path) -> Path:
    from skl2onnx import to_onnx

    onx = to_onnx(model, X.to_numpy(np.float32)[:1], options={"zipmap": False})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


# -- skops -------------------------------------------------------------------------------------


@SLOW
def test_skops_pipeline_ships_with_its_reviewed_trusted_list(project, build_env, venv, sklearn_version):
    import skops

    model, X = make_pipeline(seed=7, kind="forest")
    p = project(models='churn = "artifacts/churn.skops"', deps='"pandas"')
    _save_skops(model, p.root / "artifacts" / "churn.skops")
    p.build(build_env)
    wheel = p.wheel()
    assert "churn_model/_models/churn/churn.skops" in wheel_names(wheel)
    reqs = requires_dist(wheel_metadata(wheel))
    assert f"scikit-learn=={sklearn_version}" in reqs
    assert f"skops>={skops.__version__}" in reqs
    entry = _manifest(wheel, "churn_model")["models"]["churn"]
    assert entry["format"] == "skops"
    trusted = entry["details"]["trusted"]
    # The forest's Tree is not trusted by skops by default: the build's review is what lets it load.
    assert "sklearn.tree._tree.Tree" in trusted and "sklearn.pipeline.Pipeline" in trusted
    assert entry["details"]["input_schema"] == {"features": ["a", "b", "c"], "n_features": 3}
    assert entry["frameworks"] == {"scikit-learn": sklearn_version, "skops": skops.__version__}

    env = venv()
    env.install(str(wheel))
    X.to_csv(p.root / "X.csv", index=False)
    got = env.json(f"""
        import json, sys
        import churn_model
        imported = [m for m in ("skops", "sklearn") if m in sys.modules]
        import pandas as pd
        import skops.io
        pred = churn_model.load().predict_proba(pd.read_csv({str(p.root / "X.csv")!r}))[:, 1].tolist()
        try:
            skops.io.load(churn_model.path())
            plain = "loaded"
        except skops.io.exceptions.UntrustedTypesFoundException as exc:
            plain = str(exc)
        print(json.dumps({{"imported": imported, "pred": pred, "plain": plain}}))
    """)
    assert got["imported"] == []
    assert got["pred"] == pytest.approx(model.predict_proba(X)[:, 1].tolist(), abs=1e-12)
    assert "sklearn.tree._tree.Tree" in got["plain"]  # without the recorded list skops refuses the file


@SLOW
def test_skops_types_outside_the_policy_are_refused_until_allowed(project, build_env):
    import textwrap

    from sklearn.pipeline import make_pipeline as mp
    from sklearn.preprocessing import FunctionTransformer

    _, X = make_pipeline(seed=8)
    model = mp(FunctionTransformer(textwrap.dedent, validate=False)).fit(X)  # an odd but real function reference
    p = project(models='churn = "artifacts/churn.skops"')
    _save_skops(model, p.root / "artifacts" / "churn.skops")
    proc = p.build(build_env, "--wheel", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "textwrap.dedent" in out and "allow-globals" in out and "Traceback" not in out

    # A function that runs commands cannot be allowed at all.
    import os

    model = mp(FunctionTransformer(os.system, validate=False))
    _save_skops(model, p.root / "artifacts" / "churn.skops")
    proc = p.build(build_env, "--wheel", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{os.system.__module__}.system" in out and "commands" in out


# -- ONNX --------------------------------------------------------------------------------------


@SLOW
def test_onnx_model_loads_with_onnxruntime_and_matches_sklearn(project, build_env, venv):
    model, X = make_pipeline(seed=9)
    p = project(models='churn = "artifacts/churn.onnx"')
    _save_onnx(model, X, p.root / "artifacts" / "churn.onnx")
    p.build(build_env)
    wheel = p.wheel()
    assert requires_dist(wheel_metadata(wheel)) == ["onnxruntime"]
    entry = _manifest(wheel, "churn_model")["models"]["churn"]
    details = entry["details"]
    assert entry["format"] == "onnx" and "globals" not in entry
    assert details["producer"].startswith("skl2onnx ")
    assert details["opset_import"]["ai.onnx.ml"] >= 1 and details["opset_import"]["ai.onnx"] >= 9
    assert details["inputs"] == [{"name": "X", "kind": "tensor", "dtype": "float32", "shape": [None, 3]}]
    assert [(o["name"], o["dtype"], o["shape"]) for o in details["outputs"]] == [
        ("label", "int64", [None]),
        ("probabilities", "float32", [None, 2]),
    ]
    assert details["input_schema"] == {"inputs": [{"name": "X", "dtype": "float32", "shape": [None, 3]}]}

    env = venv()
    env.install(str(wheel))
    np.save(p.root / "X.npy", X.to_numpy(np.float32))
    got = env.json(f"""
        import json, sys
        import numpy as np
        import churn_model
        assert "onnxruntime" not in sys.modules
        sess = churn_model.load(providers=["CPUExecutionProvider"])
        label, proba = sess.run(None, {{"X": np.load({str(p.root / "X.npy")!r})}})
        print(json.dumps({{"type": type(sess).__name__, "providers": sess.get_providers(),
                          "label": label.tolist(), "proba": proba[:, 1].tolist()}}))
    """)
    assert got["type"] == "InferenceSession" and got["providers"] == ["CPUExecutionProvider"]
    assert got["label"] == model.predict(X).tolist()
    assert got["proba"] == pytest.approx(model.predict_proba(X)[:, 1].tolist(), abs=1e-5)


# -- raw ---------------------------------------------------------------------------------------


@SLOW
def test_raw_file_and_directory_come_back_as_verified_paths(project, build_env, venv):
    p = project(
        models="""
[tool.hatch.build.hooks.modelpack.models.churn]
path = "artifacts/churn.joblib"
default = true

[tool.hatch.build.hooks.modelpack.models.tokenizer]
path = "artifacts/tokenizer.json"
format = "raw"
description = "BPE tokenizer"

[tool.hatch.build.hooks.modelpack.models.vocab]
path = "artifacts/vocab"
format = "raw"
""",
        deps='"pandas"',
    )
    from conftest import save_model

    model, _ = make_pipeline(seed=10)
    save_model(model, p.root / "artifacts" / "churn.joblib")
    tokenizer = {"model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2}}, "added_tokens": []}
    p.write("artifacts/tokenizer.json", json.dumps(tokenizer))
    p.write("artifacts/vocab/words.txt", "alpha\nbeta\n")
    p.write("artifacts/vocab/lookup/table.csv", "k,v\n1,2\n")
    p.build(build_env)
    wheel = p.wheel()
    names = set(wheel_names(wheel))
    assert {
        "churn_model/_models/tokenizer/tokenizer.json",
        "churn_model/_models/vocab/vocab/words.txt",
        "churn_model/_models/vocab/vocab/lookup/table.csv",
    } <= names
    models = _manifest(wheel, "churn_model")["models"]
    assert models["tokenizer"]["kind"] == "file" and models["vocab"]["kind"] == "directory"
    assert models["tokenizer"]["requires"] == [] and models["vocab"]["requires"] == []
    assert sorted(f["path"] for f in models["vocab"]["files"]) == ["vocab/lookup/table.csv", "vocab/words.txt"]

    env = venv()
    env.install(str(wheel))
    got = env.json("""
        import json, sys
        import churn_model
        tok = churn_model.load("tokenizer")
        vocab = churn_model.load("vocab")
        churn_model.verify()
        print(json.dumps({"tok": json.loads(tok.read_text()), "same": tok == churn_model.path("tokenizer"),
                          "words": (vocab / "words.txt").read_text(), "table": (vocab / "lookup" / "table.csv").read_text(),
                          "sklearn": "sklearn" in sys.modules}))
    """)
    assert got == {"tok": tokenizer, "same": True, "words": "alpha\nbeta\n", "table": "k,v\n1,2\n", "sklearn": False}

    installed = env.site_packages() / "churn_model" / "_models" / "vocab" / "vocab" / "words.txt"
    tamper(installed, b"gamma\n")
    proc = env.py("import churn_model; churn_model.load('vocab')", check=False)
    assert proc.returncode != 0 and "IntegrityError" in proc.stderr and "words.txt" in proc.stderr


@SLOW
def test_directory_without_format_suggests_raw(project, build_env):
    p = project(models='vocab = "artifacts/vocab"')
    p.write("artifacts/vocab/words.txt", "alpha\n")
    proc = p.build(build_env, "--wheel", check=False)
    assert proc.returncode != 0
    assert 'format = \\"raw\\"' in proc.stdout + proc.stderr or 'format = "raw"' in proc.stdout + proc.stderr


# -- static reading, without a build -----------------------------------------------------------


@pytest.mark.parametrize(
    "data", [b"\x08\x0a\x12\x04abc", b"\x08\x0a\x3a\xff\xff\xff\x0f", b"\x08\x0a" + b"\x3a\x05" + b"\x0a\x03"]
)
def test_onnx_truncated_or_garbage_fails_with_a_clear_error(tmp_path, data):
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(ArtifactError, match=r"m\.onnx"):
        OnnxFormat().inspect(path, "m.onnx")


def test_onnx_sniff_rejects_other_formats(tmp_path):
    import pickle

    fmt = OnnxFormat()
    for i, data in enumerate([pickle.dumps({"a": 1}), b"PK\x03\x04rest", b"\x08" + b"\xff" * 12, b"hello world"]):
        path = tmp_path / f"x{i}"
        path.write_bytes(data)
        assert not fmt.sniff(path, data[:64])


def test_onnx_external_data_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, 2), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, tmp_path / "inline.onnx")  # before: saving as external data changes `model`
    onnx.save_model(
        model,
        tmp_path / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        size_threshold=0,
    )
    with pytest.raises(ArtifactError, match="external data"):
        OnnxFormat().inspect(tmp_path / "m.onnx", "m.onnx")
    details = OnnxFormat().inspect(tmp_path / "inline.onnx", "inline.onnx").details
    assert details["inputs"] == [{"name": "X", "kind": "tensor", "dtype": "float32", "shape": ["N", 3]}]
    assert details["input_schema"]["inputs"][0]["shape"] == [None, 3]


def test_skops_schema_problems_are_reported(tmp_path):
    fmt = SkopsFormat()
    path = tmp_path / "m.skops"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("other.json", "{}")
    assert not fmt.sniff(path, path.read_bytes()[:64])
    with pytest.raises(ArtifactError, match=r"without the schema\.json"):
        fmt.inspect(path, "m.skops")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("schema.json", "[" * 100000 + "]" * 100000)
    with pytest.raises(ArtifactError, match=r"m\.skops"):
        fmt.inspect(path, "m.skops")
    # A type named by a bound method or a bit generator is listed the way skops reviews it.
    schema = {
        "__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "protocol": 2, "_skops_version": "0.16.0",
        "content": [
            {"__class__": "Widget", "__module__": "acme.tools", "__loader__": "MethodNode",
             "content": {"func": "run", "obj": {"__class__": "Widget", "__module__": "acme.tools", "__loader__": "ObjectNode"}}},
            {"__class__": "Generator", "__module__": "numpy.random._generator", "__loader__": "RandomGeneratorNode",
             "content": {"bit_generator": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                                           "content": {"bit_generator": {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": "\"seed\""}}},
                         "seed_seq": {}}},
        ],
    }  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
    found = {str(g) for g in fmt.inspect(path, "m.skops").globals}
    assert found == {
        "builtins.list",
        "acme.tools.Widget",
        "acme.tools.Widget.run",
        "numpy.random._generator.Generator",
        "numpy.random.seed",
        "builtins.dict",
    }


def test_onnx_element_types_match_onnx_itself():
    """Every element type onnx defines reads as its own name, not ``typeN`` (38 of onnx's backend test models use 24-26)."""
    from onnx import TensorProto

    from hatch_modelpack.formats.onnx import ELEM_TYPES

    for name, number in TensorProto.DataType.items():
        if number:  # 0 is UNDEFINED
            assert ELEM_TYPES.get(number, "").replace("float", "FLOAT").upper() == {
                "DOUBLE": "FLOAT64",
                "FLOAT": "FLOAT32",
            }.get(name, name), (number, name)


@pytest.mark.parametrize("elem", [24, 25, 26])
def test_onnx_new_element_types_are_named_in_the_schema(tmp_path, elem):
    from onnx import TensorProto, helper, save

    names = {24: "float8e8m0", 25: "uint2", 26: "int2"}
    x = helper.make_tensor_value_info("x", elem, [1, 4])
    y = helper.make_tensor_value_info("y", elem, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    path = tmp_path / "m.onnx"
    save(model, str(path))
    details = OnnxFormat().inspect(path, "m.onnx").details
    assert TensorProto.DataType.Name(elem)
    assert details["inputs"][0]["dtype"] == names[elem] and details["outputs"][0]["dtype"] == names[elem]
