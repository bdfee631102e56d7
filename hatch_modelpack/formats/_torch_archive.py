"""What the three PyTorch zip formats share: the archive layout, its pickles and their tensors.

``torch.save`` (since 1.6), ``torch.jit.save`` and ``torch.export.save`` all write a zip whose records
sit under one top-level folder (the "archive name"), with pickles whose tensors point at storages by
*persistent id* (``('storage', StorageClass, key, location, numel)``) and storage bytes in
``data/<key>``. Everything here is read with :mod:`zipfile` and the static pickle scanner
(``persistent_ids=True``); nothing is unpickled and PyTorch is not needed at build time.

The globals ``torch.load(weights_only=True)`` admits are listed exactly in :data:`ADMITTED`, copied
from ``torch/_weights_only_unpickler.py`` (``_get_allowed_globals``, PyTorch 2.13); a pickle that needs
anything else is refused unless it is the package's own class or named in ``allow-globals``.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

from hatch_modelpack.errors import ArtifactError, ScanError, UnsafePickleError
from hatch_modelpack.scanning import Call, Global, Persistent, ScanResult, SDict, scan_bytes

#: The pickle that ``torch.save(..., _use_new_zipfile_serialization=False)`` starts with (protocol 2, magic number).
LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
ZIP_MAGIC = b"PK\x03\x04"
#: A data.pkl holds structure, not tensor bytes: a few KB for a large model. Anything past this is not a checkpoint.
MAX_PICKLE = 256 << 20
MAX_JSON = 64 << 20
MAX_TENSORS_LISTED = 4096
#: torch.save's zip format needs PyTorch 1.6; torch.load(weights_only=True), which load() uses, 1.13.
ZIP_FORMAT_FLOOR = "1.13"
#: torch.serialization.safe_globals, for the classes allow-globals admits.
SAFE_GLOBALS_FLOOR = "2.5"

_ADMITTED: dict[str, str] = {
    "_codecs": "encode",
    "builtins": "bytearray complex set",
    "collections": "Counter OrderedDict",
    "torch": "BFloat16Storage BFloat16Tensor BoolStorage BoolTensor ByteStorage ByteTensor CharStorage CharTensor ComplexDoubleStorage ComplexFloatStorage DoubleStorage DoubleTensor FloatStorage FloatTensor HalfStorage HalfTensor IntStorage IntTensor LongStorage LongTensor QInt32Storage QInt8Storage QUInt2x4Storage QUInt4x2Storage QUInt8Storage ShortStorage ShortTensor Size Tensor bfloat16 bits16 bits1x8 bits2x4 bits4x2 bits8 bool complex128 complex32 complex64 device float16 float32 float4_e2m1fn_x2 float64 float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu int1 int16 int2 int3 int32 int4 int5 int6 int64 int7 int8 per_channel_affine per_channel_affine_float_qparams per_channel_symmetric per_tensor_affine per_tensor_symmetric qint32 qint8 quint2x4 quint4x2 quint8 uint1 uint16 uint2 uint3 uint32 uint4 uint5 uint6 uint64 uint7 uint8",
    "torch._tensor": "_rebuild_from_type_v2",
    "torch._utils": "_rebuild_device_tensor_from_cpu_tensor _rebuild_device_tensor_from_numpy _rebuild_meta_tensor_no_storage _rebuild_nested_tensor _rebuild_parameter _rebuild_parameter_with_state _rebuild_qtensor _rebuild_sparse_tensor _rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_wrapper_subclass",
    "torch.cuda": "BFloat16Storage BFloat16Tensor BoolStorage BoolTensor ByteStorage ByteTensor CharStorage CharTensor ComplexDoubleStorage ComplexFloatStorage DoubleStorage DoubleTensor FloatStorage FloatTensor HalfStorage HalfTensor IntStorage IntTensor LongStorage LongTensor ShortStorage ShortTensor",
    "torch.cuda.sparse": "BFloat16Tensor ByteTensor CharTensor DoubleTensor FloatTensor HalfTensor IntTensor LongTensor ShortTensor",
    "torch.nn.parameter": "Parameter",
    "torch.serialization": "_get_layout",
    "torch.sparse": "BFloat16Tensor ByteTensor CharTensor DoubleTensor FloatTensor HalfTensor IntTensor LongTensor ShortTensor",
    "torch.storage": "TypedStorage UntypedStorage",
}  # fmt: skip

#: (module, name) pairs ``torch.load(weights_only=True)`` admits without ``safe_globals``.
ADMITTED: frozenset[tuple[str, str]] = frozenset((m, n) for m, names in _ADMITTED.items() for n in names.split())

#: Legacy storage classes -> (dtype, bytes per element).
STORAGES: dict[str, tuple[str, int]] = {
    "FloatStorage": ("float32", 4), "DoubleStorage": ("float64", 8), "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2), "LongStorage": ("int64", 8), "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2), "CharStorage": ("int8", 1), "ByteStorage": ("uint8", 1), "BoolStorage": ("bool", 1),
    "ComplexFloatStorage": ("complex64", 8), "ComplexDoubleStorage": ("complex128", 16), "QInt8Storage": ("qint8", 1),
    "QUInt8Storage": ("quint8", 1), "QInt32Storage": ("qint32", 4), "QUInt4x2Storage": ("quint4x2", 1),
    "QUInt2x4Storage": ("quint2x4", 1), "UntypedStorage": ("uint8", 1),
}  # fmt: skip
_REBUILD_TENSOR = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_tensor"),
}
_REBUILD_PARAMETER = {("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")}


@dataclass
class Archive:
    """The records of one PyTorch zip, keyed by their name under the archive folder."""

    path: Path | bytes  # a file, or the bytes of a zip nested in another archive (pt2 sample inputs)
    prefix: str  # the archive folder, e.g. "model"
    records: dict[str, zipfile.ZipInfo]

    def open(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(self.path) if isinstance(self.path, bytes) else self.path)

    def has_dir(self, name: str) -> bool:
        return any(r.startswith(name + "/") for r in self.records)


def read_archive(path: Path | bytes, label: str, fix: str) -> Archive:
    """The zip's records, refusing layouts PyTorch's reader would read differently from :mod:`zipfile`."""
    try:
        with zipfile.ZipFile(io.BytesIO(path) if isinstance(path, bytes) else path) as zf:
            infos = zf.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ArtifactError(f"{label}: is not a readable zip archive ({exc}). {fix}") from None
    if not infos:
        raise ArtifactError(f"{label}: is an empty zip archive, not a PyTorch file. {fix}")
    prefix = infos[0].filename.split("/", 1)[0]
    records: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        head, sep, rest = info.filename.partition("/")
        if head != prefix or not sep:
            raise ArtifactError(
                f"{label}: holds {info.filename!r} outside its archive folder {prefix!r}; PyTorch writes every record under one folder. {fix}"
            )
        if rest in records:
            raise ArtifactError(
                f"{label}: holds the record {info.filename!r} twice; readers disagree on which one counts, so the file is refused. {fix}"
            )
        if not info.is_dir():
            records[rest] = info
    return Archive(path, prefix, records)


def archive_kind(path: Path) -> str | None:
    """ "torch", "torchscript" or "pt2" from the record names of a PyTorch zip; None for anything else."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if not names:
        return None
    prefix = names[0].split("/", 1)[0] + "/"
    rest = {n[len(prefix) :] for n in names if n.startswith(prefix)}
    if "archive_format" in rest or any(r.startswith("models/") and r.endswith(".json") for r in rest):
        return "pt2"
    if "constants.pkl" in rest and any(r.startswith("code/") for r in rest):
        return "torchscript"
    if "data.pkl" in rest and "constants.pkl" not in rest and not any(r.startswith("code/") for r in rest):
        return "torch"
    return None


