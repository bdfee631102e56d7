"""Keras 3 ``.keras`` archives and legacy ``.h5`` files: versions read from the file, never loaded.

A ``.keras`` file is a zip whose ``metadata.json`` records ``keras_version``; ``config.json`` gives the
input shapes cheaply. A legacy ``.h5`` file records ``keras_version`` and ``backend`` as attributes of
its root group; :func:`read_h5_root_attributes` reads them with a minimal HDF5 reader (superblock,
root object header, attribute messages, global heap for variable-length strings) so the build needs
neither h5py nor TensorFlow. If an ``.h5`` file uses HDF5 features that reader does not know, the
build still succeeds, just without a recorded version (and says so in the manifest details).
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.requirements import is_valid_version

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: The backend a Keras model needs when the file does not say: TensorFlow, for our users.
DEFAULT_BACKEND = "tensorflow"
#: Keras backends -> the distribution that provides them.
BACKENDS: dict[str, str] = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}
MAX_METADATA = 1 << 20  # metadata.json is ~100 bytes; refuse to inflate a bomb
MAX_CONFIG = 64 << 20


class H5Error(Exception):
    """The HDF5 structures are damaged: truncated, or pointing outside the file."""


class H5Unsupported(H5Error):
    """The HDF5 file uses a layout the minimal reader does not handle (not an error in the file)."""


class _H5:
    """Just enough HDF5 to read scalar string attributes of the root group."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = f.seek(0, 2)

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise H5Error(f"read of {n} bytes at {pos} is outside the file")
        self.f.seek(pos)
        return self.f.read(n)

    def uint(self, data: bytes, pos: int, n: int) -> int:
        if pos + n > len(data):
            raise H5Error("truncated structure")
        return int.from_bytes(data[pos : pos + n], "little")

    def root_attributes(self) -> dict[str, Any]:
        sb = self.read(0, 12)
        if not sb.startswith(HDF5_SIGNATURE):
            raise H5Error("no HDF5 signature at offset 0")
        version = sb[8]
        if version in (0, 1):
            head = self.read(0, 24 + (4 if version == 1 else 0))
            self.o, self.l = head[13], head[14]
            self._check_sizes()
            addrs = 24 + (4 if version == 1 else 0)
            block = self.read(addrs, 4 * self.o + 2 * self.o)
            self.base = self.uint(block, 0, self.o)
            root = self.uint(
                block, 4 * self.o + self.o, self.o
            )  # root symbol table entry: link name offset, header address
        elif version in (2, 3):
            self.o, self.l = sb[9], sb[10]
            self._check_sizes()
            block = self.read(12, 4 * self.o)
            self.base = self.uint(block, 0, self.o)
            root = self.uint(block, 3 * self.o, self.o)
        else:
            raise H5Unsupported(f"superblock version {version}")
        attrs: dict[str, Any] = {}
        for mtype, data in self.messages(self.base + root):
            if mtype == 0x0C:
                name, value = self.attribute(data)
                attrs[name] = value
        return attrs

    def _check_sizes(self) -> None:
        if self.o not in (2, 4, 8) or self.l not in (2, 4, 8):
            raise H5Unsupported("unusual offset/length sizes")

    def messages(self, addr: int) -> list[tuple[int, bytes]]:
        """Header messages of an object header (version 1 or 2), following continuation blocks."""
        out: list[tuple[int, bytes]] = []
        if self.read(addr, 4) == b"OHDR":
            head = self.read(addr, 6)
            flags = head[5]
            pos = addr + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 3)
            size = self.uint(self.read(pos, width), 0, width)
            pending = [(pos + width, size, 2, flags)]
        else:
            head = self.read(addr, 16)
            if head[0] != 1:
                raise H5Unsupported(f"object header version {head[0]}")
            pending = [(addr + 16, self.uint(head, 8, 4), 1, 0)]
        seen = 0
        while pending:
            start, size, hver, flags = pending.pop(0)
            seen += 1
            if seen > 64:
                raise H5Error("too many continuation blocks")
            block = self.read(start, size)
            pos = 0
            if hver == 2 and seen > 1:  # continuation chunks: "OCHK", messages, gap, checksum
                if not block.startswith(b"OCHK"):
                    raise H5Error("bad continuation block")
                pos, block = 4, block[:-4]
            while pos < len(block):
                if hver == 1:
                    if pos + 8 > len(block):
                        break
                    mtype, msize, mflags = self.uint(block, pos, 2), self.uint(block, pos + 2, 2), block[pos + 4]
                    pos += 8
                else:
                    if pos + 4 > len(block):  # the gap before the checksum
                        break
                    mtype, msize, mflags = block[pos], self.uint(block, pos + 1, 2), block[pos + 3]
                    pos += 4 + (2 if flags & 0x04 else 0)
                data = block[pos : pos + msize]
                if len(data) != msize:
                    raise H5Error("truncated header message")
                pos += msize
                if mflags & 0x02:  # shared message: stored elsewhere; not needed for the attributes we read
                    continue
                if mtype == 0x10:  # continuation
                    pending.append(
                        (self.base + self.uint(data, 0, self.o), self.uint(data, self.o, self.l), hver, flags)
                    )
                elif mtype == 0x15:  # attribute info: a defined fractal heap address means dense storage
                    heap = 2 + (2 if data[1] & 1 else 0)
                    if data[heap : heap + self.o] != b"\xff" * self.o:
                        raise H5Unsupported("dense attribute storage")
                else:
                    out.append((mtype, data))
        return out

    def attribute(self, data: bytes) -> tuple[str, Any]:
        version = data[0]
        name_size, dt_size, ds_size = (self.uint(data, 2 + 2 * i, 2) for i in range(3))
        pos = 8
        if version == 3:
            pos = 9
        elif version != 1 and version != 2:
            raise H5Unsupported(f"attribute message version {version}")

        def field(n: int) -> bytes:
            nonlocal pos
            chunk = data[pos : pos + n]
            pos += (n + 7) // 8 * 8 if version == 1 else n
            return chunk

        name = field(name_size).split(b"\0", 1)[0].decode("utf-8", "replace")
        dtype, space = field(dt_size), field(ds_size)
        if space[1] != 0 and not (space[1] == 1 and self.uint(space, 8 if space[0] == 1 else 4, self.l) == 1):
            return name, None  # not a scalar
        return name, self.string_value(dtype, data[pos:])

    def string_value(self, dtype: bytes, value: bytes) -> str | None:
        cls = dtype[0] & 0x0F
        size = self.uint(dtype, 4, 4)
        if cls == 3:  # fixed-length string
            return value[:size].split(b"\0", 1)[0].decode("utf-8", "replace").rstrip(" ")
        if cls == 9 and dtype[1] & 0x0F == 1:  # variable-length string: length, global heap collection, index
            length = self.uint(value, 0, 4)
            collection = self.uint(value, 4, self.o)
            index = self.uint(value, 4 + self.o, 4)
            return self.global_heap(self.base + collection, index)[:length].decode("utf-8", "replace")
        return None

    def global_heap(self, addr: int, index: int) -> bytes:
        head = self.read(addr, 8 + self.l)
        if not head.startswith(b"GCOL"):
            raise H5Error("bad global heap collection")
        size = self.uint(head, 8, self.l)
        if size > 1 << 26:
            raise H5Error("global heap collection too large")
        heap = self.read(addr, size)
        pos = 8 + self.l
        while pos + 8 + self.l <= len(heap):
            obj, osize = self.uint(heap, pos, 2), self.uint(heap, pos + 8, self.l)
            if obj == 0:
                break
            if obj == index:
                return heap[pos + 8 + self.l : pos + 8 + self.l + osize]
            pos += 8 + self.l + (osize + 7) // 8 * 8
        raise H5Error(f"global heap object {index} not found")


