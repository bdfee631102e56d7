"""ONNX models (``.onnx``): the ModelProto read with the wire-format reader, loaded with onnxruntime.

An ONNX file is a serialized ``onnx.ModelProto``. The build reads the IR version, the opset imports,
the producer and the graph's inputs and outputs (names, element types, shapes) straight from the
protobuf fields, seeking past the weights, so neither ``onnx`` nor ``onnxruntime`` is needed at build
time and a large model costs a few reads. An ONNX file holds no code that runs at load, so there is no
globals policy to apply; what runs is onnxruntime's own operator set.

Field numbers are from ``onnx/onnx.proto`` (IR version 10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.protobuf import LEN, VARINT, Message, WireFormatError

#: TensorProto.DataType -> numpy-style names (what ``InferenceSession.get_inputs()`` reports as tensor(...)).
ELEM_TYPES: dict[int, str] = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2", 20: "float8e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4e2m1", 24: "float8e8m0", 25: "uint2", 26: "int2", 27: "float6e2m3",
    28: "float6e3m2",
}  # fmt: skip
#: ModelProto fields a real file starts with (ir_version = 1 first; writers emit fields in order).
_MODEL_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25})
MAX_IR_VERSION = 64  # IR 11 is current; anything far above is not an ONNX file
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _type(msg: Message) -> dict[str, Any]:
    """TypeProto: tensor_type = 1, sequence_type = 4, map_type = 5, sparse_tensor_type = 8, optional_type = 9."""
    for f in msg.fields():
        if f.number in (1, 8) and f.wire_type == LEN:
            tensor = msg.sub(f)
            out: dict[str, Any] = {"kind": "tensor" if f.number == 1 else "sparse_tensor"}
            for tf in tensor.fields():
                if tf.number == 1 and tf.wire_type == VARINT:  # elem_type
                    out["dtype"] = ELEM_TYPES.get(tf.value, f"type{tf.value}")
                elif tf.number == 2 and tf.wire_type == LEN:  # TensorShapeProto: dim = 1
                    shape_msg = tensor.sub(tf)
                    dims: list[int | str | None] = []
                    for sf in shape_msg.fields():
                        if sf.number != 1:
                            continue
                        dim_msg = shape_msg.sub(sf)
                        dim: int | str | None = None
                        for df in dim_msg.fields():
                            if df.number == 1 and df.wire_type == VARINT:  # dim_value
                                dim = _int64(df.value)
                            elif df.number == 2 and df.wire_type == LEN:  # dim_param ("batch", "N")
                                dim = dim_msg.string(df)
                        dims.append(dim)
                    out["shape"] = dims
            return out
        if f.number in (4, 9) and f.wire_type == LEN:  # Sequence/Optional: elem_type = 1 (TypeProto)
            inner_msg = msg.sub(f)
            elem: dict[str, Any] = {}
            for sf in inner_msg.fields():
                if sf.number == 1 and sf.wire_type == LEN:
                    elem = _type(inner_msg.sub(sf))
            return {"kind": "sequence" if f.number == 4 else "optional", "elem": elem}
        if f.number == 5 and f.wire_type == LEN:  # Map: key_type = 1 (elem type), value_type = 2 (TypeProto)
            map_msg = msg.sub(f)
            out = {"kind": "map"}
            for mf in map_msg.fields():
                if mf.number == 1 and mf.wire_type == VARINT:
                    out["key"] = ELEM_TYPES.get(mf.value, f"type{mf.value}")
                elif mf.number == 2 and mf.wire_type == LEN:
                    out["value"] = _type(map_msg.sub(mf))
            return out
    return {}


def _value_info(msg: Message) -> dict[str, Any]:
    """ValueInfoProto: name = 1, type = 2, doc_string = 3."""
    info: dict[str, Any] = {"name": ""}
    for f in msg.fields():
        if f.number == 1 and f.wire_type == LEN:
            info["name"] = msg.string(f)
        elif f.number == 2 and f.wire_type == LEN:
            info.update(_type(msg.sub(f)))
    return info


def _initializer(msg: Message) -> tuple[str, bool]:
    """TensorProto's name (8) and whether its data lives in an external file (data_location = 14)."""
    name, external = "", False
    for f in msg.fields():
        if f.number == 8 and f.wire_type == LEN:
            name = msg.string(f)
        elif f.number == 14 and f.wire_type == VARINT and f.value == EXTERNAL:
            external = True
    return name, external


def _graph(msg: Message) -> dict[str, Any]:
    """GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12."""
    graph: dict[str, Any] = {"name": "", "inputs": [], "outputs": [], "nodes": 0}
    initializers: set[str] = set()
    external: list[str] = []
    for f in msg.fields():
        if f.number == 1:
            graph["nodes"] += 1
        elif f.number == 2 and f.wire_type == LEN:
            graph["name"] = msg.string(f)
        elif f.number == 5 and f.wire_type == LEN:
            name, ext = _initializer(msg.sub(f))
            initializers.add(name)
            if ext:
                external.append(name)
        elif f.number == 11 and f.wire_type == LEN:
            graph["inputs"].append(_value_info(msg.sub(f)))
        elif f.number == 12 and f.wire_type == LEN:
            graph["outputs"].append(_value_info(msg.sub(f)))
    # Before IR 4 every initializer was also listed as a graph input; callers never feed those.
    graph["inputs"] = [i for i in graph["inputs"] if i["name"] not in initializers]
    graph["external"] = external
    return graph


