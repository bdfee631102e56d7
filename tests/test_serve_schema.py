"""The V2 description of manifest entries, and `modelpack serve` errors that need no MLServer (fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hatch_modelpack.serve.schema import describe


def test_estimator_fit_on_a_frame_lists_its_features() -> None:
    sig = describe({"format": "joblib", "details": {"input_schema": {"n_features": 2, "features": ["age", "plan"]}}})
    assert sig.kind == "estimator" and sig.features == ["age", "plan"]
    assert [t.as_metadata() for t in sig.inputs] == [
        {"name": "age", "datatype": "FP64", "shape": [-1], "parameters": {"dtype_recorded": False}},
        {"name": "plan", "datatype": "FP64", "shape": [-1], "parameters": {"dtype_recorded": False}},
    ]
    assert "age, plan" in sig.expected() and "[N, 2]" in sig.expected()


def test_estimator_fit_on_an_array_takes_one_tensor() -> None:
    sig = describe({"format": "skops", "details": {"input_schema": {"n_features": 3}}})
    assert [t.as_metadata()["shape"] for t in sig.inputs] == [[-1, 3]] and sig.expected() == "one [N, 3] tensor"


def test_onnx_inputs_and_tensor_outputs_by_name() -> None:
    details = {
        "input_schema": {"inputs": [{"name": "X", "dtype": "float32", "shape": [None, 4]}]},
        "outputs": [
            {"name": "label", "kind": "tensor", "dtype": "int64", "shape": ["N"]},
            {"name": "output_probability", "kind": "sequence", "elem": {"kind": "map"}},
        ],
    }
    sig = describe({"format": "onnx", "details": details})
    assert [t.as_metadata() for t in sig.inputs] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert [t.name for t in sig.outputs] == ["label"]  # a ZipMap sequence is no V2 tensor
    assert "X (FP32 [-1, 4])" in sig.expected()


def test_savedmodel_signature_and_keras_shapes() -> None:
    sm = describe(
        {
            "format": "savedmodel",
            "details": {
                "call_endpoint": "serve",
                "input_schema": {"inputs": [{"name": "features", "dtype": "float32", "shape": [None, 4]}]},
                "signatures": {
                    "serve": {"inputs": {}, "outputs": {"output_0": {"dtype": "float32", "shape": [None, 1]}}}
                },
            },
        }
    )
    assert [(t.name, t.datatype, t.shape) for t in sm.inputs] == [("features", "FP32", [-1, 4])]
    assert [(t.name, t.shape) for t in sm.outputs] == [("output_0", [-1, 1])]
    kr = describe({"format": "keras", "details": {"input_schema": {"inputs": [{"shape": [None, 3]}]}}})
    assert kr.kind == "tensors" and kr.inputs[0].shape == [-1, 3]


def test_raw_artifacts_are_not_servable() -> None:
    assert describe({"format": "raw"}).kind == "unsupported"


def test_serve_names_an_unknown_package(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hatch_modelpack.cli", "serve", "no-such-model", "--settings-only", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no installed model package named 'no-such-model'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()
