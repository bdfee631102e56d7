"""Static reading of pickle and joblib streams, without executing them.

The build must know what a pickle will import (for the safety check and to infer run-time
requirements) and what versions it records (scikit-learn writes ``_sklearn_version`` into every
estimator's state), but unpickling at build time would run the artifact's code on the build machine.
So this module walks the opcodes with :mod:`pickletools`' opcode table and evaluates them on a
*symbolic* stack: constants stay constants, containers stay containers, and every global or call
becomes an inert record. Nothing is imported and nothing is called.

joblib interleaves raw array buffers with the pickle stream: after the ``BUILD`` of a
``NumpyArrayWrapper`` the unpickler reads the array bytes (or a nested pickle for object arrays)
straight from the file. The scanner knows that layout, computes the buffer size from the wrapper's
``shape`` and ``dtype`` and skips it, so a multi-gigabyte forest is scanned at the speed of its
opcodes, not its bytes. Compressed joblib files are read through streaming decompressors.

The scanner fails closed: an opcode, protocol, structure or size it cannot account for raises
:class:`~hatch_modelpack.errors.ScanError`; it never returns a result for a stream it did not read
to the end.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickletools
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hatch_modelpack.errors import ScanError

#: Byte strings longer than this are skipped, not held in memory (array buffers in plain pickles).
INLINE_BYTES_LIMIT = 1 << 20
#: A protocol-0 text line longer than this is not something a real pickler writes.
LINE_LIMIT = 1 << 16
#: Chunk size for skipping through compressed streams.
SKIP_CHUNK = 1 << 20

_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_OLD_JOBLIB_WRAPPERS = {("joblib.numpy_pickle", "NDArrayWrapper"), ("joblib.numpy_pickle", "ZNDArrayWrapper")}
_DTYPE_GLOBALS = {("numpy", "dtype"), ("numpy.core.multiarray", "dtype"), ("numpy._core.multiarray", "dtype")}
_DTYPE_STR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)$")

# Magic numbers joblib uses to pick a decompressor (joblib/compressor.py).
_COMPRESSIONS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF", "joblib-zfile"),
    (b"\x78", "zlib"),
)


# --------------------------------------------------------------------------------------------------
# Symbolic values


@dataclass(frozen=True)
class Global:
    """A global the unpickler would import: ``module.name``."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Call:
    """The result of calling (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``) something; never evaluated."""

    func: Any
    args: Any
    state: Any = None


@dataclass(eq=False)
class SDict:
    """A dict built by the stream; a list of pairs, since symbolic keys need not be hashable."""

    items: list[tuple[Any, Any]] = field(default_factory=list)

    def get(self, key: str) -> Any:
        for k, v in reversed(self.items):
            if k == key and isinstance(k, str):
                return v
        return None


@dataclass(frozen=True)
class Opaque:
    """A value the scanner does not keep: a large byte string, an array buffer."""

    what: str


@dataclass
class ScanResult:
    """What a stream references and records, read without executing it."""

    kind: str  # "pickle" or "joblib"
    compression: str | None
    protocol: int
    globals: set[Global] = field(default_factory=set)
    recorded_versions: dict[str, set[str]] = field(default_factory=dict)
    arrays_skipped: int = 0

    def global_names(self) -> list[str]:
        return sorted(str(g) for g in self.globals)


# --------------------------------------------------------------------------------------------------
# Streams


