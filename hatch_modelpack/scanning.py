"""Static reading of pickle and joblib streams, without executing them.

The build must know what a pickle will import (for the safety check and to infer run-time
requirements) and what versions it records (scikit-learn writes ``_sklearn_version`` into every
estimator's state), but unpickling at build time would run the artifact's code on the build machine.
So this module walks the opcodes (the opcode table and argument readers of :mod:`pickletools`) and
evaluates them on a *symbolic* stack: constants stay constants, containers stay containers, and every
global or call becomes an inert record. Nothing is imported and nothing is called.

It reads the stream the way the unpickler will, not the way a well-behaved pickler writes it:

- globals are resolved as ``find_class`` does: Python 2 names are mapped to Python 3 ones for
  protocols below 3 (``commands.getoutput`` *is* ``subprocess.getoutput``), and dotted names
  (``numpy`` + ``testing.runstring``) are kept whole so the policy sees the full attribute path;
- strings and module names reach ``STACK_GLOBAL`` through a real memo (``PUT``/``MEMOIZE``/``GET``);
- only a global may be called (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``): calling the result of a
  call (a method fetched by ``getattr``, a ``functools.partial``) cannot be followed statically;
- ``BUILD`` and the container opcodes must act on an object the stream created: ``BUILD`` on a
  global is ``setattr`` on a class or module (monkey-patching, the trick behind modelscan#85);
- bytes that hold a nested pickle (also ``_codecs.encode(..., "latin1")`` in protocol 0-2) are
  scanned too, and their globals count like the outer ones.

joblib interleaves raw array buffers with the pickle stream: after the ``BUILD`` of a
``NumpyArrayWrapper`` the unpickler reads the array bytes (or a nested pickle for object arrays)
straight from the file, *outside* pickle's framing. The scanner knows that layout, computes the
buffer size from the wrapper's ``shape`` and ``dtype`` exactly as numpy will, and skips it, so a
multi-gigabyte forest is scanned at the speed of its opcodes, not its bytes. Anything that could make
joblib read a buffer the scanner does not (a wrapper passed to a call before its ``BUILD``, a buffer
inside a pickle frame, the wrapper class reached under another name) fails the scan. Compressed joblib
files are read through streaming decompressors, and bytes after the compressed stream are refused.

The scanner fails closed: an opcode, protocol, structure or size it cannot account for raises
:class:`~hatch_modelpack.errors.ScanError`; it never returns a result for a stream it did not read
to the end.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import contextlib
import io
import lzma
import os
import pickletools
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hatch_modelpack.errors import ScanError

#: Byte strings longer than this are skipped, not held in memory (array buffers in plain pickles).
INLINE_BYTES_LIMIT = 1 << 20
#: A protocol-0 text line longer than this is refused (protocol 0 writes arrays as one text line).
LINE_LIMIT = 1 << 24
#: Chunk size for reading and skipping through compressed streams.
SKIP_CHUNK = 1 << 20
#: Pickles nested in bytes deeper than this are refused.
NESTING_LIMIT = 4

_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_OLD_JOBLIB_WRAPPERS = {"joblib.numpy_pickle.NDArrayWrapper", "joblib.numpy_pickle.ZNDArrayWrapper"}
_WRAPPER_NAMES = {"NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper"}
_COPYREG_CONSTRUCTORS = {"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"}
_DTYPE_GLOBALS = {"numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype"}
_DTYPE_STR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)$")
_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"}

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
    """A global the unpickler would import: ``module.name`` (``name`` may be dotted)."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Call:
    """The result of calling (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``) a global; never evaluated."""

    func: Global
    args: Any
    state: Any = None
    #: SETITEM(S) on the call's result (an ``OrderedDict`` state dict): pairs, as for SDict.
    items: list[tuple[Any, Any]] = field(default_factory=list)


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


# -- persistent ids (torch.save, torch.jit.save): begin -----------------------------------------
@dataclass(eq=False)
class Persistent:
    """What ``persistent_load(pid)`` returns (a tensor storage for torch); never resolved here.

    Only produced when a scan is asked for with ``persistent_ids=True``: the caller, which knows the
    archive the pickle lives in, must check every ``pid`` itself.
    """

    pid: Any


