"""The MLServer runtime for one model of an installed model package.

Model settings name it as ``implementation`` with ``parameters.extra = {"package": ..., "model": ...}``
(``hatch_modelpack.serve.settings`` writes them). The model is loaded through the package's own
``load()``, so hashes, framework versions and signatures are checked before anything is deserialised;
a refused model stays registered as not ready (its ``/ready`` answers 400) and the error is logged,
instead of a wrong model being served. Loading runs in a thread so liveness and readiness answer
while a slow model loads.

Requests that do not fit the recorded inputs raise MLServer's ``InferenceError`` (HTTP 400) with a
message naming what the model expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import threading
from typing import Any

import numpy as np
from mlserver import MLModel  # type: ignore[import-untyped,import-not-found,unused-ignore]
from mlserver.errors import InferenceError, MLServerError  # type: ignore[import-untyped,import-not-found,unused-ignore]
from mlserver.logging import logger  # type: ignore[import-untyped,import-not-found,unused-ignore]
from mlserver.settings import ModelSettings  # type: ignore[import-untyped,import-not-found,unused-ignore]
from mlserver.types import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
)

from hatch_modelpack.serve.schema import NUMPY_DTYPES, V2_DATATYPES, Signature, Tensor, describe


class RequestError(ValueError):
    """The request does not fit the model; becomes an InferenceError (400) naming the expected inputs."""


class ModelpackRuntime(MLModel):  # type: ignore[misc]
    """Serves one model of an installed model package; see the module docstring."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        extra = (settings.parameters.extra if settings.parameters else None) or {}
        package = extra.get("package")
        if not package:
            raise MLServerError(
                f"model-settings of {settings.name!r}: parameters.extra.package is not set; write the settings "
                "with `modelpack serve PACKAGE --settings-only DIR`",
                status_code=500,
            )
        self._package = str(package)
        self._model_name = str(extra.get("model") or settings.name)
        self._distribution = str(extra.get("distribution") or package)
        # The package's generated loader: stdlib only, so importing it here imports no framework.
        self._pack: Any = importlib.import_module(f"{self._package}._modelpack")
        self._entry: dict[str, Any] = self._pack.metadata(self._model_name)
        self._signature: Signature = describe(self._entry)
        self._model: Any = None
        self._call: Any = None
        self._serialise = self._signature.platform in ("keras", "savedmodel", "torchscript", "pt2")
        self._lock = threading.Lock()
        if not settings.platform:
            settings.platform = self._signature.platform
        if not settings.inputs:
            self.inputs = [MetadataTensor(**t.as_metadata()) for t in self._signature.inputs]
        if not settings.outputs:
            self.outputs = [MetadataTensor(**t.as_metadata()) for t in self._signature.outputs]

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> bool:
        where = f"model {self._model_name!r} of {self._entry_distribution()} {self._installed_version()}"
        if self._signature.kind == "unsupported":
            logger.error(
                f"{where}: format {self._signature.platform!r} has no generic prediction call; "
                "serve it with a runtime of your own that calls load()"
            )
            return False
        if self.version and self.version != self._installed_version():
            logger.error(
                f"{where}: the model settings were written for version {self.version}; write them again with "
                "`modelpack serve PACKAGE --settings-only DIR`"
            )
            return False
        try:
            model = await asyncio.to_thread(self._pack.load, self._model_name)
            self._call = self._make_call(model)
        except Exception as exc:
            # IntegrityError, VersionMismatchError, a missing framework: the model stays not ready.
            logger.error(f"{where} was not loaded: {type(exc).__name__}: {exc}")
            return False
        self._model = model
        self._describe_outputs(model)
        logger.info(f"{where} loaded through {self._package}.load() (hashes checked)")
        return True

    def _entry_distribution(self) -> str:
        return self._distribution

    def _installed_version(self) -> str:
        return str(self._pack.__version__)

    def _make_call(self, model: Any) -> Any:
        kind, fmt = self._signature.kind, self._signature.platform
        if kind == "estimator":
            if not hasattr(model, "predict"):
                raise TypeError(f"load() returned a {type(model).__name__}, which has no predict()")
            return self._predict_estimator
        if fmt == "onnx":
            return self._predict_onnx
        if fmt == "savedmodel":
            endpoint = (self._entry.get("details") or {}).get("call_endpoint") or "serving_default"
            self._savedmodel_fn = model.signatures[endpoint]
            return self._predict_savedmodel
        return self._predict_tensors

    def _describe_outputs(self, model: Any) -> None:
        if self._signature.kind != "estimator":
            return
        categorical = _categorical_columns(model)
        if categorical and self.inputs:
            self.inputs = [
                MetadataTensor(name=t.name, datatype=categorical[t.name], shape=t.shape) if t.name in categorical else t
                for t in self.inputs
            ]
        classes = getattr(model, "classes_", None)
        outputs = [
            _tensor_meta("predict", np.asarray(classes).dtype if classes is not None else np.dtype("float64"), [-1])
        ]
        if hasattr(model, "predict_proba"):
            outputs.append(
                _tensor_meta("predict_proba", np.dtype("float64"), [-1, len(classes) if classes is not None else -1])
            )
        self.outputs = outputs

    async def unload(self) -> bool:
        self._model = self._call = None
        return True

    # -- metadata ----------------------------------------------------------------------------

    async def metadata(self) -> MetadataModelResponse:
        response = await super().metadata()
        params: dict[str, Any] = {
            "package": self._package,
            "distribution": self._entry_distribution(),
            "format": self._signature.platform,
        }
        if self._signature.features:
            params["content_type"] = "pd"
        if self._entry.get("description"):
            params["description"] = self._entry["description"]
        response.parameters = Parameters(**params)
        return response

    # -- inference ---------------------------------------------------------------------------

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if self._call is None:
            raise InferenceError(f"model {self._model_name!r} is not loaded")
        try:
            # Off the event loop, so health checks answer during a long prediction and requests overlap
            # (scikit-learn and onnxruntime release the GIL); TensorFlow and torch models one at a time.
            outputs = await asyncio.to_thread(self._call_locked if self._serialise else self._call, payload)
        except RequestError as exc:
            raise InferenceError(
                f"model {self._model_name!r}: {exc}. It expects {self._signature.expected()}."
            ) from None
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)

    def _call_locked(self, payload: InferenceRequest) -> list[ResponseOutput]:
        with self._lock:
            return self._call(payload)  # type: ignore[no-any-return]

    def _predict_estimator(self, payload: InferenceRequest) -> list[ResponseOutput]:
        methods = self._estimator_methods(payload)
        x = self._estimator_input(payload)
        out = []
        for method in methods:
            try:
                value = getattr(self._model, method)(x)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise RequestError(f"{method} refused the input ({type(exc).__name__}: {exc})") from None
            out.append(_response_output(method, value))
        return out

    def _estimator_methods(self, payload: InferenceRequest) -> list[str]:
        available = ["predict"] + (["predict_proba"] if hasattr(self._model, "predict_proba") else [])
        if payload.outputs:
            wanted = [o.name for o in payload.outputs]
        else:
            wanted = ["predict"] + (["predict_proba"] if _flag(payload.parameters, "predict_proba") else [])
        unknown = [w for w in wanted if w not in available]
        if unknown:
            raise RequestError(
                f"it has no output {', '.join(map(repr, unknown))}; its outputs are {', '.join(available)}"
            )
        return wanted

    def _estimator_input(self, payload: InferenceRequest) -> Any:
        sig = self._signature
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
            return self._frame_from_columns(inputs)
        arr = _decode(inputs[0])
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

    def _frame_from_columns(self, inputs: list[RequestInput]) -> Any:
        pd = importlib.import_module("pandas")
        features = self._signature.features
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
            arr = _decode(ri)
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

    def _named_feed(self, payload: InferenceRequest) -> dict[str, Any]:
        expected = {t.name: t for t in self._signature.inputs}
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
        return {ri.name: _fit(_decode(ri), expected[ri.name]) for ri in payload.inputs}

    def _wanted_outputs(self, payload: InferenceRequest) -> list[str]:
        available = [t.name for t in self._signature.outputs]
        if not payload.outputs:
            return available
        wanted = [o.name for o in payload.outputs]
        unknown = [w for w in wanted if w not in available]
        if unknown:
            raise RequestError(
                f"it has no output {', '.join(map(repr, unknown))}; its outputs are {', '.join(available)}"
            )
        return wanted

    def _predict_onnx(self, payload: InferenceRequest) -> list[ResponseOutput]:
        feed = self._named_feed(payload)
        names = self._wanted_outputs(payload)
        try:
            values = self._model.run(names, feed)
        except Exception as exc:  # onnxruntime's InvalidArgument / Fail are not ValueError subclasses
            if type(exc).__module__.startswith("onnxruntime"):
                raise RequestError(f"onnxruntime refused the input ({exc})") from None
            raise
        return [_response_output(n, v) for n, v in zip(names, values, strict=True)]

    def _predict_savedmodel(self, payload: InferenceRequest) -> list[ResponseOutput]:
        tf = importlib.import_module("tensorflow")
        feed = self._named_feed(payload)
        names = self._wanted_outputs(payload)
        try:
            result = self._savedmodel_fn(**{k: tf.constant(v) for k, v in feed.items()})
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as exc:
            raise RequestError(f"the signature refused the input ({exc})") from None
        return [_response_output(n, np.asarray(result[n])) for n in names if n in result]

    def _predict_tensors(self, payload: InferenceRequest) -> list[ResponseOutput]:
        expected = self._signature.inputs
        if len(expected) <= 1 and len(payload.inputs) != 1:
            raise RequestError(f"the request has {len(payload.inputs)} inputs")
        if len(expected) > 1:
            feed = self._named_feed(payload)
            args: list[Any] = [feed[t.name] for t in expected]
        else:
            args = [_fit(_decode(payload.inputs[0]), expected[0]) if expected else _decode(payload.inputs[0])]
        try:
            if self._signature.platform == "keras":
                value = self._model.predict_on_batch(args[0] if len(args) == 1 else args)
            else:  # torchscript / pt2: torch tensors in, tensors out
                torch = importlib.import_module("torch")
                module = self._model.module() if hasattr(self._model, "module") else self._model
                with torch.no_grad():
                    value = module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in args])
                value = value.detach().numpy()
        except (ValueError, TypeError, RuntimeError) as exc:
            raise RequestError(f"the model refused the input ({type(exc).__name__}: {exc})") from None
        if isinstance(value, (list, tuple)):
            return [_response_output(f"predict-{i}", v) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return [_response_output(str(k), v) for k, v in value.items()]
        return [_response_output("predict", value)]


# -- helpers ------------------------------------------------------------------------------------


def _param(params: Parameters | None, key: str) -> Any:
    if params is None:
        return None
    return params.model_dump().get(key)


def _flag(params: Parameters | None, key: str) -> bool:
    value = _param(params, key)
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


def _rank(ri: RequestInput) -> int:
    return len(ri.shape)


def _decode(ri: RequestInput) -> np.ndarray:
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


def _fit(arr: np.ndarray, want: Tensor) -> np.ndarray:
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


def _categorical_columns(model: Any) -> dict[str, str]:
    """Columns a fitted ColumnTransformer (first step of a Pipeline) sends to an encoder, with the
    datatype of the categories it learnt: the pickle does not record input dtypes, the encoder does."""
    first = model.steps[0][1] if hasattr(model, "steps") and model.steps else model
    out: dict[str, str] = {}
    for _name, transformer, columns in getattr(first, "transformers_", None) or []:
        encoder = transformer.steps[0][1] if hasattr(transformer, "steps") and transformer.steps else transformer
        categories = getattr(encoder, "categories_", None)
        if categories is None or not isinstance(columns, (list, tuple)) or len(columns) != len(categories):
            continue
        for column, cats in zip(columns, categories, strict=True):
            if isinstance(column, str):
                out[column] = _v2_datatype(np.asarray(cats).dtype)
    return out


def _v2_datatype(dtype: np.dtype) -> str:
    if dtype.kind in "OUS":
        return "BYTES"
    return V2_DATATYPES.get(dtype.name, "FP64")


def _tensor_meta(name: str, dtype: np.dtype, shape: list[int]) -> MetadataTensor:
    return MetadataTensor(name=name, datatype=_v2_datatype(dtype), shape=shape)


def _response_output(name: str, value: Any) -> ResponseOutput:
    if hasattr(value, "toarray"):  # scipy sparse
        value = value.toarray()
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    arr = np.asarray(value)
    datatype = _v2_datatype(arr.dtype)
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
