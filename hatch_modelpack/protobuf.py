"""A small protobuf wire-format reader, enough to read what a SavedModel records about itself.

The build must not import TensorFlow or protobuf (the build environment stays light), and
``saved_model.pb`` can be hundreds of megabytes of graph constants. So this reader walks the file
field by field, seeks past everything it does not need, reads only small strings, and checks every
length against its enclosing message: a truncated or garbage file raises :class:`ArtifactError`
instead of allocating, looping, or returning nonsense.

Only the schema fragments needed here are encoded below (field numbers from TensorFlow's
``saved_model.proto``, ``meta_graph.proto`` and ``tensor_shape.proto``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hatch_modelpack.errors import ArtifactError

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_STRING = 1 << 20  # any string we keep (versions, names) is far smaller
MAX_DEPTH = 16

#: TensorFlow DataType enum values -> names, for the dtypes signatures use in practice.
DTYPES: dict[int, str] = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    8: "complex64",
    9: "int64",
    10: "bool",
    14: "bfloat16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    20: "resource",
    21: "variant",
    22: "uint32",
    23: "uint64",
}


class WireFormatError(ArtifactError):
    """The bytes are not a well-formed protobuf message."""


@dataclass(frozen=True)
class Field:
    number: int
    wire_type: int
    value: int  # the varint or fixed value; for LEN fields, the payload length
    offset: int  # absolute offset of a LEN field's payload


class Message:
    """A window ``[start, end)`` of a seekable binary file holding one serialized message."""

    def __init__(self, f: BinaryIO, start: int, end: int, label: str, depth: int = 0) -> None:
        self.f, self.start, self.end, self.label, self.depth = f, start, end, label, depth

    @classmethod
    def open_file(cls, f: BinaryIO, label: str) -> Message:
        size = f.seek(0, os.SEEK_END)
        return cls(f, 0, size, label)

    @classmethod
    def from_bytes(cls, data: bytes, label: str) -> Message:
        import io

        return cls(io.BytesIO(data), 0, len(data), label)

    def _error(self, what: str, pos: int) -> WireFormatError:
        return WireFormatError(
            f"{self.label}: is not a valid protobuf message ({what} at byte {pos}); the file is truncated or is not what its name says. Export the model again."
        )

    def _varint(self, pos: int) -> tuple[int, int]:
        self.f.seek(pos)
        raw = self.f.read(min(10, self.end - pos))
        result = shift = 0
        for i, b in enumerate(raw):
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result, pos + i + 1
            shift += 7
        raise self._error("a truncated or overlong varint", pos)

    def fields(self) -> Iterator[Field]:
        """Every field of the message, in file order; LEN payloads are not read."""
        pos = self.start
        while pos < self.end:
            key, pos = self._varint(pos)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                raise self._error("field number 0", pos)
            if wire_type == VARINT:
                value, pos = self._varint(pos)
                yield Field(number, wire_type, value, pos)
                continue
            if wire_type == LEN:
                length, pos = self._varint(pos)
                if length > self.end - pos:
                    raise self._error(f"a field of {length} bytes running past its message's end", pos)
                yield Field(number, wire_type, length, pos)
                pos += length
                continue
            width = {I64: 8, I32: 4}.get(wire_type)
            if width is None:  # groups are proto2-only and TensorFlow's protos do not use them
                raise self._error(f"unsupported wire type {wire_type}", pos)
            if width > self.end - pos:
                raise self._error("a truncated fixed-width field", pos)
            self.f.seek(pos)
            yield Field(number, wire_type, int.from_bytes(self.f.read(width), "little"), pos)
            pos += width
        if pos != self.end:
            raise self._error("a field running past its message's end", pos)

    def sub(self, fld: Field) -> Message:
        """The embedded message a LEN field holds."""
        if fld.wire_type != LEN:
            raise self._error(f"field {fld.number} has wire type {fld.wire_type}, expected a message", fld.offset)
        if self.depth >= MAX_DEPTH:
            raise self._error("messages nested too deeply", fld.offset)
        return Message(self.f, fld.offset, fld.offset + fld.value, self.label, self.depth + 1)

    def string(self, fld: Field) -> str:
        """The UTF-8 string a LEN field holds (bounded: strings here are short)."""
        if fld.wire_type != LEN:
            raise self._error(f"field {fld.number} has wire type {fld.wire_type}, expected a string", fld.offset)
        if fld.value > MAX_STRING:
            raise self._error(f"a {fld.value}-byte string where a short one was expected", fld.offset)
        self.f.seek(fld.offset)
        data = self.f.read(fld.value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error("a string that is not UTF-8", fld.offset) from None


# -- the SavedModel schema fragments we read ---------------------------------------------------


@dataclass
class MetaGraphInfo:
    tags: list[str] = field(default_factory=list)
    tensorflow_version: str = ""
    tensorflow_git_version: str = ""
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SavedModelInfo:
    schema_version: int = 0
    meta_graphs: list[MetaGraphInfo] = field(default_factory=list)


def _map_entry(msg: Message) -> tuple[str, Field | None]:
    """A map<string, Message> entry: key = 1, value = 2."""
    key, value = "", None
    for f in msg.fields():
        if f.number == 1:
            key = msg.string(f)
        elif f.number == 2:
            value = f
    return key, value


def _tensor_info(msg: Message) -> dict[str, Any]:
    """TensorInfo: name = 1, dtype = 2, tensor_shape = 3 (TensorShapeProto: dim = 2 {size = 1}, unknown_rank = 3)."""
    info: dict[str, Any] = {}
    for f in msg.fields():
        if f.number == 2 and f.wire_type == VARINT:
            info["dtype"] = DTYPES.get(f.value, f"dtype{f.value}")
        elif f.number == 3:
            shape = msg.sub(f)
            dims: list[int | None] | None = []
            for sf in shape.fields():
                if sf.number == 2 and dims is not None:
                    size = None
                    dim = shape.sub(sf)
                    for df in dim.fields():
                        if df.number == 1 and df.wire_type == VARINT:
                            v = df.value - (1 << 64) if df.value >= 1 << 63 else df.value  # int64, -1 = unknown
                            size = v if v >= 0 else None
                    dims.append(size)
                elif sf.number == 3 and sf.wire_type == VARINT and sf.value:
                    dims = None
            info["shape"] = dims
    return info


def _signature(msg: Message) -> dict[str, Any]:
    """SignatureDef: inputs = 1, outputs = 2 (map<string, TensorInfo>), method_name = 3."""
    sig: dict[str, Any] = {"inputs": {}, "outputs": {}}
    for f in msg.fields():
        if f.number in (1, 2):
            key, value = _map_entry(msg.sub(f))
            sig["inputs" if f.number == 1 else "outputs"][key] = _tensor_info(msg.sub(value)) if value else {}
        elif f.number == 3:
            sig["method_name"] = msg.string(f)
    return sig


def _meta_graph(msg: Message) -> MetaGraphInfo:
    """MetaGraphDef: meta_info_def = 1 (tags = 4, tensorflow_version = 5, tensorflow_git_version = 6), signature_def = 5."""
    info = MetaGraphInfo()
    for f in msg.fields():
        if f.number == 1:
            meta = msg.sub(f)
            for mf in meta.fields():
                if mf.number == 4:
                    info.tags.append(meta.string(mf))
                elif mf.number == 5:
                    info.tensorflow_version = meta.string(mf)
                elif mf.number == 6:
                    info.tensorflow_git_version = meta.string(mf)
        elif f.number == 5:
            key, value = _map_entry(msg.sub(f))
            info.signatures[key] = _signature(msg.sub(value)) if value else {}
        # graph_def (2), object_graph_def (7) and the rest are skipped by seeking, never read.
    return info


def read_saved_model(msg: Message) -> SavedModelInfo:
    """SavedModel: saved_model_schema_version = 1, meta_graphs = 2."""
    info = SavedModelInfo()
    for f in msg.fields():
        if f.number == 1 and f.wire_type == VARINT:
            info.schema_version = f.value
        elif f.number == 2:
            info.meta_graphs.append(_meta_graph(msg.sub(f)))
    return info


def read_saved_model_file(path: Path, label: str) -> SavedModelInfo:
    """Parse ``saved_model.pb`` without TensorFlow; raise ArtifactError if it is not a SavedModel."""
    try:
        with open(path, "rb") as f:
            info = read_saved_model(Message.open_file(f, label))
    except OSError as exc:
        raise ArtifactError(f"{label}: {path.name} cannot be read ({exc.strerror or exc})") from None
    if not info.meta_graphs:
        raise ArtifactError(
            f"{label}: {path.name} holds no MetaGraph, so it is not a SavedModel TensorFlow can load. Export the model again with model.export(dir) or tf.saved_model.save(model, dir)."
        )
    return info