# -- persistent ids: end -------------------------------------------------------------------------


@dataclass
class ScanResult:
    """What a stream references and records, read without executing it."""

    kind: str  # "pickle" or "joblib"
    compression: str | None
    protocol: int
    globals: set[Global] = field(default_factory=set)
    recorded_versions: dict[str, set[str]] = field(default_factory=dict)
    arrays_skipped: int = 0
    nested_pickles: int = 0
    opcodes: int = 0
    #: The symbolic value the outermost pickle leaves at STOP (an inert Call tree, never evaluated).
    root: Any = None

    def global_names(self) -> list[str]:
        return sorted(str(g) for g in self.globals)


# --------------------------------------------------------------------------------------------------
# Streams


class _Stream:
    """A read-only byte stream with exact reads, bounded lines and cheap forward skips.

    For an uncompressed file ``size`` is known: every read and skip is checked against it first, so
    the scanner never asks for more than the file holds.
    """

    def __init__(self, raw: Any, size: int | None, what: str) -> None:
        self._raw = raw
        self._size = size
        self._pos = 0
        self.what = what

    def tell(self) -> int:
        return self._pos

    @property
    def size(self) -> int | None:
        return self._size

    def _check(self, n: int) -> None:
        if self._size is not None and self._pos + n > self._size:
            raise ScanError(
                f"{self.what}: the stream needs {n} more bytes at offset {self._pos} but the file ends at "
                f"{self._size}; the file is truncated or corrupt"
            )

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ScanError(f"{self.what}: unbounded read requested")
        self._check(n)
        data = self._raw.read(n)
        self._pos += len(data)
        return data

    def read_exact(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise ScanError(f"{self.what}: the stream ends early at offset {self._pos}; the file is truncated")
        return data

    def readline(self, limit: int = -1) -> bytes:
        """One line, bounded by LINE_LIMIT and the file's size (``limit`` is ignored)."""
        cap = LINE_LIMIT + 1
        if self._size is not None:
            cap = min(cap, self._size - self._pos)
        line = self._raw.readline(cap)
        self._pos += len(line)
        if len(line) > LINE_LIMIT:
            raise ScanError(
                f"{self.what}: a protocol-0 text argument is longer than {LINE_LIMIT} bytes; save the model "
                "with a binary pickle protocol (2 or higher)"
            )
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


class _Inflate(io.RawIOBase):
    """One compressed stream, decompressed incrementally; corrupt input and trailing bytes fail closed.

    joblib writes exactly one stream; whatever follows it is never read by ``joblib.load``, so it is
    refused rather than ignored (the stdlib file classes silently skip trailing garbage).
    """

    def __init__(self, fh: IO[bytes], compression: str, what: str) -> None:
        self._fh = fh
        self._what = what
        self._zlib = compression in ("gzip", "zlib")
        if compression == "gzip":
            self._dec: Any = zlib.decompressobj(31)
        elif compression == "zlib":
            self._dec = zlib.decompressobj()
        elif compression == "bz2":
            self._dec = bz2.BZ2Decompressor()
        elif compression == "xz":
            self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        else:
            self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        self._done = False

    def readable(self) -> bool:
        return True

    def _more(self, want: int) -> bytes:
        if self._zlib:
            data = self._dec.unconsumed_tail or self._fh.read(SKIP_CHUNK)
        else:
            data = self._fh.read(SKIP_CHUNK) if self._dec.needs_input else b""
        if not data and (self._zlib or self._dec.needs_input):
            raise ScanError(f"{self._what}: the compressed stream is truncated")
        try:
            return self._dec.decompress(data, want)
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            raise ScanError(f"{self._what}: the compressed stream is corrupt ({exc})") from None

    def readinto(self, b: Any) -> int:
        want = len(b)
        idle = 0
        while not self._done:
            if self._dec.eof:
                self._done = True
                if self._dec.unused_data or self._fh.read(1):
                    raise ScanError(
                        f"{self._what}: there are bytes after the end of the compressed stream; joblib never "
                        "reads them, so the file is corrupt or was tampered with"
                    )
                break
            out = self._more(want)
            if out:
                b[: len(out)] = out
                return len(out)
            idle += 1
            if idle > 64:
                raise ScanError(f"{self._what}: the decompressor makes no progress; the stream is corrupt")
        return 0


def _open_stream(path: Path, what: str) -> tuple[_Stream, str | None, IO[bytes]]:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        head = fh.read(8)
        fh.seek(0)
        compression = detect_compression(head)
        size = os.fstat(fh.fileno()).st_size
        if compression is None:
            return _Stream(fh, size, what), None, fh
        if compression == "lz4":
            raise ScanError(
                f"{what}: the file is compressed with lz4, which the scanner cannot read without the lz4 "
                "package; save it with compress=('zlib', 3) or uncompressed instead"
            )
        if compression == "joblib-zfile":
            raise ScanError(
                f"{what}: the file uses the joblib format from before joblib 0.10 (a 'ZF' header), which "
                "the scanner does not read; load and re-save it with a current joblib"
            )
        raw = io.BufferedReader(_Inflate(fh, compression, what), buffer_size=SKIP_CHUNK)
        return _Stream(raw, None, what), compression, fh
    except BaseException:
        fh.close()
        raise


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
_CONSTANTS = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    }
)  # fmt: skip


