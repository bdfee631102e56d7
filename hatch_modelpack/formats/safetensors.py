"""safetensors files (and sharded checkpoints): the header parsed with bounds, loaded with ``safetensors.numpy.load_file``.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name -> dtype,
shape, data_offsets; optional ``__metadata__`` strings) and the tensor bytes. It holds no code, so the
build's job is to refuse what the safetensors library would refuse or misread, before shipping it:
headers over 100 MB, non-JSON or duplicate keys, unknown dtypes, byte ranges that do not match the
shape, that overlap, leave gaps or reach past the file. A directory with
``model.safetensors.index.json`` is one sharded model; every shard is checked and must hold exactly
the tensors the index maps to it.
"""

from __future__ import annotations

import json
import os
import struct
from math import prod
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection

MAX_HEADER = 100_000_000  # the safetensors library's own limit
INDEX = "model.safetensors.index.json"
MAX_INDEX = 64 << 20
MAX_TENSORS_LISTED = 4096
#: safetensors dtype -> (numpy-style name, bits per element).
DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 8), "U8": ("uint8", 8), "I8": ("int8", 8), "F8_E5M2": ("float8_e5m2", 8),
    "F8_E4M3": ("float8_e4m3fn", 8), "F8_E8M0": ("float8_e8m0fnu", 8), "I16": ("int16", 16), "U16": ("uint16", 16),
    "F16": ("float16", 16), "BF16": ("bfloat16", 16), "I32": ("int32", 32), "U32": ("uint32", 32),
    "F32": ("float32", 32), "F64": ("float64", 64), "I64": ("int64", 64), "U64": ("uint64", 64),
    "C64": ("complex64", 64), "F4": ("float4_e2m1fn_x2", 4), "F6_E2M3": ("float6_e2m3", 6), "F6_E3M2": ("float6_e3m2", 6),
}  # fmt: skip
FIX = "Save it again with safetensors' save_file (or save_pretrained) and check that the file was copied completely."