class _Stream:
    """A read-only byte stream with exact reads, bounded lines and cheap forward skips."""

    def __init__(self, raw: IO[bytes], size: int | None, what: str) -> None:
        self._raw = raw
        self._size = size  # known for uncompressed files: skips are bounds-checked and seek
        self._pos = 0
        self.what = what

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ScanError(f"{self.what}: unbounded read requested")
        if self._size is not None and self._pos + n > self._size:
            raise ScanError(
                f"{self.what}: the stream claims {n} more bytes at offset {self._pos} but the file ends "
                f"at {self._size}; the file is truncated or corrupt"
            )
        data = self._raw.read(n)
        self._pos += len(data)
        return data

    def read_exact(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise ScanError(f"{self.what}: the stream ends early at offset {self._pos}; the file is truncated")
        return data

    def readline(self, limit: int = -1) -> bytes:  # noqa: ARG002 - pickletools calls readline()
        line = self._raw.readline(LINE_LIMIT + 1)
        self._pos += len(line)
        if len(line) > LINE_LIMIT:
            raise ScanError(f"{self.what}: a text opcode argument is longer than {LINE_LIMIT} bytes")
        if self._size is not None and self._pos > self._size:
            raise ScanError(f"{self.what}: read past the end of the file")
        return line

    def skip(self, n: int) -> None:
        if n < 0:
            raise ScanError(f"{self.what}: negative length at offset {self._pos}")
        if self._size is not None:
            if self._pos + n > self._size:
                raise ScanError(
                    f"{self.what}: an array of {n} bytes at offset {self._pos} runs past the end of the file "
                    f"({self._size} bytes); the file is truncated or corrupt"
                )
            self._raw.seek(n, os.SEEK_CUR)
            self._pos += n
            return
        left = n
        while left:
            chunk = self._raw.read(min(left, SKIP_CHUNK))
            if not chunk:
                raise ScanError(f"{self.what}: the compressed stream ends inside an array buffer; it is truncated")
            left -= len(chunk)
            self._pos += len(chunk)

    def at_eof(self) -> bool:
        if self._size is not None:
            return self._pos >= self._size
        return not self._raw.read(1)


def detect_compression(head: bytes) -> str | None:
    """The compression joblib would detect from a file's first bytes, or None for a plain stream."""
    if head[:1] == b"\x80" or not head:
        return None
    for magic, name in _COMPRESSIONS:
        if head.startswith(magic):
            return name
    return None


def _open_stream(path: Path, what: str) -> tuple[_Stream, str | None, IO[bytes]]:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        head = fh.read(8)
        fh.seek(0)
        compression = detect_compression(head)
        size = os.fstat(fh.fileno()).st_size
        if compression is None:
            return _Stream(fh, size, what), None, fh
        raw: Any
        if compression == "gzip":
            raw = gzip.GzipFile(fileobj=fh, mode="rb")
        elif compression == "bz2":
            raw = bz2.BZ2File(fh, mode="rb")
        elif compression == "xz":
            raw = lzma.LZMAFile(fh, mode="rb", format=lzma.FORMAT_XZ)
        elif compression == "lzma":
            raw = lzma.LZMAFile(fh, mode="rb", format=lzma.FORMAT_ALONE)
        elif compression == "zlib":
            raw = io.BufferedReader(_ZlibStream(fh), buffer_size=SKIP_CHUNK)
        elif compression == "lz4":
            raise ScanError(
                f"{what}: the file is compressed with lz4, which the scanner cannot read without the lz4 "
                "package; save it with compress=('zlib', 3) or uncompressed instead"
            )
        else:
            raise ScanError(
                f"{what}: the file uses the joblib format from before joblib 0.10 (a 'ZF' header), which "
                "the scanner does not read; load and re-save it with a current joblib"
            )
        return _Stream(_Decompressing(raw, what), None, what), compression, fh
    except BaseException:
        fh.close()
        raise


class _ZlibStream(io.RawIOBase):
    """A raw zlib stream (what joblib's ``compress='zlib'`` writes), decompressed incrementally."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._dec = zlib.decompressobj()
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            if self._dec.eof:
                return 0
            data = self._dec.unconsumed_tail or self._raw.read(SKIP_CHUNK)
            if not data:
                raise ScanError("the zlib stream is truncated")
            try:
                self._buf = self._dec.decompress(data, SKIP_CHUNK)
            except zlib.error as exc:
                raise ScanError(f"the zlib stream is corrupt ({exc})") from None
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Decompressing:
    """Turns decompressor errors into ScanError so corrupt streams fail closed with a clear message."""

    def __init__(self, raw: Any, what: str) -> None:
        self._raw = raw
        self._what = what

    def _call(self, fn: Any, *args: Any) -> bytes:
        try:
            return fn(*args)
        except ScanError as exc:
            raise ScanError(f"{self._what}: {exc}") from None
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
            raise ScanError(f"{self._what}: the compressed stream is corrupt or truncated ({exc})") from None

    def read(self, n: int) -> bytes:
        return self._call(self._raw.read, n)

    def readline(self, limit: int) -> bytes:
        return self._call(self._raw.readline, limit)


# --------------------------------------------------------------------------------------------------
# The symbolic machine

_SIZED = {
    # opcode name -> (length struct format, value kind)
    "BINBYTES": ("<I", "bytes"),
    "BINBYTES8": ("<Q", "bytes"),
    "BYTEARRAY8": ("<Q", "bytes"),
    "BINUNICODE": ("<I", "str"),
    "BINUNICODE8": ("<Q", "str"),
    "BINSTRING": ("<i", "bytes"),
    "LONG4": ("<i", "long"),
}


class _Machine:
    def __init__(self, stream: _Stream, result: ScanResult) -> None:
        self.s = stream
        self.r = result
        self.what = stream.what

    def fail(self, msg: str) -> ScanError:
        return ScanError(f"{self.what}: {msg} (at offset {self.s.tell()}); the scanner fails closed")

    def run(self) -> None:
        """Read one pickle, up to and including its STOP opcode."""
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: dict[int, Any] = {}

        def pop() -> Any:
            if not stack:
                raise self.fail("stack underflow")
            return stack.pop()

        def pop_mark() -> list[Any]:
            nonlocal stack
            if not metastack:
                raise self.fail("no MARK to pop to")
            items = stack
            stack = metastack.pop()
            return items

        def top() -> Any:
            if not stack:
                raise self.fail("stack underflow")
            return stack[-1]

        def add_global(module: Any, name: Any) -> Global:
            if not isinstance(module, str) or not isinstance(name, str):
                raise self.fail("a global is named by something other than constant strings")
            g = Global(module, name)
            self.r.globals.add(g)
            if (module, name) in _OLD_JOBLIB_WRAPPERS:
                raise ScanError(
                    f"{self.what}: the file uses joblib's format from before 0.10, which keeps arrays in "
                    "separate .npy files; load and re-save it with a current joblib"
                )
            return g

        while True:
            code = self.s.read(1)
            if not code:
                raise ScanError(f"{self.what}: the pickle stream ends before its STOP opcode; the file is truncated")
            op = _OPCODES.get(code)
            if op is None:
                raise self.fail(f"unknown opcode byte {code!r}: this is not a pickle stream")
            name = op.name
            if name in _SIZED:
                arg = self._read_sized(name)
            elif op.arg is None:
                arg = None
            else:
                try:
                    arg = op.arg.reader(self.s)
                except ScanError:
                    raise
                except (ValueError, struct.error, UnicodeDecodeError) as exc:
                    raise self.fail(f"bad argument for {name} ({exc})") from None

            if name == "PROTO":
                if not 0 <= arg <= 5:
                    raise self.fail(f"unsupported pickle protocol {arg}")
                self.r.protocol = max(self.r.protocol, arg)
            elif name == "FRAME":
                pass  # framing is a buffering hint; opcodes continue inline
            elif name == "STOP":
                value = pop()
                if stack or metastack:
                    raise self.fail("values left on the stack at STOP")
                self._after_build(value)  # no-op unless a wrapper is the whole pickle
                return
            elif name == "MARK":
                metastack.append(stack)
                stack = []
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(top())
            elif name in {
                "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
            }:  # fmt: skip
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name == "NEWTRUE":
                stack.append(True)
            elif name == "NEWFALSE":
                stack.append(False)
            elif name in {"EMPTY_TUPLE"}:
                stack.append(())
            elif name == "TUPLE":
                items = pop_mark()
                stack.append(tuple(items))
            elif name in {"TUPLE1", "TUPLE2", "TUPLE3"}:
                n = int(name[-1])
                items = [pop() for _ in range(n)][::-1]
                stack.append(tuple(items))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                items = pop_mark()
                stack.append(items)
            elif name == "APPEND":
                v = pop()
                lst = top()
                if isinstance(lst, list):
                    lst.append(v)
                # Appending to a symbolic object calls its append/extend: the object's class is a
                # global that the safety check sees, so nothing more to record.
            elif name == "APPENDS":
                items = pop_mark()
                lst = top()
                if isinstance(lst, list):
                    lst.extend(items)
            elif name == "EMPTY_DICT":
                stack.append(SDict())
            elif name == "DICT":
                items = pop_mark()
                if len(items) % 2:
                    raise self.fail("DICT with an odd number of items")
                stack.append(SDict(list(zip(items[::2], items[1::2]))))
            elif name == "SETITEM":
                v = pop()
                k = pop()
                d = top()
                if isinstance(d, SDict):
                    d.items.append((k, v))
            elif name == "SETITEMS":
                items = pop_mark()
                if len(items) % 2:
                    raise self.fail("SETITEMS with an odd number of items")
                d = top()
                if isinstance(d, SDict):
                    d.items.extend(zip(items[::2], items[1::2]))
            elif name == "EMPTY_SET":
                stack.append(Call(Global("builtins", "set"), ()))
            elif name == "ADDITEMS":
                pop_mark()
                top()
            elif name == "FROZENSET":
                items = pop_mark()
                stack.append(Call(Global("builtins", "frozenset"), tuple(items)))
            elif name == "GLOBAL":
                module, _, gname = str(arg).partition(" ")
                stack.append(add_global(module, gname))
            elif name == "STACK_GLOBAL":
                gname = pop()
                module = pop()
                stack.append(add_global(module, gname))
            elif name == "INST":
                module, _, gname = str(arg).partition(" ")
                cls = add_global(module, gname)
                items = pop_mark()
                stack.append(Call(cls, tuple(items)))
            elif name == "OBJ":
                items = pop_mark()
                if not items:
                    raise self.fail("OBJ without a class")
                stack.append(Call(items[0], tuple(items[1:])))
            elif name == "REDUCE":
                args = pop()
                func = pop()
                stack.append(Call(func, args))
            elif name == "NEWOBJ":
                args = pop()
                cls = pop()
                stack.append(Call(cls, args))
            elif name == "NEWOBJ_EX":
                kwargs = pop()
                args = pop()
                cls = pop()
                stack.append(Call(cls, (args, kwargs)))
            elif name == "BUILD":
                state = pop()
                obj = top()
                if isinstance(obj, Call):
                    obj.state = state
                self._record_state(state)
                replacement = self._after_build(obj)
                if replacement is not None:
                    stack[-1] = replacement
            elif name in {"PUT", "BINPUT", "LONG_BINPUT"}:
                memo[int(arg)] = top()
            elif name == "MEMOIZE":
                memo[len(memo)] = top()
            elif name in {"GET", "BINGET", "LONG_BINGET"}:
                key = int(arg)
                if key not in memo:
                    raise self.fail(f"memo key {key} is read before it is written")
                stack.append(memo[key])
            elif name in {"PERSID", "BINPERSID"}:
                raise self.fail(
                    "the stream uses persistent IDs, which a plain unpickler cannot resolve and which "
                    "hide objects from this scan"
                )
            elif name in {"EXT1", "EXT2", "EXT4"}:
                raise self.fail(
                    "the stream uses the copyreg extension registry, which names globals by number "
                    "and cannot be resolved statically"
                )
            elif name in {"NEXT_BUFFER", "READONLY_BUFFER"}:
                raise self.fail("the stream needs out-of-band buffers, which a file cannot provide")
            else:  # pragma: no cover - every opcode pickletools knows is handled above
                raise self.fail(f"opcode {name} is not understood")

    def _read_sized(self, name: str) -> Any:
        fmt, kind = _SIZED[name]
        n = struct.unpack(fmt, self.s.read_exact(struct.calcsize(fmt)))[0]
        if n < 0:
            raise self.fail(f"negative length for {name}")
        if kind == "long":
            if n > INLINE_BYTES_LIMIT:
                raise self.fail(f"an integer of {n} bytes")
            return int.from_bytes(self.s.read_exact(n), "little", signed=True)
        if n > INLINE_BYTES_LIMIT:
            self.s.skip(n)
            return Opaque(f"{n} bytes")
        data = self.s.read_exact(n)
        if kind == "str":
            try:
                return data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise self.fail(f"invalid UTF-8 in {name}") from None
        return data

    def _record_state(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) states
            state = state[0]
        if isinstance(state, SDict):
            version = state.get("_sklearn_version")
            if isinstance(version, str):
                self.r.recorded_versions.setdefault("scikit-learn", set()).add(version)

    def _after_build(self, obj: Any) -> Any:
        """Skip the array buffer that joblib writes right after a NumpyArrayWrapper's BUILD."""
        if not isinstance(obj, Call):
            return None
        cls = obj.func
        if isinstance(cls, Global) and (cls.module, cls.name) == ("copyreg", "_reconstructor"):
            cls = obj.args[0] if isinstance(obj.args, tuple) and obj.args else None
        if not (isinstance(cls, Global) and (cls.module, cls.name) == _JOBLIB_WRAPPER):
            return None
        if self.r.kind != "joblib":
            raise ScanError(
                f"{self.what}: was written by joblib.dump (it holds joblib array wrappers), so pickle.load "
                'cannot read it; declare format = "joblib" or give it the .joblib suffix'
            )
        state = obj.state
        if not isinstance(state, SDict):
            raise self.fail("a NumpyArrayWrapper without a state dict")
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise self.fail("a NumpyArrayWrapper whose shape is not a tuple of sizes")
        itemsize, has_object = self._dtype_size(state.get("dtype"))
        if has_object:
            _Machine(self.s, self.r).run()  # joblib pickles object arrays as a nested pickle
        else:
            alignment = state.get("numpy_array_alignment_bytes")
            if alignment is not None:
                if not isinstance(alignment, int):
                    raise self.fail("a NumpyArrayWrapper with a non-integer alignment")
                pad = self.s.read_exact(1)[0]
                self.s.skip(pad)
            count = 1
            for d in shape:
                count *= d
            self.s.skip(count * itemsize)
        self.r.arrays_skipped += 1
        return Opaque("ndarray")

    def _dtype_size(self, dtype: Any) -> tuple[int, bool]:
        """Item size and whether it holds Python objects, from a pickled ``numpy.dtype``."""
        if not (isinstance(dtype, Call) and isinstance(dtype.func, Global)):
            raise self.fail("a NumpyArrayWrapper whose dtype is not a pickled numpy.dtype")
        if (dtype.func.module, dtype.func.name) not in _DTYPE_GLOBALS:
            raise self.fail(f"a NumpyArrayWrapper whose dtype is built by {dtype.func}")
        args = dtype.args
        if not (isinstance(args, tuple) and args and isinstance(args[0], str)):
            raise self.fail("a numpy.dtype with unexpected arguments")
        m = _DTYPE_STR.match(args[0])
        if not m:
            raise self.fail(f"a numpy dtype {args[0]!r} the scanner cannot size")
        kind, digits = m.group(1), m.group(2)
        state = dtype.state
        if kind == "O" or self._fields_have_object(state):
            return 0, True
        elsize = None
        if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
            elsize = state[5]
        if digits:
            size = int(digits)
            if elsize is not None and kind in "VUS" and elsize != size:
                raise self.fail(f"dtype {args[0]!r} disagrees with its recorded item size {elsize}")
            return size, False
        if kind == "b" or kind == "?":
            return 1, False
        if elsize is not None:
            return elsize, False
        raise self.fail(f"a numpy dtype {args[0]!r} without an item size")

    def _fields_have_object(self, state: Any) -> bool:
        if not (isinstance(state, tuple) and len(state) >= 5 and isinstance(state[4], SDict)):
            return False
        for _, spec in state[4].items:
            if isinstance(spec, tuple) and spec and isinstance(spec[0], Call):
                sub = spec[0]
                if isinstance(sub.args, tuple) and sub.args and isinstance(sub.args[0], str):
                    if sub.args[0].lstrip("<>|=").startswith("O"):
                        return True
                if self._fields_have_object(sub.state):
                    return True
        return False


# --------------------------------------------------------------------------------------------------
# Entry points


def scan_file(path: Path, kind: str, what: str | None = None) -> ScanResult:
    """Scan a pickle (``kind="pickle"``) or joblib (``kind="joblib"``) file without executing it."""
    label = what or str(path)
    try:
        stream, compression, fh = _open_stream(path, label)
    except OSError as exc:
        raise ScanError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    with fh:
        if compression is not None and kind != "joblib":
            raise ScanError(
                f"{label}: the file is {compression}-compressed, which is joblib's layout, not a plain "
                "pickle; declare it with format = \"joblib\""
            )
        result = ScanResult(kind=kind, compression=compression, protocol=0)
        try:
            _Machine(stream, result).run()
            trailing = not stream.at_eof()
        except RecursionError:
            raise ScanError(f"{label}: the stream nests too deeply to scan; the scanner fails closed") from None
        if trailing:
            raise ScanError(
                f"{label}: there are bytes after the pickle's STOP opcode; a pickle writer does not produce "
                "that, so the file is corrupt or was tampered with"
            )
    return result


def iter_versions(result: ScanResult) -> Iterator[tuple[str, str]]:
    for dist, versions in sorted(result.recorded_versions.items()):
        for v in sorted(versions):
            yield dist, v