def _looks_like_pickle(data: bytes) -> bool:
    """A bytes value that a later ``pickle.loads`` could run: protocol 2+ header and a final STOP."""
    return len(data) >= 4 and data[:1] == b"\x80" and 2 <= data[1] <= 5 and data[-1:] == b"."


class _Machine:
    """Evaluates one pickle (up to its STOP) on symbolic values."""

    def __init__(self, stream: _Stream, result: ScanResult, *, joblib: bool, depth: int = 0, persistent_ids: bool = False) -> None:
        self.persistent_ids = persistent_ids  # persistent ids: push Persistent(pid) instead of failing
        self.s = stream
        self.r = result
        self.what = stream.what
        self.joblib = joblib  # NumpyUnpickler semantics (array buffers follow wrapper BUILDs)
        self.depth = depth
        self.proto = 0  # the unpickler's idea of the protocol: set by PROTO, drives name mapping
        self.frame_end = 0
        # Unbuilt or built NumpyArrayWrapper instances, and containers/objects that hold one.
        self._wrappers: dict[int, Any] = {}
        self._tainted: dict[int, Any] = {}

    def fail(self, msg: str) -> ScanError:
        return ScanError(f"{self.what}: {msg} (at offset {self.s.tell()}); the scanner fails closed")

    # -- globals ---------------------------------------------------------------------------------

    def resolve(self, module: Any, name: Any) -> Global:
        """The global ``find_class(module, name)`` imports, recorded for the policy check."""
        if not isinstance(module, str) or not isinstance(name, str):
            raise self.fail("a global is named by something other than constant strings")
        if not module or not name:
            raise self.fail("a global with an empty module or name")
        if self.proto < 3:  # the unpickler's fix_imports (pickle.Unpickler's default)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        g = Global(module, name)
        self.r.globals.add(g)
        full = str(g)
        if full in _OLD_JOBLIB_WRAPPERS:
            raise ScanError(
                f"{self.what}: the file uses joblib's format from before 0.10, which keeps arrays in "
                "separate .npy files; load and re-save it with a current joblib"
            )
        if name.rsplit(".", 1)[-1] in _WRAPPER_NAMES and (module, name) != _JOBLIB_WRAPPER:
            raise self.fail(f"joblib's array wrapper is reached under another name ({full})")
        return g

    # -- joblib array wrappers -------------------------------------------------------------------

    def _is_wrapper_call(self, func: Global, args: Any) -> bool:
        if (func.module, func.name) == _JOBLIB_WRAPPER:
            return True
        if str(func) in _COPYREG_CONSTRUCTORS and isinstance(args, tuple) and args:
            cls = args[0]
            return isinstance(cls, Global) and (cls.module, cls.name) == _JOBLIB_WRAPPER
        return False

    def _tainted_value(self, v: Any) -> bool:
        return id(v) in self._wrappers or id(v) in self._tainted

    def _taint_if(self, target: Any, values: Any) -> None:
        if any(self._tainted_value(v) for v in values):
            self._tainted[id(target)] = target

    def make_call(self, func: Any, args: Any, how: str) -> Call:
        if not isinstance(func, Global):
            what = "the result of another call" if isinstance(func, Call) else type(func).__name__
            raise self.fail(f"{how} calls {what}, not a global; the scanner cannot tell what that runs")
        if self._tainted_value(args) or (isinstance(args, tuple) and any(self._tainted_value(a) for a in args)):
            raise self.fail(
                f"{how} passes a joblib array wrapper to {func}; joblib would read an array buffer the "
                "scanner cannot place"
            )
        if str(func) == "_codecs.encode" and isinstance(args, tuple) and len(args) == 2:
            text, encoding = args
            if isinstance(text, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1:
                with contextlib.suppress(UnicodeEncodeError):
                    self._nested(text.encode("latin-1"))
        call = Call(func, args)
        if self._is_wrapper_call(func, args):
            if not self.joblib:
                if self.r.kind == "joblib":
                    raise self.fail("a joblib array wrapper inside a nested pickle, which plain pickle.load reads")
                raise ScanError(
                    f"{self.what}: was written by joblib.dump (it holds joblib array wrappers), so pickle.load "
                    'cannot read it; declare format = "joblib" or give it the .joblib suffix'
                )
            self._wrappers[id(call)] = call
        return call

    def _nested(self, data: bytes) -> None:
        """Scan bytes that hold a pickle: a later loads() of them runs their globals too."""
        if not _looks_like_pickle(data):
            return
        if self.depth >= NESTING_LIMIT:
            raise self.fail(f"pickles nested in bytes more than {NESTING_LIMIT} levels deep")
        where = f"{self.what} (a pickle nested in bytes before offset {self.s.tell()})"
        inner = _Stream(io.BytesIO(data), len(data), where)
        _Machine(inner, self.r, joblib=False, depth=self.depth + 1).run()
        self.r.nested_pickles += 1

    # -- the loop --------------------------------------------------------------------------------

    def _read_line_pair(self, name: str) -> tuple[str, str]:
        parts = []
        for _ in range(2):
            line = self.s.readline()
            if not line.endswith(b"\n"):
                raise self.fail(f"{name} argument is not terminated by a newline")
            try:
                parts.append(line[:-1].decode("utf-8"))
            except UnicodeDecodeError:
                raise self.fail(f"{name} argument is not UTF-8") from None
        return parts[0], parts[1]

    def run(self) -> Any:
        """Read one pickle, up to and including its STOP opcode; return the symbolic value it builds."""
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

        def container(name: str, allowed: tuple[type, ...]) -> Any:
            target = top()
            if not isinstance(target, allowed):
                kind = f"the global {target}" if isinstance(target, Global) else type(target).__name__
                raise self.fail(f"{name} modifies {kind}, not a container or object the stream created")
            return target

        while True:
            code = self.s.read(1)
            if not code:
                raise ScanError(f"{self.what}: the pickle stream ends before its STOP opcode; the file is truncated")
            op = _OPCODES.get(code)
            if op is None:
                raise self.fail(f"unknown opcode byte {code!r}: this is not a pickle stream")
            self.r.opcodes += 1
            name = op.name
            if name in _SIZED:
                arg = self._read_sized(name)
            elif name in ("GLOBAL", "INST"):
                arg = self._read_line_pair(name)
            elif op.arg is None:
                arg = None
            else:
                try:
                    arg = op.arg.reader(self.s)
                except ScanError:
                    raise
                except Exception as exc:  # pickletools' readers raise ValueError and friends on bad input
                    raise self.fail(f"bad argument for {name} ({type(exc).__name__}: {exc})") from None

            if name == "PROTO":
                if not 0 <= arg <= 5:
                    raise self.fail(f"unsupported pickle protocol {arg}")
                self.proto = arg
                self.r.protocol = max(self.r.protocol, arg)
            elif name == "FRAME":
                if self.s.tell() < self.frame_end:
                    raise self.fail("a new frame starts before the current one ends")
                if self.s.size is not None and self.s.tell() + arg > self.s.size:
                    raise self.fail(f"a frame of {arg} bytes runs past the end of the file, which is truncated")
                self.frame_end = self.s.tell() + arg
            elif name == "STOP":
                value = pop()
                if stack or metastack:
                    raise self.fail("values left on the stack at STOP")
                return value
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
            elif name in _CONSTANTS:
                if isinstance(arg, bytes):
                    self._nested(arg)
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name == "NEWTRUE":
                stack.append(True)
            elif name == "NEWFALSE":
                stack.append(False)
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "TUPLE":
                items = pop_mark()
                value = tuple(items)
                self._taint_if(value, items)
                stack.append(value)
            elif name in {"TUPLE1", "TUPLE2", "TUPLE3"}:
                n = int(name[-1])
                items = [pop() for _ in range(n)][::-1]
                value = tuple(items)
                self._taint_if(value, items)
                stack.append(value)
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                items = pop_mark()
                self._taint_if(items, items)
                stack.append(items)
            elif name == "APPEND":
                v = pop()
                target = container(name, (list, Call))
                if isinstance(target, list):
                    target.append(v)
                self._taint_if(target, (v,))
            elif name == "APPENDS":
                items = pop_mark()
                target = container(name, (list, Call))
                if isinstance(target, list):
                    target.extend(items)
                self._taint_if(target, items)
            elif name == "EMPTY_DICT":
                stack.append(SDict())
            elif name == "DICT":
                items = pop_mark()
                if len(items) % 2:
                    raise self.fail("DICT with an odd number of items")
                value = SDict(list(zip(items[::2], items[1::2], strict=True)))
                self._taint_if(value, items)
                stack.append(value)
            elif name == "SETITEM":
                v = pop()
                k = pop()
                target = container(name, (SDict, Call))
                if isinstance(target, (SDict, Call)):
                    target.items.append((k, v))
                self._taint_if(target, (k, v))
            elif name == "SETITEMS":
                items = pop_mark()
                if len(items) % 2:
                    raise self.fail("SETITEMS with an odd number of items")
                target = container(name, (SDict, Call))
                if isinstance(target, (SDict, Call)):
                    target.items.extend(zip(items[::2], items[1::2], strict=True))
                self._taint_if(target, items)
            elif name == "EMPTY_SET":
                stack.append(Call(Global("builtins", "set"), ()))
            elif name == "ADDITEMS":
                items = pop_mark()
                target = container(name, (Call,))
                self._taint_if(target, items)
            elif name == "FROZENSET":
                items = pop_mark()
                value = Call(Global("builtins", "frozenset"), tuple(items))
                self._taint_if(value, items)
                stack.append(value)
            elif name == "GLOBAL":
                stack.append(self.resolve(*arg))
            elif name == "STACK_GLOBAL":
                gname = pop()
                module = pop()
                stack.append(self.resolve(module, gname))
            elif name == "INST":
                cls = self.resolve(*arg)
                items = pop_mark()
                stack.append(self.make_call(cls, tuple(items), name))
            elif name == "OBJ":
                items = pop_mark()
                if not items:
                    raise self.fail("OBJ without a class")
                stack.append(self.make_call(items[0], tuple(items[1:]), name))
            elif name == "REDUCE":
                args = pop()
                func = pop()
                stack.append(self.make_call(func, args, name))
            elif name == "NEWOBJ":
                args = pop()
                cls = pop()
                stack.append(self.make_call(cls, args, name))
            elif name == "NEWOBJ_EX":
                kwargs = pop()
                args = pop()
                cls = pop()
                if self._tainted_value(kwargs):
                    raise self.fail("NEWOBJ_EX passes a joblib array wrapper as a keyword argument")
                stack.append(self.make_call(cls, args, name))
            elif name == "BUILD":
                state = pop()
                obj = container(name, (Call,))
                if self._tainted_value(state):
                    raise self.fail("BUILD hands a joblib array wrapper to another object's state")
                obj.state = state
                self._record_state(state)
                if id(obj) in self._wrappers:
                    stack[-1] = self._read_array(obj)
            elif name in {"PUT", "BINPUT", "LONG_BINPUT"}:
                memo[int(arg)] = top()
            elif name == "MEMOIZE":
                memo[len(memo)] = top()
            elif name in {"GET", "BINGET", "LONG_BINGET"}:
                key = int(arg)
                if key not in memo:
                    raise self.fail(f"memo key {key} is read before it is written")
                stack.append(memo[key])
            elif name in {"PERSID", "BINPERSID"} and self.persistent_ids:  # persistent ids
                stack.append(Persistent(pop() if name == "BINPERSID" else arg))
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

    # -- joblib array buffers --------------------------------------------------------------------

    def _read_array(self, wrapper: Call) -> Any:
        """Skip the buffer joblib reads right after a NumpyArrayWrapper's BUILD, exactly as it will."""
        if self.s.tell() < self.frame_end:
            raise self.fail(
                "a joblib array buffer starts inside a pickle frame; joblib reads it from the file after "
                "the frame, so the stream and the scan would disagree"
            )
        state = wrapper.state
        if not isinstance(state, SDict):
            raise self.fail("a NumpyArrayWrapper without a state dict")
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise self.fail("a NumpyArrayWrapper whose shape is not a tuple of sizes")
        dtype = state.get("dtype")
        if self._has_object(dtype, 0):
            # joblib pickles object arrays with pickle.dump: a nested, plain pickle. Its value (the
            # array's symbolic reconstruction, e.g. feature_names_in_) replaces the wrapper.
            inner = _Machine(self.s, self.r, joblib=False, depth=self.depth + 1).run()
            self.r.arrays_skipped += 1
            return inner
        else:
            itemsize = self._itemsize(dtype)
            alignment = state.get("numpy_array_alignment_bytes")
            if alignment is not None:
                if type(alignment) is not int:
                    raise self.fail("a NumpyArrayWrapper with a non-integer alignment")
                pad = self.s.read_exact(1)[0]
                self.s.skip(pad)
            count = 1
            for d in shape:
                count *= d
            self.s.skip(count * itemsize)
        self.r.arrays_skipped += 1
        return Opaque("ndarray")

    def _dtype(self, dtype: Any) -> tuple[str, int | None, Any]:
        """(kind letter, digits, state) of a pickled ``numpy.dtype``; anything else fails closed."""
        if not (isinstance(dtype, Call) and str(dtype.func) in _DTYPE_GLOBALS):
            raise self.fail("a NumpyArrayWrapper whose dtype is not a pickled numpy.dtype")
        args = dtype.args
        if not (isinstance(args, tuple) and args and isinstance(args[0], str)):
            raise self.fail("a numpy.dtype with unexpected arguments")
        m = _DTYPE_STR.match(args[0])
        if not m:
            raise self.fail(f"a numpy dtype {args[0]!r} the scanner cannot size")
        return m.group(1), int(m.group(2)) if m.group(2) else None, dtype.state

    def _has_object(self, dtype: Any, depth: int) -> bool:
        if depth > 32:
            raise self.fail("a numpy dtype nested too deeply")
        kind, _, state = self._dtype(dtype)
        if kind == "O":
            return True
        if not isinstance(state, tuple):
            return False
        subarray = state[2] if len(state) >= 3 else None  # (base dtype, shape)
        if isinstance(subarray, tuple) and subarray and self._has_object(subarray[0], depth + 1):
            return True
        if len(state) >= 5 and isinstance(state[4], SDict):  # fields: name -> (dtype, offset[, title])
            for _, spec in state[4].items:
                if not (isinstance(spec, tuple) and spec):
                    raise self.fail("a structured numpy dtype with a malformed field")
                if self._has_object(spec[0], depth + 1):
                    return True
        return False

    def _itemsize(self, dtype: Any) -> int:
        """numpy's itemsize for a pickled dtype: flexible kinds take the state's elsize, as numpy does."""
        kind, digits, state = self._dtype(dtype)
        elsize = None
        if isinstance(state, tuple) and len(state) >= 6 and type(state[5]) is int and state[5] > 0:
            elsize = state[5]
        if kind in "VSU":
            if digits is None:
                raise self.fail(f"a flexible numpy dtype {kind!r} without a size")
            expected = digits * 4 if kind == "U" else digits
            if elsize is not None and elsize != expected:
                raise self.fail(f"numpy dtype {kind}{digits} disagrees with its recorded item size {elsize}")
            return expected
        if digits is not None:
            return digits
        if kind == "b":
            return 1
        raise self.fail(f"a numpy dtype {kind!r} without an item size")


# --------------------------------------------------------------------------------------------------
# Entry points


def scan_stream(stream: _Stream, kind: str, compression: str | None = None, *, persistent_ids: bool = False) -> ScanResult:
    """Scan an opened stream to its end; shared by :func:`scan_file` and :func:`scan_bytes`."""
    label = stream.what
    result = ScanResult(kind=kind, compression=compression, protocol=0)
    try:
        result.root = _Machine(stream, result, joblib=kind == "joblib", persistent_ids=persistent_ids).run()
        trailing = not stream.at_eof()
    except RecursionError:
        raise ScanError(f"{label}: the stream nests too deeply to scan; the scanner fails closed") from None
    if trailing:
        raise ScanError(
            f"{label}: there are bytes after the pickle's STOP opcode; a pickle writer does not produce "
            "that, so the file is corrupt or was tampered with"
        )
    return result


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
                'pickle; declare it with format = "joblib"'
            )
        try:
            return scan_stream(stream, kind, compression)
        except OSError as exc:
            raise ScanError(f"{label}: cannot be read ({exc.strerror or exc})") from None