def read_record(archive: Archive, name: str, label: str, limit: int, fix: str) -> bytes:
    info = archive.records.get(name)
    if info is None:
        raise ArtifactError(f"{label}: has no {archive.prefix}/{name} record. {fix}")
    if info.file_size > limit:
        raise ArtifactError(
            f"{label}: its record {info.filename} is {info.file_size} bytes, over the {limit} bytes a PyTorch file holds there. {fix}"
        )
    try:
        with archive.open() as zf:
            data = zf.read(info)
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
        raise ArtifactError(f"{label}: its record {info.filename} cannot be read ({exc}). {fix}") from None
    if len(data) != info.file_size:
        raise ArtifactError(f"{label}: its record {info.filename} is truncated. {fix}")
    return data


def scan_pickle(data: bytes, what: str, fix: str) -> ScanResult:
    try:
        return scan_bytes(data, "pickle", what, persistent_ids=True)
    except ScanError as exc:
        raise ScanError(
            f"{exc}. hatch-modelpack reads PyTorch pickles without unpickling them and refuses what it cannot fully account for. {fix}"
        ) from None


@dataclass
class Tensors:
    """Tensors found in a pickle's symbolic value, with the storages they point at."""

    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    storages: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (dtype, numel)
    count: int = 0
    parameters: int = 0
    nbytes: int = 0

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tensor_count": self.count,
            "total_parameters": self.parameters,
            "total_bytes": self.nbytes,
        }
        if self.count <= MAX_TENSORS_LISTED:
            out["tensors"] = self.tensors
        return out


