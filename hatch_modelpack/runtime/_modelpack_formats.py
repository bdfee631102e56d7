"""One loader function per format (``_LOADERS``), and the modules each imports ahead while the hash runs.

A ``_load_*`` function runs only after the artifact's sha256 (and signature) matched, and reads the
bytes that were hashed; ``_preimport`` runs meanwhile and imports, never deserialises. Part of the
loader that ships in every model package beside ``_modelpack.py``: standard library only (each
framework is imported when a model of its format is loaded), Python 3.8 syntax.
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from ._modelpack_integrity import _open_verified
from ._modelpack_unpickle import _restricted_joblib_load, _restricted_pickle_load

#: Modules each format's loader imports (see the _load_* functions), imported ahead while the hash runs.
_FRAMEWORK_MODULES: Dict[str, Tuple[str, ...]] = {
    "joblib": ("joblib",),
    "pickle": ("pickle",),
    "keras": ("keras",),
    "savedmodel": ("tensorflow",),
    "skops": ("skops.io",),
    "onnx": ("onnxruntime",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "catboost": ("catboost",),
    "torch": ("torch",),
    "torchscript": ("torch",),
    "pt2": ("torch",),
    "transformers": ("transformers",),
}


#: The only packages whose modules the manifest's globals may have imported before the hash matched:
#: known frameworks, whose import runs nothing a manifest chooses. The package's own modules and anything
#: else wait for the unpickler, which admits them after the check.
_PREIMPORT_ROOTS = frozenset(
    {
        "sklearn",
        "numpy",
        "scipy",
        "pandas",
        "joblib",
        "pyarrow",
        "statsmodels",
        "xgboost",
        "lightgbm",
        "catboost",
        "torch",
    }
)


def _preimport(entry: Dict[str, Any]) -> None:
    """Import the framework and the modules of the reviewed globals (``module.name``, the name maybe dotted).

    Only an optimisation: a module that fails to import here fails again, with its real error, when the
    framework loads the artifact.
    """
    candidates = [[m] for m in _FRAMEWORK_MODULES.get(entry["format"], ())]
    for qualified in entry.get("globals") or ():
        parts = str(qualified).split(".")  # the longest importable prefix is the module
        if parts[0] in _PREIMPORT_ROOTS:  # the manifest is not yet vouched for: nothing else is imported early
            candidates.append([".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)])
    for prefixes in candidates:
        for module in prefixes:
            if module in sys.modules or module in ("builtins", "__builtin__"):
                break
            try:
                import_module(module)
            except Exception:  # not a module (the name is an attribute), or the load will report why
                continue
            break


def _load_joblib(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    return _restricted_joblib_load(artifact, entry, kwargs)


def _load_pickle(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    return _restricted_pickle_load(artifact, entry, kwargs)


def _load_keras(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    keras = import_module("keras")
    kwargs.setdefault("safe_mode", True)
    return keras.models.load_model(artifact, **kwargs)


def _load_savedmodel(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    if kwargs.pop("as_layer", False):
        # A Keras layer wrapping the SavedModel (Keras 3's load_model refuses SavedModel directories).
        # The build recorded which endpoint exists: "serve" (model.export) or "serving_default".
        keras = import_module("keras")
        kwargs.setdefault("call_endpoint", entry.get("details", {}).get("call_endpoint") or "serve")
        return keras.layers.TFSMLayer(str(artifact), **kwargs)
    tf = import_module("tensorflow")
    return tf.saved_model.load(str(artifact), **kwargs)


def _load_skops(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    # The types were read from the file's schema and reviewed when the package was built.
    sio = import_module("skops.io")
    kwargs.setdefault("trusted", list(entry.get("details", {}).get("trusted", [])))
    return sio.load(artifact, **kwargs)


def _load_onnx(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    ort = import_module("onnxruntime")
    return ort.InferenceSession(str(artifact), **kwargs)  # providers=, sess_options= pass through


# Gradient-boosted trees (native formats: data, not code): each reads the bytes that were verified.
_CATBOOST_CLASSES = {"classifier": "CatBoostClassifier", "regressor": "CatBoostRegressor", "ranker": "CatBoostRanker"}


def _load_xgboost(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    xgboost = import_module("xgboost")
    with _open_verified(artifact) as f:  # JSON or UBJSON; XGBoost tells them apart by the bytes
        return xgboost.Booster(model_file=bytearray(f.read()), **kwargs)


def _load_lightgbm(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    lightgbm = import_module("lightgbm")
    with _open_verified(artifact) as f:  # the same text Booster(model_file=...) would read
        return lightgbm.Booster(model_str=f.read().decode("utf-8"), **kwargs)


def _load_catboost(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    catboost = import_module("catboost")
    cls = getattr(catboost, _CATBOOST_CLASSES.get(entry.get("details", {}).get("model_class", ""), "CatBoost"))
    model = cls()
    with _open_verified(artifact) as f:
        return model.load_model(blob=f.read(), **kwargs)


# -- PyTorch, safetensors, transformers (issue 12) --


def _safe_globals(pairs: List[List[str]]) -> List[Any]:
    """The classes the build reviewed (the package's own, allow-globals) for torch.serialization.safe_globals."""
    out = []
    for module, name in pairs:
        obj: Any = import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        out.append(obj)
    return out


def _load_torch(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    torch = import_module("torch")
    if kwargs.pop("weights_only", True) is not True:
        raise TypeError(
            f"model {entry['name']!r}: load() always uses torch.load(weights_only=True); the build reviewed the pickle for that"
        )
    extra = _safe_globals(entry.get("details", {}).get("safe_globals", []))
    context = torch.serialization.safe_globals(extra) if extra else _NoContext()
    with context, _open_verified(artifact) as f:
        if kwargs.get("mmap"):
            return torch.load(str(artifact), weights_only=True, **kwargs)  # mmap needs the path
        return torch.load(f, weights_only=True, **kwargs)  # map_location= and the rest pass through


class _NoContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _load_torchscript(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    torch = import_module("torch")
    with _open_verified(artifact) as f:
        return torch.jit.load(f, **kwargs)


def _load_pt2(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    torch = import_module("torch")
    with _open_verified(artifact) as f:
        return torch.export.load(f, **kwargs)


def _load_safetensors(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    framework = kwargs.pop("framework", "numpy")
    module = import_module("safetensors." + {"pt": "torch", "tf": "tensorflow"}.get(framework, framework))
    details = entry.get("details", {})
    files = [artifact / s for s in details["shards"]] if details.get("sharded") else [artifact]
    out: Dict[str, Any] = {}
    for file in files:
        out.update(module.load_file(str(file), **kwargs))  # device= passes through for "pt"
    return out


def _load_transformers(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    transformers = import_module("transformers")
    details = entry.get("details", {})
    component = kwargs.pop("component", "model")
    kwargs.setdefault("local_files_only", True)
    kwargs["trust_remote_code"] = bool(details.get("trust_remote_code"))  # reviewed at build time
    auto = {"tokenizer": "AutoTokenizer", "processor": "AutoProcessor", "config": "AutoConfig",
            "image_processor": "AutoImageProcessor", "feature_extractor": "AutoFeatureExtractor",
            "generation_config": "GenerationConfig"}  # fmt: skip
    if component in auto:
        return getattr(transformers, auto[component]).from_pretrained(str(artifact), **kwargs)
    if component != "model":
        raise TypeError(
            f"model {entry['name']!r}: component must be 'model' or one of {sorted(auto)}, not {component!r}"
        )
    archs = details.get("architectures") or []
    cls = getattr(transformers, archs[0], None) if archs else None
    if cls is None:  # custom code (trust-remote-code) or no architectures: an Auto class resolves it
        auto_map = details.get("remote_code", {}).get("auto_map", {})
        cls = getattr(transformers, next((k for k in auto_map if k.startswith("AutoModel")), "AutoModel"))
    return cls.from_pretrained(str(artifact), **kwargs)


def _load_raw(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    if kwargs:
        raise TypeError(f"model {entry['name']!r} is a raw artifact: load() returns its path and takes no options")
    return artifact


_LOADERS: Dict[str, Callable[[Path, Dict[str, Any], Dict[str, Any]], Any]] = {
    "joblib": _load_joblib,
    "pickle": _load_pickle,
    "keras": _load_keras,
    "savedmodel": _load_savedmodel,
    "skops": _load_skops,
    "onnx": _load_onnx,
    "raw": _load_raw,
    "xgboost": _load_xgboost,
    "lightgbm": _load_lightgbm,
    "catboost": _load_catboost,
    "torch": _load_torch,
    "torchscript": _load_torchscript,
    "pt2": _load_pt2,
    "safetensors": _load_safetensors,
    "transformers": _load_transformers,
}
