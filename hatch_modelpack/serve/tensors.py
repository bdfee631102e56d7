"""V2 tensors and numpy arrays: a request input decoded to the shape it declares, an output encoded back.

The Open Inference Protocol sends each tensor as a flat list with a datatype and a shape; these
functions check that the two agree, cast to what the manifest recorded, and raise
:class:`RequestError` (which the runtime turns into MLServer's HTTP 400) naming the input at fault.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from mlserver.types import MetadataTensor, RequestInput, ResponseOutput  # type: ignore[import-untyped,import-not-found,unused-ignore]

from hatch_modelpack.serve.schema import NUMPY_DTYPES, V2_DATATYPES, Tensor


class RequestError(ValueError):
    """The request does not fit the model; becomes an InferenceError (400) naming the expected inputs."""


def decode(ri: RequestInput) -> np.ndarray:
    """A request input as an array of its declared shape (BYTES -> object array of str)."""
    data = getattr(ri.data, "root", ri.data)
    datatype = ri.datatype.value if hasattr(ri.datatype, "value") else str(ri.datatype)
    shape = [int(d) for d in ri.shape]
    if any(d < 0 for d in shape):
        raise RequestError(f"input {ri.name!r} has a negative dimension in shape {shape}")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).ravel()
            arr = np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in flat], dtype=object)
        else:
            arr = np.asarray(data, dtype=NUMPY_DTYPES[datatype]).ravel()
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise RequestError(f"input {ri.name!r}: its data is not a regular {datatype} tensor ({exc})") from None
    if arr.size != math.prod(shape):
        raise RequestError(
            f"input {ri.name!r}: shape {shape} holds {math.prod(shape)} values, but {arr.size} were sent"
        )
    return arr.reshape(shape)


def fit(arr: np.ndarray, want: Tensor) -> np.ndarray:
    """Check an input against a recorded tensor (rank, fixed dimensions) and cast it to the recorded dtype."""
    shape = want.shape
    if len(shape) == 2 and shape[1] == 1 and arr.ndim == 1:
        arr = arr.reshape(-1, 1)  # one pandas-style column per graph input ([N] for [N, 1])
    if shape != [-1] and (
        arr.ndim != len(shape) or any(w not in (-1, g) for w, g in zip(shape, arr.shape, strict=True))
    ):
        raise RequestError(f"input {want.name!r} has shape {list(arr.shape)}, which does not fit {shape}")
    if want.recorded_dtype:
        np_dtype = NUMPY_DTYPES.get(want.datatype)
        if np_dtype == "object":
            return arr.astype(str).astype(object) if arr.dtype != object else arr
        try:
            return arr.astype(np_dtype)
        except (ValueError, TypeError) as exc:
            raise RequestError(f"input {want.name!r} cannot be read as {want.datatype} ({exc})") from None
    if arr.dtype == np.float64:
        return arr.astype(np.float32)  # Keras and torch models take float32 unless recorded otherwise
    return arr


def v2_datatype(dtype: np.dtype) -> str:
    if dtype.kind in "OUS":
        return "BYTES"
    return V2_DATATYPES.get(dtype.name, "FP64")


def tensor_meta(name: str, dtype: np.dtype, shape: list[int]) -> MetadataTensor:
    return MetadataTensor(name=name, datatype=v2_datatype(dtype), shape=shape)


def response_output(name: str, value: Any) -> ResponseOutput:
    if hasattr(value, "toarray"):  # scipy sparse
        value = value.toarray()
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    arr = np.asarray(value)
    datatype = v2_datatype(arr.dtype)
    if datatype == "BYTES":
        data: list[Any] = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel().tolist()
        ]
    else:
        if arr.dtype.name not in V2_DATATYPES:
            arr = arr.astype(np.float64)
        data = arr.ravel().tolist()
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            data = [None if isinstance(v, float) and math.isnan(v) else v for v in data]
    return ResponseOutput(name=name, datatype=datatype, shape=list(arr.shape), data=data)