def scan_bytes(data: bytes, kind: str = "pickle", what: str = "<bytes>", *, persistent_ids: bool = False) -> ScanResult:
    """Scan an in-memory, uncompressed stream (tests, nested payloads, pickles inside torch zips).

    ``persistent_ids=True`` admits PERSID/BINPERSID, leaving a :class:`Persistent` for the caller to check.
    """
    return scan_stream(_Stream(io.BytesIO(data), len(data), what), kind, persistent_ids=persistent_ids)


# --------------------------------------------------------------------------------------------------
# What the model expects as input, from the symbolic value


def _string_array(value: Any) -> list[str] | None:
    """The items of a pickled 1-D object array of strings (``feature_names_in_``), or None.

    numpy pickles object arrays as ``_reconstruct(ndarray, (0,), b"b")`` + BUILD with the state
    ``(version, shape, dtype, is_fortran, [items...])``: the items are plain pickled strings.
    """
    if not (isinstance(value, Call) and isinstance(value.func, Global) and value.func.name == "_reconstruct"):
        return None
    state = value.state
    if isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], list):
        items = state[4]
        if items and all(isinstance(v, str) for v in items):
            return list(items)
    return None


def sklearn_input_schema(value: Any, depth: int = 0) -> dict[str, Any] | None:
    """``{"n_features": 3, "features": ["a", "b", "c"]}`` for the estimator a caller feeds, or None.

    Reads ``n_features_in_`` / ``feature_names_in_`` from the pickled state of the root estimator, or
    of a Pipeline's first step (or a search's ``best_estimator_``): nothing is unpickled.
    """
    if depth > 16 or not isinstance(value, Call):
        return None
    state = value.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) states
        state = state[0]
    if not isinstance(state, SDict):
        return None
    schema: dict[str, Any] = {}
    n = state.get("n_features_in_")
    if type(n) is int:
        schema["n_features"] = n
    names = _string_array(state.get("feature_names_in_"))
    if names:
        schema["features"] = names
        schema.setdefault("n_features", len(names))
    if schema:
        return schema
    steps = state.get("steps")
    if isinstance(steps, list):
        for step in steps:
            if isinstance(step, tuple) and len(step) == 2 and isinstance(step[1], Call):  # skip "passthrough"
                return sklearn_input_schema(step[1], depth + 1)
    for key in ("best_estimator_", "estimator_", "estimator"):
        inner = sklearn_input_schema(state.get(key), depth + 1)
        if inner:
            return inner
    return None