def _int_tuple(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple) and all(type(v) is int and v >= 0 for v in value):
        return value
    if (
        isinstance(value, Call)
        and (value.func.module, value.func.name) == ("torch", "Size")
        and isinstance(value.args, tuple)
        and len(value.args) == 1
    ):
        return _int_tuple(value.args[0])
    return None


def _storage(pid: Any, archive: Archive, label: str, fix: str) -> tuple[str, str, int]:
    """(key, dtype, numel) of a ``('storage', cls, key, location, numel)`` persistent id, checked against the zip."""
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], Global)):
        raise ArtifactError(
            f"{label}: a pickle refers to the persistent id {pid!r}, which is not a PyTorch storage. {fix}"
        )
    _, cls, key, location, numel = pid
    if (cls.module, cls.name) not in ADMITTED or cls.name not in STORAGES:
        raise ArtifactError(
            f"{label}: a storage has the class {cls}, which torch.load(weights_only=True) does not admit. {fix}"
        )
    if not (isinstance(key, str) and isinstance(location, str) and type(numel) is int and numel >= 0):
        raise ArtifactError(f"{label}: a storage reference is malformed ({pid!r}). {fix}")
    dtype, itemsize = STORAGES[cls.name]
    record = archive.records.get(f"data/{key}")
    if record is None:
        raise ArtifactError(
            f"{label}: a tensor points at the storage {key!r}, but the archive has no {archive.prefix}/data/{key} record. {fix}"
        )
    if record.file_size < numel * itemsize:
        raise ArtifactError(
            f"{label}: the storage {archive.prefix}/data/{key} holds {record.file_size} bytes, but its tensor needs {numel * itemsize}; the file is truncated or corrupt. {fix}"
        )
    return key, dtype, numel


def collect_tensors(root: Any, archive: Archive, label: str, fix: str) -> Tensors:
    """Walk the symbolic value: each rebuilt tensor gets its name (state-dict key path), dtype, shape and size."""
    out = Tensors()
    seen: set[int] = set()

    def tensor(call: Call, name: str) -> bool:
        func = (call.func.module, call.func.name)
        if func in _REBUILD_PARAMETER and isinstance(call.args, tuple) and call.args and isinstance(call.args[0], Call):
            return tensor(call.args[0], name)
        if func not in _REBUILD_TENSOR or not isinstance(call.args, tuple) or len(call.args) < 4:
            return False
        storage, offset, shape, stride = call.args[:4]
        if not isinstance(storage, Persistent):
            raise ArtifactError(f"{label}: the tensor {name or '(root)'} is not backed by a storage record. {fix}")
        key, dtype, numel = _storage(storage.pid, archive, label, fix)
        shape_t, stride_t = _int_tuple(shape), _int_tuple(stride)
        if (
            shape_t is None
            or stride_t is None
            or len(shape_t) != len(stride_t)
            or type(offset) is not int
            or offset < 0
        ):
            raise ArtifactError(
                f"{label}: the tensor {name or '(root)'} has a malformed shape, stride or offset. {fix}"
            )
        elements = prod(shape_t)
        if func == ("torch._utils", "_rebuild_tensor_v3") and len(call.args) > 6 and isinstance(call.args[6], Global):
            dtype = call.args[6].name  # new dtypes (float8, uint16...) live in untyped storages
        if (
            func != ("torch._utils", "_rebuild_tensor_v3")
            and elements
            and offset + sum((d - 1) * s for d, s in zip(shape_t, stride_t, strict=True)) >= numel
        ):
            raise ArtifactError(
                f"{label}: the tensor {name or '(root)'} reaches past the end of its storage {key!r}. {fix}"
            )
        out.count += 1
        out.parameters += elements
        out.storages[key] = (dtype, numel)
        if out.count <= MAX_TENSORS_LISTED:
            out.tensors[name or f"tensor{out.count - 1}"] = {"dtype": dtype, "shape": list(shape_t), "numel": elements}
        return True

    def walk(value: Any, name: str, depth: int) -> None:
        if depth > 64 or id(value) in seen:
            return
        if isinstance(value, Call):
            seen.add(id(value))
            if tensor(value, name):
                return
            walk(value.args, name, depth + 1)
            walk(value.state, name, depth + 1)
            pairs: list[tuple[Any, Any]] = value.items
        elif isinstance(value, SDict):
            seen.add(id(value))
            pairs = value.items
        elif isinstance(value, (list, tuple)):
            seen.add(id(value))
            pairs = [(str(i), v) for i, v in enumerate(value)]
        elif isinstance(value, Persistent):
            _storage(value.pid, archive, label, fix)
            return
        else:
            return
        for k, v in pairs:
            walk(v, f"{name}.{k}" if name else str(k), depth + 1)

    walk(root, "", 0)
    out.nbytes = sum(numel * STORAGES_BY_DTYPE.get(dtype, 1) for dtype, numel in out.storages.values())
    return out


