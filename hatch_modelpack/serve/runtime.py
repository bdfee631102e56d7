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
import importlib
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
    ResponseOutput,
)

from hatch_modelpack.serve.request import estimator_input, estimator_methods, named_feed, wanted_outputs
from hatch_modelpack.serve.schema import Signature, describe
from hatch_modelpack.serve.tensors import RequestError, decode, fit, response_output, tensor_meta, v2_datatype


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
            tensor_meta("predict", np.asarray(classes).dtype if classes is not None else np.dtype("float64"), [-1])
        ]
        if hasattr(model, "predict_proba"):
            outputs.append(
                tensor_meta("predict_proba", np.dtype("float64"), [-1, len(classes) if classes is not None else -1])
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
        methods = estimator_methods(payload, self._model)
        x = estimator_input(payload, self._signature)
        out = []
        for method in methods:
            try:
                value = getattr(self._model, method)(x)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise RequestError(f"{method} refused the input ({type(exc).__name__}: {exc})") from None
            out.append(response_output(method, value))
        return out

    def _predict_onnx(self, payload: InferenceRequest) -> list[ResponseOutput]:
        feed = named_feed(payload, self._signature)
        names = wanted_outputs(payload, self._signature)
        try:
            values = self._model.run(names, feed)
        except Exception as exc:  # onnxruntime's InvalidArgument / Fail are not ValueError subclasses
            if type(exc).__module__.startswith("onnxruntime"):
                raise RequestError(f"onnxruntime refused the input ({exc})") from None
            raise
        return [response_output(n, v) for n, v in zip(names, values, strict=True)]

    def _predict_savedmodel(self, payload: InferenceRequest) -> list[ResponseOutput]:
        tf = importlib.import_module("tensorflow")
        feed = named_feed(payload, self._signature)
        names = wanted_outputs(payload, self._signature)
        try:
            result = self._savedmodel_fn(**{k: tf.constant(v) for k, v in feed.items()})
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as exc:
            raise RequestError(f"the signature refused the input ({exc})") from None
        return [response_output(n, np.asarray(result[n])) for n in names if n in result]

    def _predict_tensors(self, payload: InferenceRequest) -> list[ResponseOutput]:
        expected = self._signature.inputs
        if len(expected) <= 1 and len(payload.inputs) != 1:
            raise RequestError(f"the request has {len(payload.inputs)} inputs")
        if len(expected) > 1:
            feed = named_feed(payload, self._signature)
            args: list[Any] = [feed[t.name] for t in expected]
        else:
            args = [fit(decode(payload.inputs[0]), expected[0]) if expected else decode(payload.inputs[0])]
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
            return [response_output(f"predict-{i}", v) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return [response_output(str(k), v) for k, v in value.items()]
        return [response_output("predict", value)]


# -- helpers ------------------------------------------------------------------------------------


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
                out[column] = v2_datatype(np.asarray(cats).dtype)
    return out