class SafetensorsError(ArtifactError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError(f"the header names {k!r} twice")
        out[k] = v
    return out


def parse_header(head: bytes, file_size: int) -> dict[str, Any]:
    """Check a safetensors header against the file size; return names, dtypes, shapes, totals and metadata.

    ``head`` must hold the first ``8 + header length`` bytes (fewer: the file is truncated).
    Raises SafetensorsError with what is wrong.
    """
    if file_size < 8 or len(head) < 8:
        raise SafetensorsError(f"the file is {file_size} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER:
        raise SafetensorsError(f"the header claims {n} bytes, over the {MAX_HEADER}-byte limit safetensors enforces")
    if 8 + n > file_size or len(head) < 8 + n:
        raise SafetensorsError(f"the header claims {n} bytes but the file holds {file_size - 8} after the length")
    raw = head[8 : 8 + n]
    if not raw.startswith(b"{"):
        raise SafetensorsError("the header does not start with '{'")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SafetensorsError(f"the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise SafetensorsError("__metadata__ is not a map of strings")
    data_size = file_size - 8 - n
    spans: list[tuple[int, int, str]] = []
    tensors: dict[str, Any] = {}
    parameters = 0
    for name, spec in header.items():
        if not isinstance(spec, dict) or set(spec) - {"dtype", "shape", "data_offsets"} or len(spec) != 3:
            raise SafetensorsError(f"tensor {name!r} is not {{dtype, shape, data_offsets}}")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if dtype not in DTYPES:
            raise SafetensorsError(f"tensor {name!r} has the unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise SafetensorsError(f"tensor {name!r} has a malformed shape {shape!r}")
        if (
            not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets))
            or offsets[0] > offsets[1]
        ):
            raise SafetensorsError(f"tensor {name!r} has malformed data_offsets {offsets!r}")
        numel = prod(shape)
        bits = numel * DTYPES[dtype][1]
        if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
            raise SafetensorsError(
                f"tensor {name!r} ({dtype} {shape}) needs {bits / 8:g} bytes but data_offsets span {offsets[1] - offsets[0]}"
            )
        if offsets[1] > data_size:
            raise SafetensorsError(
                f"tensor {name!r} ends at byte {offsets[1]} of the data, past its end ({data_size} bytes)"
            )
        spans.append((offsets[0], offsets[1], name))
        parameters += numel
        if len(tensors) < MAX_TENSORS_LISTED:
            tensors[name] = {"dtype": DTYPES[dtype][0], "shape": shape, "numel": numel}
    end = 0
    for begin, stop, name in sorted(spans):
        if begin < end:
            raise SafetensorsError(f"tensor {name!r} overlaps the previous tensor's bytes (offset {begin} < {end})")
        if begin > end:
            raise SafetensorsError(f"tensor {name!r} starts at {begin}, leaving a gap after byte {end}")
        end = stop
    if end != data_size:
        raise SafetensorsError(f"the tensors cover {end} bytes of data but the file holds {data_size} after the header")
    out: dict[str, Any] = {"tensor_count": len(spans), "total_parameters": parameters, "total_bytes": data_size}
    if len(spans) <= MAX_TENSORS_LISTED:
        out["tensors"] = tensors
    if metadata:
        out["metadata"] = metadata
    return out


def read_header(path: Path, label: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
                if n <= MAX_HEADER:
                    head += f.read(n)
        return parse_header(head, size)
    except OSError as exc:
        raise ArtifactError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    except SafetensorsError as exc:
        raise SafetensorsError(f"{label}: is not a valid safetensors file: {exc}. {FIX}") from None


def read_sharded(directory: Path, label: str) -> dict[str, Any]:
    """Check a sharded checkpoint: the index, every shard, and that they agree tensor for tensor."""
    index_path = directory / INDEX
    fix = f"Save the checkpoint again (save_pretrained / huggingface_hub's save_torch_state_dict) and copy every shard named in {INDEX}."
    try:
        if index_path.stat().st_size > MAX_INDEX:
            raise ArtifactError(f"{label}: {INDEX} is implausibly large. {fix}")
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{label}: {INDEX} is not readable JSON ({exc}). {fix}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise ArtifactError(f"{label}: {INDEX} has no weight_map of tensor name -> shard file. {fix}")
    shards: dict[str, dict[str, Any]] = {}
    for shard in sorted(set(weight_map.values())):
        if "/" in shard or "\\" in shard or shard in ("", ".", ".."):
            raise ArtifactError(f"{label}: {INDEX} names the shard {shard!r}, which is not a file beside it. {fix}")
        if not (directory / shard).is_file():
            raise ArtifactError(f"{label}: {INDEX} names the shard {shard}, which is missing. {fix}")
        shards[shard] = read_header(directory / shard, f"{label} ({shard})")
    for shard, info in shards.items():
        have = set(info.get("tensors", {}))
        want = {k for k, v in weight_map.items() if v == shard}
        if "tensors" in info and have != want:
            diff = sorted(have ^ want)[:5]
            raise ArtifactError(
                f"{label}: the shard {shard} and {INDEX} disagree about its tensors ({', '.join(diff)}). {fix}"
            )
    tensors: dict[str, Any] = {}
    for info in shards.values():
        tensors.update(info.get("tensors", {}))
    out: dict[str, Any] = {
        "sharded": True,
        "shards": sorted(shards),
        "tensor_count": sum(i["tensor_count"] for i in shards.values()),
        "total_parameters": sum(i["total_parameters"] for i in shards.values()),
        "total_bytes": sum(i["total_bytes"] for i in shards.values()),
    }
    if len(tensors) <= MAX_TENSORS_LISTED:
        out["tensors"] = tensors
    metadata = next((i["metadata"] for i in shards.values() if "metadata" in i), None)
    if metadata:
        out["metadata"] = metadata
    return out


class SafetensorsFormat(Format):
    name: ClassVar[str] = "safetensors"
    suffixes: ClassVar[tuple[str, ...]] = (".safetensors",)
    #: A file, or a directory holding a sharded checkpoint (see detect()).
    directory_too: ClassVar[bool] = True

    def sniff(self, path: Path, head: bytes) -> bool:
        if path.is_dir():
            return (path / INDEX).is_file() and not (path / "config.json").is_file()
        if len(head) < 9:
            return False
        # Loose on purpose: a truncated file or an oversize header is still safetensors, refused by inspect() with the reason.
        return struct.unpack("<Q", head[:8])[0] >= 2 and head[8:9] == b"{"

    def inspect(self, path: Path, label: str) -> Inspection:
        details = read_sharded(path, label) if path.is_dir() else read_header(path, label)
        return Inspection(requires=["safetensors", "numpy"], details=details)
