"""CatBoost models saved with ``save_model`` (binary ``.cbm``), read without catboost.

A ``.cbm`` file is ``b"CBM1"``, a little-endian uint32 size, a FlatBuffers ``TModelCore``
(``catboost/libs/model/flatbuffers/model.fbs``: FormatVersion, ModelTrees, InfoMap, ModelPartIds) and
then the model parts the core lists (CTR tables for categorical features). The build reads the core
with a bounded FlatBuffers reader: the tree count, the features (names and kinds: the input schema)
and the info map, where CatBoost keeps the training ``params``, ``class_params`` and its build info,
whose branch name (``tags/v1.2.10``) is the library version. The file is data; loading it runs no code
of its own.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.requirements import is_valid_version

MAGIC = b"CBM1"
MAX_CORE = 1 << 31
#: The version inside ``catboost_version_info`` (``Branch: tags/v1.2.10``), or a release summary.
_VERSION_RES = (
    re.compile(r"Branch:\s*tags/v(\d+\.\d+(?:\.\d+)?)"),
    re.compile(r"CatBoost release (\d+\.\d+(?:\.\d+)?)"),
)
#: Loss functions -> the catboost class that wraps them (catboost/core.py's CatBoostClassifier/Regressor/Ranker).
CLASSIFIER_LOSSES = frozenset(
    {"Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll", "MultiLogloss", "MultiCrossEntropy"}
)
RANKER_LOSSES = frozenset(
    {
        "YetiRank",
        "YetiRankPairwise",
        "PairLogit",
        "PairLogitPairwise",
        "QueryRMSE",
        "QuerySoftMax",
        "QueryCrossEntropy",
        "StochasticFilter",
        "StochasticRank",
        "LambdaMart",
    }
)
FIX = "Save the model again with model.save_model(path) (the default cbm format) and check that the file was copied completely."


class CbmError(Exception):
    """The bytes are not a well-formed CatBoost model core."""


class _Table:
    """One FlatBuffers table inside ``buf`` (every offset checked against the buffer)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        vtable = pos - self._i32(pos)
        self.vt_size = self._u16(vtable)
        if self.vt_size < 4 or self.vt_size % 2:
            raise CbmError(f"a vtable of {self.vt_size} bytes")
        self._u16(vtable + self.vt_size - 2)  # bounds
        self.vtable = vtable

    def _get(self, fmt: str, pos: int) -> Any:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise CbmError(f"an offset {pos} outside the model core")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def _i32(self, pos: int) -> int:
        return int(self._get("<i", pos))

    def _u32(self, pos: int) -> int:
        return int(self._get("<I", pos))

    def _u16(self, pos: int) -> int:
        return int(self._get("<H", pos))

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vt_size:
            return None
        off = self._u16(self.vtable + slot)
        return self.pos + off if off else None

    def int32(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return default if at is None else self._i32(at)

    def _target(self, index: int) -> int | None:
        at = self._field(index)
        return None if at is None else at + self._u32(at)

    def _string_at(self, pos: int) -> str:
        n = self._u32(pos)
        if pos + 4 + n > len(self.buf):
            raise CbmError("a string runs past the model core")
        try:
            return self.buf[pos + 4 : pos + 4 + n].decode("utf-8")
        except UnicodeDecodeError:
            raise CbmError("a string that is not UTF-8") from None

    def string(self, index: int) -> str | None:
        at = self._target(index)
        return None if at is None else self._string_at(at)

    def table(self, index: int) -> _Table | None:
        at = self._target(index)
        return None if at is None else _Table(self.buf, at)

    def vector_len(self, index: int) -> int:
        at = self._target(index)
        if at is None:
            return 0
        n = self._u32(at)
        if at + 4 + 4 * n > len(self.buf) and n:  # every element type here is at least 4 bytes wide
            raise CbmError("a vector runs past the model core")
        return n

    def _elements(self, index: int) -> list[int]:
        at = self._target(index)
        if at is None:
            return []
        n = self.vector_len(index)
        return [at + 4 + 4 * i + self._u32(at + 4 + 4 * i) for i in range(n)]

    def tables(self, index: int) -> list[_Table]:
        return [_Table(self.buf, p) for p in self._elements(index)]

    def strings(self, index: int) -> list[str]:
        return [self._string_at(p) for p in self._elements(index)]


def read_core(data: bytes) -> dict[str, Any]:
    """FormatVersion, the trees' count, the features and the info map of a TModelCore buffer."""
    try:
        root = _Table(data, struct.unpack_from("<I", data, 0)[0])
        trees = root.table(1)
        info: dict[str, str] = {}
        for kv in root.tables(2):
            key, value = kv.string(0), kv.string(1)
            if key is not None and value is not None:
                info[key] = value
        core: dict[str, Any] = {
            "format_version": root.string(0),
            "info": info,
            "parts": root.strings(3),
            "features": [],
        }
        if trees is not None:
            core["trees"] = trees.vector_len(2)  # TreeSizes
            core["approx_dimension"] = trees.int32(0, 1)
            # TFloatFeature: HasNans 0, Index 1, FlatIndex 2, Borders 3, FeatureId 4;
            # TCatFeature / TTextFeature / TEmbeddingFeature: Index 0, FlatIndex 1, FeatureId 2.
            for kind, index, flat, name in (
                ("numerical", 5, 2, 4),
                ("categorical", 4, 1, 2),
                ("text", 12, 1, 2),
                ("embedding", 14, 1, 2),
            ):
                for t in trees.tables(index):
                    core["features"].append({"index": t.int32(flat, -1), "name": t.string(name) or "", "type": kind})
    except (struct.error, RecursionError) as exc:
        raise CbmError(str(exc)) from None
    core["features"].sort(key=lambda f: f["index"])
    return core


def read_model_bytes(data: bytes) -> dict[str, Any]:
    """A whole ``.cbm`` in memory (a pickled CatBoost keeps one)."""
    return _read(io.BytesIO(data), len(data))


def read_model(path: Path) -> dict[str, Any]:
    """Read a ``.cbm`` file's core and walk its parts (bounded: every size is checked against the file)."""
    with open(path, "rb") as f:
        return _read(f, os.fstat(f.fileno()).st_size)


def _read(f: BinaryIO, total: int) -> dict[str, Any]:
    head = f.read(8)
    if len(head) < 8 or not head.startswith(MAGIC):
        raise CbmError("it does not start with the CBM1 signature")
    size = struct.unpack_from("<I", head, 4)[0]
    if size > MAX_CORE or 8 + size > total:
        raise CbmError(f"the model core claims {size} bytes but {total - 8} follow the header (truncated?)")
    core = read_core(f.read(size))
    _check_parts(f, 8 + size, total, core["parts"])
    return core


def _check_parts(f: BinaryIO, pos: int, total: int, parts: list[str]) -> None:
    """The parts after the core must fill the file exactly.

    ``static_provider_v1`` (the CTR tables of categorical features) is a uint32 count of tables, each a
    uint32 size and that many bytes; other part kinds are only required to be there.
    """
    if not parts:
        if pos != total:
            raise CbmError(f"{total - pos} bytes follow a model core that lists no further parts")
        return
    if any(p != "static_provider_v1" for p in parts):
        if pos == total:
            raise CbmError(f"the core lists model parts ({', '.join(parts)}) but the file ends after it (truncated?)")
        return

    def u32() -> int:
        nonlocal pos
        if pos + 4 > total:
            raise CbmError(f"the model parts end early at offset {pos} (truncated?)")
        f.seek(pos)
        pos += 4
        return int(struct.unpack("<I", f.read(4))[0])

    for _ in parts:
        for _ in range(u32()):
            n = u32()
            if pos + n > total:
                raise CbmError(f"a CTR table of {n} bytes at offset {pos} runs past the end of the file (truncated?)")
            pos += n
    if pos != total:
        raise CbmError(f"{total - pos} bytes follow the model's last part")


def library_version(info: dict[str, str]) -> str | None:
    text = info.get("catboost_version_info", "")
    for pattern in _VERSION_RES:
        m = pattern.search(text)
        if m and is_valid_version(m.group(1)):
            return m.group(1)
    return None


def model_class(params: Any) -> str | None:
    """``"classifier"``, ``"regressor"`` or ``"ranker"`` from the training params' loss function."""
    if not isinstance(params, dict):
        return None
    loss = params.get("loss_function")
    name = loss.get("type") if isinstance(loss, dict) else loss if isinstance(loss, str) else None
    if not isinstance(name, str):
        return None
    name = name.split(":", 1)[0]
    if name in CLASSIFIER_LOSSES:
        return "classifier"
    if name in RANKER_LOSSES:
        return "ranker"
    return "regressor"


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def describe(core: dict[str, Any]) -> dict[str, Any]:
    info = core["info"]
    details: dict[str, Any] = {"format_version": core["format_version"], "trees": core.get("trees", 0)}
    version = library_version(info)
    if version:
        details["catboost_version"] = version
    params = _json(info.get("params"))
    cls = model_class(params)
    if cls:
        details["model_class"] = cls
    if isinstance(params, dict):
        loss = params.get("loss_function")
        if isinstance(loss, dict) and isinstance(loss.get("type"), str):
            details["loss_function"] = loss["type"]
        boosting = params.get("boosting_options")
        if isinstance(boosting, dict) and isinstance(boosting.get("iterations"), int):
            details["iterations"] = boosting["iterations"]
    class_params = _json(info.get("class_params"))
    if isinstance(class_params, dict):
        details["class_params"] = class_params
    if core["parts"]:
        details["parts"] = core["parts"]
    features = core["features"]
    if features:
        details["input_schema"] = {
            "n_features": len(features),
            "features": [f["name"] for f in features],
            "feature_types": [f["type"] for f in features],
        }
    return details


class CatBoostFormat(Format):
    name: ClassVar[str] = "catboost"
    suffixes: ClassVar[tuple[str, ...]] = (".cbm",)

    def sniff(self, path: Path, head: bytes) -> bool:
        return head.startswith(MAGIC) and len(head) >= 8

    def inspect(self, path: Path, label: str) -> Inspection:
        try:
            core = read_model(path)
        except OSError as exc:
            raise ArtifactError(f"{label}: cannot be read ({exc.strerror or exc})") from None
        except CbmError as exc:
            raise ArtifactError(
                f"{label}: is not a readable CatBoost model ({exc}); catboost's load_model would refuse it too. {FIX}"
            ) from None
        details = describe(core)
        version = details.get("catboost_version")
        if version is None:
            details["unread"] = "no catboost version in the model's build info; the requirement is unversioned"
            return Inspection(requires=["catboost"], frameworks={}, details=details)
        return Inspection(requires=[f"catboost>={version}"], frameworks={"catboost": version}, details=details)