def read_h5_root_attributes(path: Path) -> dict[str, Any]:
    """The scalar string attributes of an HDF5 file's root group.

    Raises H5Unsupported for valid layouts this reader does not know, H5Error for damaged files.
    """
    try:
        with open(path, "rb") as f:
            return _H5(f).root_attributes()
    except (IndexError, struct.error, UnicodeError) as exc:
        raise H5Error(str(exc)) from None


def _input_shapes(config: Any) -> list[Any] | None:
    """Input shapes from a functional or sequential model's config.json, when cheaply visible."""
    if not isinstance(config, dict):
        return None
    cfg = config.get("config")
    if not isinstance(cfg, dict):
        return None
    shapes = []
    for layer in cfg.get("layers") or []:
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer":
            lc = layer.get("config") or {}
            shape = lc.get("batch_shape") or lc.get("batch_input_shape")
            if isinstance(shape, list):
                shapes.append(shape)
    if not shapes and isinstance(cfg.get("build_input_shape"), list):
        shapes.append(cfg["build_input_shape"])
    return shapes or None


def _requires(keras_version: str | None, backend: str | None) -> tuple[list[str], dict[str, str]]:
    """Keras itself (pinned later by the manifest from the recorded version) plus its backend's distribution."""
    requires = ["keras"]
    frameworks: dict[str, str] = {}
    if keras_version and is_valid_version(keras_version):
        if keras_version.split(".", 1)[0] in ("1", "2"):
            # Written by Keras 2 / tf.keras: Keras 3 still reads legacy .h5, so admit it; don't hold Keras at 2.x.
            requires = [f"keras>={keras_version}"]
        frameworks["keras"] = keras_version
    requires.append(BACKENDS.get(backend or DEFAULT_BACKEND, DEFAULT_BACKEND))
    return requires, frameworks


