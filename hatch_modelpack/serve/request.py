"""A V2 inference request read against a model's recorded signature: which inputs, which outputs.

An estimator takes one [N, F] tensor (a frame with the recorded feature names when it was fit on one)
or one input per column (MLServer's pandas content type); a graph model (ONNX, SavedModel, Keras,
torch) takes its named inputs. Anything that does not fit raises :class:`RequestError` naming what is
wrong; the runtime adds what the model expects.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from mlserver.types import InferenceRequest, Parameters, RequestInput  # type: ignore[import-untyped,import-not-found,unused-ignore]

from hatch_modelpack.serve.schema import Signature
from hatch_modelpack.serve.tensors import RequestError, decode, fit


def _param(params: Parameters | None, key: str) -> Any:
    if params is None:
        return None
    return params.model_dump().get(key)


def _flag(params: Parameters | None, key: str) -> bool:
    value = _param(params, key)
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


def _rank(ri: RequestInput) -> int:
    return len(ri.shape)


def estimator_methods(payload: InferenceRequest, model: Any) -> list[str]:
    """The estimator methods to call: the request's named outputs, else predict (and predict_proba on request)."""
    available = ["predict"] + (["predict_proba"] if hasattr(model, "predict_proba") else [])
    if payload.outputs:
        wanted = [o.name for o in payload.outputs]
    else:
        wanted = ["predict"] + (["predict_proba"] if _flag(payload.parameters, "predict_proba") else [])
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise RequestError(f"it has no output {', '.join(map(repr, unknown))}; its outputs are {', '.join(available)}")
    return wanted


def estimator_input(payload: InferenceRequest, sig: Signature) -> Any:
    """What ``predict`` gets: the [N, F] array, or a frame with the recorded feature names (from it or from columns)."""
    inputs = payload.inputs
    if not inputs:
        raise RequestError("the request has no inputs")
    names = [i.name for i in inputs]
    as_columns = _param(payload.parameters, "content_type") == "pd" or len(inputs) > 1
    if (
        len(inputs) == 1
        and sig.features
        and names[0] in sig.features
        and (len(sig.features) > 1 or _rank(inputs[0]) == 1)
    ):
        as_columns = True
    if as_columns:
        return frame_from_columns(inputs, sig.features)
    arr = decode(inputs[0])
    if arr.ndim != 2:
        raise RequestError(f"input {names[0]!r} has shape {list(arr.shape)}, not [N, F]")
    if sig.n_features is not None and arr.shape[1] != sig.n_features:
        raise RequestError(f"input {names[0]!r} has {arr.shape[1]} features per row, not {sig.n_features}")
    if not sig.features:
        return arr
    pd = importlib.import_module("pandas")
    frame = pd.DataFrame(arr, columns=sig.features)
    if arr.dtype == object:  # a BYTES tensor of mixed columns: numbers where every value parses
        for col in frame.columns:
            with contextlib.suppress(ValueError, TypeError):
                frame[col] = pd.to_numeric(frame[col])
    return frame


def frame_from_columns(inputs: list[RequestInput], features: list[str] | None) -> Any:
    """A frame from one input per column (pandas content type), in the order the model was fit on."""
    pd = importlib.import_module("pandas")
    names = [i.name for i in inputs]
    if not features:
        raise RequestError(
            f"it was not fit on a named table, so inputs by column name ({', '.join(names)}) cannot be placed"
        )
    unknown = [n for n in names if n not in features]
    missing = [f for f in features if f not in names]
    if unknown or missing or len(set(names)) != len(names):
        problems = []
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing input(s) {', '.join(map(repr, missing))}")
        if not problems:
            problems.append("an input is sent twice")
        raise RequestError("; ".join(problems))
    columns = {}
    for ri in inputs:
        arr = decode(ri)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise RequestError(f"input {ri.name!r} has shape {list(arr.shape)}; a column is [N] or [N, 1]")
        columns[ri.name] = arr
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise RequestError(
            f"the columns have different lengths ({', '.join(f'{k}: {len(v)}' for k, v in columns.items())})"
        )
    return pd.DataFrame({f: columns[f] for f in features})


def named_feed(payload: InferenceRequest, sig: Signature) -> dict[str, Any]:
    """A graph model's feed: every recorded input by name, each fitted to its recorded shape and dtype."""
    expected = {t.name: t for t in sig.inputs}
    names = [i.name for i in payload.inputs]
    unknown = [n for n in names if n not in expected]
    missing = [n for n in expected if n not in names]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing input(s) {', '.join(map(repr, missing))}")
        raise RequestError("; ".join(problems))
    return {ri.name: fit(decode(ri), expected[ri.name]) for ri in payload.inputs}


def wanted_outputs(payload: InferenceRequest, sig: Signature) -> list[str]:
    """The recorded outputs the request asks for (all of them when it names none)."""
    available = [t.name for t in sig.outputs]
    if not payload.outputs:
        return available
    wanted = [o.name for o in payload.outputs]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise RequestError(f"it has no output {', '.join(map(repr, unknown))}; its outputs are {', '.join(available)}")
    return wanted