STORAGES_BY_DTYPE = {dtype: size for dtype, size in STORAGES.values() if dtype != "uint8"} | {"uint8": 1}

#: Module prefixes of whole pickled nn.Modules and optimizers: classes, not data.
_MODULE_PREFIXES = ("torch.nn.modules.", "torch.optim.", "torch.jit.", "torch.fx.")


def whole_module(globals_: set[Global]) -> str | None:
    """The torch class that marks a pickled ``nn.Module`` (or optimizer), if the pickle has one."""
    for g in sorted(globals_, key=str):
        if any(g.module.startswith(p) or g.module == p[:-1] for p in _MODULE_PREFIXES):
            return str(g)
    return None


def _allowed(g: Global, allow: tuple[str, ...]) -> bool:
    """``allow-globals`` entries: "module.Name" exactly, or "module.*" for the module's top-level names."""
    return str(g) in allow or ("." not in g.name and any(p.endswith(".*") and g.module == p[:-2] for p in allow))


def _in_package(g: Global, package: str) -> bool:
    return g.module == package or g.module.startswith(package + ".")


def review_globals(
    globals_: set[Global],
    package: str,
    allow: tuple[str, ...],
    label: str,
    key: str,
    extra: frozenset[tuple[str, str]] = frozenset(),
    extra_prefixes: tuple[str, ...] = (),
) -> list[list[str]]:
    """Refuse every global outside the exact allowlist; return the (module, name) pairs the loader must admit.

    Additions are the package's own classes and ``allow-globals`` entries, and even those never admit
    what the general policy always refuses (os, builtins.eval, ...).
    """
    from hatch_modelpack.safety import check_global  # only for what no setting may admit (os.system, eval...)

    admitted: list[list[str]] = []
    refused: list[str] = []
    for g in sorted(globals_, key=str):
        pair = (g.module, g.name)
        if (
            pair in ADMITTED
            or pair in extra
            or any(g.module == p or g.module.startswith(p + ".") for p in extra_prefixes)
        ):
            continue
        finding = check_global(g, package, allow)
        if finding is not None and not finding.overridable:
            raise UnsafePickleError(
                f"{label}: its pickle needs {finding.name}, which {finding.reason}; no setting admits it, and torch.load(weights_only=True) refuses it too. Do not ship this file: save plain tensors (the model's state_dict()) and build again."
            )
        if _in_package(g, package) or _allowed(g, allow):
            admitted.append([g.module, g.name])
            continue
        refused.append(str(g))
    if refused:
        raise UnsafePickleError(
            f"{label}: loading it needs globals that torch.load(weights_only=True) does not admit: {', '.join(refused)}. "
            f"If they are your own classes and you trust them, add allow-globals = {refused!r} to [{key}] (they are "
            "then admitted with torch.serialization.safe_globals at load); otherwise save plain tensors, e.g. the "
            "model's state_dict(), and build again."
        )
    return admitted


_DEF = re.compile(r"^  def (\w+)\(", re.MULTILINE)


def class_methods(code: str, cls: str) -> list[str]:
    """Method names of ``class cls`` in a TorchScript code file (its top-level ``def`` lines)."""
    start = code.find(f"class {cls}(")
    if start < 0:
        return []
    end = code.find("\nclass ", start + 1)
    return sorted(set(_DEF.findall(code[start : end if end > 0 else len(code)])))