class KerasFormat(Format):
    name: ClassVar[str] = "keras"
    suffixes: ClassVar[tuple[str, ...]] = (".keras", ".h5", ".hdf5")

    def sniff(self, path: Path, head: bytes) -> bool:
        if head.startswith(HDF5_SIGNATURE):
            return True
        if not head.startswith(b"PK"):
            return False
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
        return "metadata.json" in names and "config.json" in names

    def inspect(self, path: Path, label: str) -> Inspection:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(HDF5_SIGNATURE):
            return self._inspect_h5(path, label)
        return self._inspect_zip(path, label)

    def _inspect_h5(self, path: Path, label: str) -> Inspection:
        details: dict[str, Any] = {"container": "h5"}
        try:
            attrs = read_h5_root_attributes(path)
        except H5Unsupported as exc:
            attrs = {}
            details["unread"] = f"keras_version not read ({exc}); requirements are unversioned"
        except H5Error as exc:
            raise ArtifactError(
                f"{label}: is a damaged HDF5 file ({exc}); keras.models.load_model could not read it either. Save the model again with model.save(path) and check that the file was copied completely."
            ) from None
        version, backend = attrs.get("keras_version"), attrs.get("backend")
        if "model_config" not in attrs and not details.get("unread"):
            raise ArtifactError(
                f'{label}: is an HDF5 file without a Keras model_config, so keras.models.load_model cannot load it (weights-only files from save_weights are not models). Save the whole model with model.save(path), or use `format = "raw"`.'
            )
        if isinstance(version, str):
            details["keras_version"] = version
        if isinstance(backend, str):
            details["backend"] = backend
        try:
            shapes = (
                _input_shapes(json.loads(attrs["model_config"])) if isinstance(attrs.get("model_config"), str) else None
            )
        except ValueError:
            shapes = None
        if shapes:
            details["input_shapes"] = shapes
            details["input_schema"] = {"inputs": [{"shape": shape} for shape in shapes]}
        requires, frameworks = _requires(
            version if isinstance(version, str) else None, backend if isinstance(backend, str) else None
        )
        return Inspection(requires=requires, frameworks=frameworks, details=details)

    def _inspect_zip(self, path: Path, label: str) -> Inspection:
        fix = "Save the model again with model.save(path) (Keras 3) and check that the file is complete."
        try:
            with zipfile.ZipFile(path) as zf:
                infos = {i.filename: i for i in zf.infolist()}
                if "metadata.json" not in infos or "config.json" not in infos:
                    raise ArtifactError(
                        f"{label}: is a zip archive without the metadata.json and config.json of a .keras file. {fix}"
                    )
                if infos["metadata.json"].file_size > MAX_METADATA or infos["config.json"].file_size > MAX_CONFIG:
                    raise ArtifactError(f"{label}: its metadata.json or config.json is implausibly large. {fix}")
                meta = json.loads(zf.read("metadata.json"))
                config = json.loads(zf.read("config.json"))
                weights = sorted(n for n in infos if n.endswith((".h5", ".npz")))
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise ArtifactError(f"{label}: is not a readable .keras archive ({exc}). {fix}") from None
        version = meta.get("keras_version") if isinstance(meta, dict) else None
        if not isinstance(version, str) or not is_valid_version(version):
            raise ArtifactError(f"{label}: metadata.json records no valid keras_version ({version!r}). {fix}")
        details: dict[str, Any] = {"container": "keras", "keras_version": version, "weights": weights}
        if isinstance(config, dict) and isinstance(config.get("class_name"), str):
            details["class_name"] = config["class_name"]
        shapes = _input_shapes(config)
        if shapes:
            details["input_shapes"] = shapes
            details["input_schema"] = {"inputs": [{"shape": shape} for shape in shapes]}
        requires, frameworks = _requires(version, None)
        return Inspection(requires=requires, frameworks=frameworks, details=details)