def read_model(msg: Message) -> dict[str, Any]:
    """ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, domain = 4, model_version = 5,
    graph = 7, opset_import = 8 (OperatorSetIdProto: domain = 1, version = 2), metadata_props = 14."""
    model: dict[str, Any] = {"opset_import": {}}
    graph: dict[str, Any] | None = None
    for f in msg.fields():
        if f.number == 1 and f.wire_type == VARINT:
            model["ir_version"] = f.value
        elif f.number == 2 and f.wire_type == LEN:
            model["producer_name"] = msg.string(f)
        elif f.number == 3 and f.wire_type == LEN:
            model["producer_version"] = msg.string(f)
        elif f.number == 4 and f.wire_type == LEN:
            model["domain"] = msg.string(f)
        elif f.number == 5 and f.wire_type == VARINT:
            model["model_version"] = _int64(f.value)
        elif f.number == 7 and f.wire_type == LEN:
            graph = _graph(msg.sub(f))
        elif f.number == 8 and f.wire_type == LEN:
            opset = msg.sub(f)
            domain, version = "", 0
            for of in opset.fields():
                if of.number == 1 and of.wire_type == LEN:
                    domain = opset.string(of)
                elif of.number == 2 and of.wire_type == VARINT:
                    version = _int64(of.value)
            model["opset_import"][domain or "ai.onnx"] = version
        elif f.number == 14 and f.wire_type == LEN:
            entry = msg.sub(f)
            key = value = ""
            for ef in entry.fields():
                if ef.number == 1 and ef.wire_type == LEN:
                    key = entry.string(ef)
                elif ef.number == 2 and ef.wire_type == LEN:
                    value = entry.string(ef)
            model.setdefault("metadata_props", {})[key] = value
    model["graph"] = graph
    return model


def _dims(shape: list[Any] | None) -> list[Any] | None:
    return None if shape is None else [d if isinstance(d, int) and d >= 0 else None for d in shape]


class OnnxFormat(Format):
    name: ClassVar[str] = "onnx"
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)

    def sniff(self, path: Path, head: bytes) -> bool:
        # A ModelProto starts with its ir_version (field 1, varint), then another ModelProto field.
        if not head.startswith(b"\x08"):
            return False
        seen: list[Any] = []
        try:
            for f in Message.from_bytes(head, str(path)).fields():
                seen.append(f)
                if len(seen) == 2:
                    break
        except ArtifactError:
            pass  # the 64-byte head cuts a later field short; what was read before still counts
        if not seen or seen[0].number != 1 or seen[0].wire_type != VARINT or not 1 <= seen[0].value <= MAX_IR_VERSION:
            return False
        return len(seen) < 2 or seen[1].number in _MODEL_FIELDS

    def inspect(self, path: Path, label: str) -> Inspection:
        fix = "Export the model again (e.g. skl2onnx.to_onnx, torch.onnx.export) and check that the file was copied completely."
        try:
            with open(path, "rb") as f:
                model = read_model(Message.open_file(f, label))
        except OSError as exc:
            raise ArtifactError(f"{label}: cannot be read ({exc.strerror or exc})") from None
        except WireFormatError as exc:
            raise ArtifactError(f"{exc} {fix}") from None
        graph = model["graph"]
        if "ir_version" not in model or graph is None:
            raise ArtifactError(
                f"{label}: is a protobuf message without the ir_version and graph of an ONNX model. {fix}"
            )
        if graph["external"]:
            names = ", ".join(graph["external"][:3]) + (" ..." if len(graph["external"]) > 3 else "")
            raise ArtifactError(
                f"{label}: keeps tensors ({names}) in external data files beside it, which a single-file "
                "artifact does not carry. Save it as one file (onnx.save_model(model, path, "
                "save_as_external_data=False); models under 2 GB fit), or package the folder with "
                '`format = "raw"` and open it with onnxruntime yourself.'
            )
        inputs = [{"name": i["name"], **{k: v for k, v in i.items() if k != "name"}} for i in graph["inputs"]]
        outputs = [{"name": o["name"], **{k: v for k, v in o.items() if k != "name"}} for o in graph["outputs"]]
        details: dict[str, Any] = {
            "ir_version": model["ir_version"],
            "opset_import": dict(sorted(model["opset_import"].items())),
            "producer": " ".join(filter(None, (model.get("producer_name"), model.get("producer_version")))),
            "graph": graph["name"],
            "inputs": inputs,
            "outputs": outputs,
        }
        for key in ("domain", "model_version", "metadata_props"):
            if model.get(key):
                details[key] = model[key]
        details["input_schema"] = {
            "inputs": [{"name": i["name"], "dtype": i.get("dtype"), "shape": _dims(i.get("shape"))} for i in inputs]
        }
        # The opsets decide which onnxruntime can run the graph; they are recorded above, and users who
        # need a floor write it in `requires`.
        return Inspection(requires=["onnxruntime"], frameworks={}, details=details)
