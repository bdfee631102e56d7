"""TensorFlow SavedModel directories: read with a protobuf wire-format reader, loaded with ``tf.saved_model.load``.

``saved_model.pb`` records the TensorFlow version that wrote it (``meta_info_def.tensorflow_version``)
and the serving signatures; both are read here without TensorFlow. The signature names also tell the
loader how to wrap the model as a Keras layer: ``model.export(dir)`` writes a ``serve`` endpoint,
``tf.saved_model.save`` only ``serving_default``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.protobuf import read_saved_model_file
from hatch_modelpack.requirements import is_valid_version

#: The distribution a SavedModel needs. ``tensorflow`` installs everywhere (Linux, macOS, Windows,
#: x86_64 and arm64); ``tensorflow-cpu`` is smaller on Linux x86_64 but does not satisfy it, so users who
#: want it say so with ``requires = [...]``.
TENSORFLOW = "tensorflow"
INTERNAL_SIGNATURES = frozenset({"__saved_model_init_op", "__saved_model_train_op"})


def _version(raw: str) -> str | None:
    """The PEP 440 part of a recorded version ("2.21.0", "2.16.1-rc0" -> "2.16.1rc0"); None if unusable."""
    text = raw.strip()
    for candidate in (text, text.replace("-", ""), text.split("-", 1)[0]):
        if candidate and is_valid_version(candidate):
            return candidate
    return None


class SavedModelFormat(Format):
    name: ClassVar[str] = "savedmodel"
    directory: ClassVar[bool] = True

    def sniff(self, path: Path, head: bytes) -> bool:
        return (path / "saved_model.pb").is_file()

    def inspect(self, path: Path, label: str) -> Inspection:
        info = read_saved_model_file(path / "saved_model.pb", label)
        details: dict[str, Any] = {"schema_version": info.schema_version}
        recorded = sorted({m.tensorflow_version for m in info.meta_graphs if m.tensorflow_version})
        frameworks: dict[str, str] = {}
        if recorded:
            details["tensorflow_version"] = recorded[-1] if len(recorded) == 1 else recorded
            versions = [v for v in map(_version, recorded) if v]
            if versions:
                from packaging.version import Version

                frameworks[TENSORFLOW] = max(versions, key=Version)
        git = sorted({m.tensorflow_git_version for m in info.meta_graphs if m.tensorflow_git_version})
        if git:
            details["tensorflow_git_version"] = git[0] if len(git) == 1 else git
        details["tags"] = [sorted(m.tags) for m in info.meta_graphs]
        serve = next((m for m in info.meta_graphs if "serve" in m.tags), info.meta_graphs[0])
        signatures = {k: v for k, v in sorted(serve.signatures.items()) if k not in INTERNAL_SIGNATURES}
        if signatures:
            details["signatures"] = signatures
        # model.export() writes a "serve" endpoint that returns the model's outputs as they are;
        # tf.saved_model.save writes only "serving_default", which returns a dict.
        if "serve" in signatures:
            details["call_endpoint"] = "serve"
        elif "serving_default" in signatures:
            details["call_endpoint"] = "serving_default"
        endpoint = signatures.get(details.get("call_endpoint", ""))
        if isinstance(endpoint, dict) and isinstance(endpoint.get("inputs"), dict):
            details["input_schema"] = {"inputs": [{"name": k, **v} for k, v in endpoint["inputs"].items()]}
        return Inspection(requires=[TENSORFLOW], frameworks=frameworks, details=details)
