"""``torch.export.save`` archives (``.pt2``): JSON schema and signature read, nested pickles scanned, loaded with ``torch.export.load``.

A PT2 archive keeps the exported program as JSON (``models/<name>.json``: ``torch_version``,
``schema_version``, the graph and its signature), weights as raw bytes described by
``data/weights/model_weights_config.json``, and sample inputs (and weights that could not be stored
raw) as nested ``torch.save`` zips, whose pickles are scanned like ``torch`` files. The recorded
``torch_version`` pins the requirement (local labels such as ``+cpu`` stripped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats._torch_archive import (
    MAX_JSON,
    MAX_PICKLE,
    MAX_TENSORS_LISTED,
    ZIP_MAGIC,
    archive_kind,
    read_archive,
    read_record,
    review_globals,
    scan_pickle,
)
from hatch_modelpack.requirements import is_valid_version
from hatch_modelpack.scanning import Global

FIX = "Save it again with torch.export.save(torch.export.export(model, args), path) and check the file is complete."
#: torch._export.serde.schema.ScalarType -> dtype names.
SCALAR_TYPES = {
    1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32", 8: "float64",
    9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16", 28: "uint16",
    29: "float8_e4m3fn", 30: "float8_e5m2", 31: "float8_e4m3fnuz", 32: "float8_e5m2fnuz",
}  # fmt: skip


def _json(archive: Any, record: str, label: str) -> Any:
    try:
        return json.loads(read_record(archive, record, label, MAX_JSON, FIX))
    except ValueError as exc:
        raise ArtifactError(f"{label}: {archive.prefix}/{record} is not valid JSON ({exc}). {FIX}") from None


def _names(specs: Any, kind: str) -> list[str]:
    """User input/output names from an exported signature's input_specs/output_specs."""
    out: list[str] = []
    for spec in specs if isinstance(specs, list) else []:
        arg = spec.get(kind, {}).get("arg", {}) if isinstance(spec, dict) else {}
        if isinstance(arg, dict):
            for value in arg.values():
                if isinstance(value, dict) and isinstance(value.get("name"), str):
                    out.append(value["name"])
    return out


class Pt2Format(Format):
    name: ClassVar[str] = "pt2"
    suffixes: ClassVar[tuple[str, ...]] = (".pt2",)

    def sniff(self, path: Path, head: bytes) -> bool:
        return head.startswith(ZIP_MAGIC) and archive_kind(path) == "pt2"

    def inspect(self, path: Path, label: str) -> Inspection:
        archive = read_archive(path, label, FIX)
        details: dict[str, Any] = {"archive": archive.prefix}
        for record in ("archive_format", "archive_version", ".data/version", "byteorder"):
            info = archive.records.get(record)
            if info is not None and info.file_size <= 64:
                details[record.replace(".data/", "data_")] = (
                    read_record(archive, record, label, 64, FIX).decode("ascii", "replace").strip()
                )
        details["programs"], versions = _programs(archive, label)
        details.update(_weights(archive, label))
        globals_, details["nested_pickles"] = _pickles(archive, label)
        details["globals"] = sorted(str(g) for g in globals_)
        frameworks: dict[str, str] = {}
        if len(versions) == 1:
            version = next(iter(versions)).split("+", 1)[0]
            if is_valid_version(version):
                frameworks["torch"] = version
        return Inspection(requires=["torch"], frameworks=frameworks, details=details, globals=globals_)

    def review(self, inspection: Inspection, model: Any, pack: Any, label: str, key: str) -> None:
        review_globals(
            inspection.globals or set(), pack.package, (*pack.allow_globals, *model.allow_globals), label, key
        )
        inspection.globals = None


def _programs(archive: Any, label: str) -> tuple[dict[str, Any], set[str]]:
    """Each exported program's recorded versions and signature (``models/*.json``), and the torch versions."""
    models = sorted(r for r in archive.records if r.startswith("models/") and r.endswith(".json"))
    if not models:
        raise ArtifactError(f"{label}: has no models/*.json, so it holds no exported program. {FIX}")
    versions: set[str] = set()
    programs: dict[str, Any] = {}
    for record in models:
        program = _json(archive, record, label)
        if not isinstance(program, dict):
            raise ArtifactError(f"{label}: {archive.prefix}/{record} is not an exported program. {FIX}")
        entry: dict[str, Any] = {}
        if isinstance(program.get("torch_version"), str):
            entry["torch_version"] = program["torch_version"]
            versions.add(program["torch_version"])
        for k in ("schema_version", "opset_version"):
            if isinstance(program.get(k), dict):
                entry[k] = program[k]
        signature = (
            (program.get("graph_module") or {}).get("signature")
            if isinstance(program.get("graph_module"), dict)
            else None
        )
        if isinstance(signature, dict):
            specs = [s for s in signature.get("input_specs") or [] if isinstance(s, dict)]
            entry["inputs"] = _names(signature.get("input_specs"), "user_input")
            entry["outputs"] = _names(signature.get("output_specs"), "user_output")
            entry["parameters"] = len([s for s in specs if "parameter" in s])
            entry["buffers"] = len([s for s in specs if "buffer" in s])
        programs[record[len("models/") : -len(".json")]] = entry
    return programs, versions


def _weights(archive: Any, label: str) -> dict[str, Any]:
    """Tensor names, dtypes and shapes from the weights config, when the archive has one."""
    weights_config = "data/weights/model_weights_config.json"
    if weights_config not in archive.records:
        return {}
    config = _json(archive, weights_config, label)
    tensors: dict[str, Any] = {}
    total = 0
    for name, spec in ((config or {}).get("config") or {}).items() if isinstance(config, dict) else []:
        meta = spec.get("tensor_meta", {}) if isinstance(spec, dict) else {}
        sizes = [s.get("as_int") for s in meta.get("sizes", []) if isinstance(s, dict)]
        numel = 1
        for s in sizes:
            numel *= s if isinstance(s, int) else 0
        total += numel
        if len(tensors) < MAX_TENSORS_LISTED:
            tensors[name] = {
                "dtype": SCALAR_TYPES.get(meta.get("dtype", 0), f"scalar_type{meta.get('dtype')}"),
                "shape": sizes,
                "numel": numel,
            }
    return {"tensor_count": len(tensors), "total_parameters": total, "tensors": tensors}


def _pickles(archive: Any, label: str) -> tuple[set[Global], int]:
    """The globals of every pickle in the archive, nested ``torch.save`` zips included, and how many were nested."""
    globals_: set[Global] = set()
    nested = 0
    for record, info in sorted(archive.records.items()):
        if info.file_size < 4 or not (
            record.endswith(".pkl") or record.startswith(("data/sample_inputs/", "data/weights/", "data/constants/"))
        ):
            continue
        with archive.open() as zf, zf.open(info) as f:
            head = f.read(4)
        if record.endswith(".pkl"):
            globals_ |= scan_pickle(
                read_record(archive, record, label, MAX_PICKLE, FIX), f"{label} ({archive.prefix}/{record})", FIX
            ).globals
        elif head == ZIP_MAGIC:  # a torch.save zip inside the archive: sample inputs, pickled weights
            inner_label = f"{label} ({archive.prefix}/{record})"
            inner = read_archive(read_record(archive, record, label, MAX_PICKLE, FIX), inner_label, FIX)
            globals_ |= scan_pickle(
                read_record(inner, "data.pkl", inner_label, MAX_PICKLE, FIX), inner_label, FIX
            ).globals
            nested += 1
    return globals_, nested
