"""What a packaged model takes and gives, in Open Inference Protocol (V2) terms, from its manifest entry.

Read from the ``details`` the build recorded (``input_schema``, ONNX graph outputs, SavedModel
signatures), so ``GET /v2/models/NAME`` answers before the model is loaded and without its framework.
Standard library only: the settings writer uses it in environments without MLServer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Dtype names the build records (numpy, ONNX and TensorFlow spellings) -> V2 datatypes.
V2_DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float": "FP32",
    "float64": "FP64",
    "double": "FP64",
    "string": "BYTES",
    "str": "BYTES",
    "object": "BYTES",
    "bytes": "BYTES",
}

#: V2 datatype -> numpy dtype name used to decode a request's data.
NUMPY_DTYPES: dict[str, str] = {
    v2: np for np, v2 in V2_DATATYPES.items() if np not in ("float", "double", "str", "string", "bytes")
}
NUMPY_DTYPES["BYTES"] = "object"

#: Formats whose load() returns an object with ``predict`` taking a table or a 2-D array.
ESTIMATOR_FORMATS = frozenset({"joblib", "pickle", "skops", "xgboost", "lightgbm", "catboost"})
#: Formats whose inputs are named tensors recorded at build time.
NAMED_FORMATS = frozenset({"onnx", "savedmodel"})
#: Formats called with positional tensors.
TENSOR_FORMATS = frozenset({"keras", "torchscript", "pt2"})


@dataclass
class Tensor:
    """One V2 tensor description; shape uses -1 for a dimension of any size."""

    name: str
    datatype: str
    shape: list[int]
    recorded_dtype: bool = True

    def as_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
        if not self.recorded_dtype:
            out["parameters"] = {"dtype_recorded": False}
        return out

    def describe(self) -> str:
        return f"{self.name} ({self.datatype} {self.shape})"


@dataclass
class Signature:
    """How requests map onto one model: ``kind`` is estimator, named, tensors or unsupported."""

    kind: str
    platform: str
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    features: list[str] | None = None
    n_features: int | None = None

    def expected(self) -> str:
        """One sentence naming what a request must send, for 4xx messages."""
        if self.kind == "estimator":
            if self.features:
                cols = ", ".join(self.features)
                return (
                    f'one input per feature ({cols}; request parameter content_type "pd") '
                    f"or one [N, {len(self.features)}] tensor with the features in that order"
                )
            n = self.n_features if self.n_features is not None else "F"
            return f"one [N, {n}] tensor"
        if self.kind == "tensors" and len(self.inputs) <= 1:
            shape = self.inputs[0].shape if self.inputs else [-1, "..."]
            return f"one tensor of shape {shape} (-1: any size)"
        return "the inputs " + ", ".join(t.describe() for t in self.inputs) + " (by name; -1: any size)"


def _dims(shape: Any) -> list[int]:
    if not isinstance(shape, list):
        return [-1]
    return [d if isinstance(d, int) and not isinstance(d, bool) and d >= 0 else -1 for d in shape]


def _datatype(dtype: Any, default: str = "FP32") -> tuple[str, bool]:
    if isinstance(dtype, str) and dtype in V2_DATATYPES:
        return V2_DATATYPES[dtype], True
    return default, False


def describe(entry: dict[str, Any]) -> Signature:
    """The V2 signature of a manifest entry (``metadata(name)`` of an installed package)."""
    fmt = str(entry.get("format", ""))
    details = entry.get("details") or {}
    schema = details.get("input_schema") or {}
    if fmt in ESTIMATOR_FORMATS:
        features = schema.get("features")
        features = [str(f) for f in features] if isinstance(features, list) and features else None
        n = schema.get("n_features")
        n = n if isinstance(n, int) else (len(features) if features else None)
        recorded = schema.get("dtypes")
        dtypes: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        if features:
            inputs = []
            for f in features:
                dt, known = _datatype(dtypes.get(f), "FP64")
                inputs.append(Tensor(f, dt, [-1], known))
        else:
            inputs = [Tensor("input-0", "FP64", [-1, n if n is not None else -1], False)]
        outputs = [Tensor("predict", "FP64", [-1], False)]
        return Signature("estimator", fmt, inputs, outputs, features, n)
    if fmt in NAMED_FORMATS:
        inputs = []
        for i, spec in enumerate(schema.get("inputs") or []):
            dt, known = _datatype(spec.get("dtype"))
            inputs.append(Tensor(str(spec.get("name") or f"input-{i}"), dt, _dims(spec.get("shape")), known))
        outputs = []
        if fmt == "onnx":
            for spec in details.get("outputs") or []:
                if spec.get("kind", "tensor") == "tensor":  # sequences and maps (ZipMap) cannot be V2 tensors
                    dt, known = _datatype(spec.get("dtype"))
                    outputs.append(Tensor(str(spec["name"]), dt, _dims(spec.get("shape")), known))
        else:
            endpoint = (details.get("signatures") or {}).get(details.get("call_endpoint") or "") or {}
            for name, spec in sorted((endpoint.get("outputs") or {}).items()):
                dt, known = _datatype(spec.get("dtype"))
                outputs.append(Tensor(str(name), dt, _dims(spec.get("shape")), known))
        return Signature("named", fmt, inputs, outputs)
    if fmt in TENSOR_FORMATS:
        inputs = []
        for i, spec in enumerate(schema.get("inputs") or []):
            dt, known = _datatype(spec.get("dtype"))
            inputs.append(Tensor(str(spec.get("name") or f"input-{i}"), dt, _dims(spec.get("shape")), known))
        return Signature("tensors", fmt, inputs, [Tensor("predict", "FP32", [-1], False)])
    return Signature("unsupported", fmt)
