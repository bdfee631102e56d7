"""Hugging Face ``save_pretrained`` directories: config and weights read statically, loaded offline with ``from_pretrained``.

``config.json`` records ``model_type``, ``architectures``, the ``transformers_version`` that wrote it
and the weights' dtype. The weights are checked like their own formats (safetensors headers, or
``pytorch_model.bin`` scanned like a ``torch`` file); tokenizer, processor and generation-config files
ship with the model. A directory that needs custom code (``auto_map`` or ``*.py`` files) is refused
unless the model's table says ``trust-remote-code = true``: the code then ships in the wheel and
``from_pretrained`` runs it from there, never from the Hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats.safetensors import INDEX as ST_INDEX
from hatch_modelpack.formats.safetensors import read_header, read_sharded
from hatch_modelpack.requirements import is_valid_version

MAX_CONFIG = 16 << 20
FIX = "Save the model again with model.save_pretrained(dir) (and tokenizer.save_pretrained(dir))."
COMPONENT_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
    "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json", "generation_config.json",
    "preprocessor_config.json", "processor_config.json", "image_processor_config.json", "feature_extractor_config.json", "chat_template.jinja",
)  # fmt: skip


def _json(path: Path, label: str) -> Any:
    try:
        if path.stat().st_size > MAX_CONFIG:
            raise ArtifactError(f"{label}: {path.name} is implausibly large. {FIX}")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{label}: {path.name} is not readable JSON ({exc}). {FIX}") from None


def _framework(architectures: list[str]) -> str:
    first = architectures[0] if architectures else ""
    if first.startswith("TF"):
        return "tensorflow"
    if first.startswith("Flax"):
        return "flax"
    return "torch"


class TransformersFormat(Format):
    name: ClassVar[str] = "transformers"
    directory: ClassVar[bool] = True

    def sniff(self, path: Path, head: bytes) -> bool:
        config = path / "config.json"
        if not config.is_file():
            return False
        try:
            data = json.loads(config.read_text(encoding="utf-8")) if config.stat().st_size <= MAX_CONFIG else None
        except (OSError, ValueError):
            return True  # inspect() says what is wrong with it
        return isinstance(data, dict) and "model_type" in data

    def inspect(self, path: Path, label: str) -> Inspection:
        config = _json(path / "config.json", label)
        if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
            raise ArtifactError(
                f"{label}: config.json has no model_type, so it is not a transformers model directory. {FIX}"
            )
        architectures = config.get("architectures") or []
        if not (isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)):
            raise ArtifactError(f"{label}: config.json's architectures is not a list of class names. {FIX}")
        details: dict[str, Any] = {"model_type": config["model_type"], "architectures": architectures}
        dtype = config.get("dtype", config.get("torch_dtype"))
        if isinstance(dtype, str):
            details["dtype"] = dtype
        frameworks: dict[str, str] = {}
        version = config.get("transformers_version")
        if isinstance(version, str) and is_valid_version(version):
            details["transformers_version"] = version
            frameworks["transformers"] = version
        # Custom code: auto_map in any config, or Python files shipped beside the weights.
        auto_map: dict[str, Any] = {}
        for name in ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
            data = config if name == "config.json" else (_json(path / name, label) if (path / name).is_file() else None)
            if isinstance(data, dict) and isinstance(data.get("auto_map"), dict):
                auto_map.update(data["auto_map"])
        code = sorted(p.relative_to(path).as_posix() for p in path.rglob("*.py"))
        if auto_map or code:
            details["remote_code"] = {"auto_map": auto_map, "files": code}
        requires = ["transformers", _framework(architectures)]
        weights: list[str] = []
        globals_ = None
        if (path / "model.safetensors").is_file():
            details["weights"] = read_header(path / "model.safetensors", f"{label} (model.safetensors)")
            weights.append("model.safetensors")
        elif (path / ST_INDEX).is_file():
            details["weights"] = read_sharded(path, label)
            weights.append(ST_INDEX)
        elif (path / "pytorch_model.bin").is_file():
            from hatch_modelpack.formats.torch import inspect_torch_zip

            scanned = inspect_torch_zip(path / "pytorch_model.bin", f"{label} (pytorch_model.bin)")
            details["weights"] = scanned.details
            globals_ = scanned.globals
            weights.append("pytorch_model.bin")
        elif (path / "pytorch_model.bin.index.json").is_file():
            raise ArtifactError(
                f"{label}: holds sharded pytorch_model-*.bin weights, which hatch-modelpack does not scan. Save with model.save_pretrained(dir, safe_serialization=True) (safetensors, the default) and build again."
            )
        else:
            found = sorted(
                p.name for p in path.iterdir() if p.suffix in (".h5", ".msgpack", ".bin", ".safetensors", ".pt")
            )
            raise ArtifactError(
                f"{label}: holds no model.safetensors (or pytorch_model.bin) weights{' (found: ' + ', '.join(found) + ')' if found else ''}. {FIX}"
            )
        if weights[0] != "pytorch_model.bin":
            requires.append("safetensors")
        details["weights_files"] = weights
        details["components"] = sorted(n for n in COMPONENT_FILES if (path / n).is_file())
        return Inspection(requires=requires, frameworks=frameworks, details=details, globals=globals_)

    def review(self, inspection: Inspection, model: Any, pack: Any, label: str, key: str) -> None:
        remote = inspection.details.get("remote_code")
        if remote:
            what = ", ".join([*(f"auto_map {k} -> {v}" for k, v in remote["auto_map"].items()), *remote["files"]][:6])
            hub = [v for v in remote["auto_map"].values() if "--" in str(v)]
            if hub:
                raise ArtifactError(
                    f"{label}: config's auto_map points at code in another Hub repository ({', '.join(map(str, hub))}), which an offline load cannot fetch. Copy that code into the directory, point auto_map at it, and set trust-remote-code = true in [{key}]."
                )
            if not getattr(model, "trust_remote_code", False):
                raise ArtifactError(
                    f"{label}: needs custom code to load ({what}), and from_pretrained would run it. If this code is yours and "
                    f"you trust it, set trust-remote-code = true in [{key}] (the code ships in the wheel and runs from there); "
                    "otherwise save a model whose class is part of transformers."
                )
            inspection.details["trust_remote_code"] = True
        if inspection.globals is not None:
            from hatch_modelpack.formats.torch import review_torch

            review_torch(inspection, pack.package, (*pack.allow_globals, *model.allow_globals), label, key)
            admitted = inspection.details.pop("safe_globals", None)
            if admitted:
                inspection.details["weights"]["safe_globals"] = admitted
