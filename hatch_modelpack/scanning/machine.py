"""The symbolic pickle machine: one small handler per opcode, as CPython's ``pickle._Unpickler`` has.

It evaluates the opcodes on inert values (:mod:`~hatch_modelpack.scanning.values`): nothing is
imported and nothing is called. Each handler mirrors what the unpickler does with the same opcode;
what cannot be followed exactly fails closed:

- only a global may be called, and a copyreg constructor only instantiates a global class; a call's
  result is never called or instantiated, and ``getattr`` only fetches a literal attribute of a global
  (``getattr(ZoneInfo, "_unpickle")``), which is then checked under its full name;
- every global's use is recorded (``call``, ``value``, ``built``) for the policy;
- ``BUILD`` and the container opcodes act only on literal containers and objects the stream created;
- bytes that are, or begin, a pickle of any protocol (also bytes made at load time by
  ``_codecs.encode``/``bytes``/``bytearray``) are refused: a later ``loads`` would run them unseen;
- joblib's array wrappers are built only the way joblib writes them (``NEWOBJ`` with no arguments), and
  the buffer after their ``BUILD`` is skipped exactly as joblib reads it (:mod:`.arrays`).
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
import struct
from collections.abc import Callable
from typing import Any

from hatch_modelpack.errors import ScanError
from hatch_modelpack.scanning.arrays import wrapper_layout
from hatch_modelpack.scanning.handlers import HANDLERS as _HANDLERS
from hatch_modelpack.scanning.streams import Stream
from hatch_modelpack.scanning.values import JOBLIB_WRAPPER, Call, Global, Opaque, ScanResult, SDict, Stop

#: Byte strings longer than this are not held in memory (array buffers in plain pickles).
INLINE_BYTES_LIMIT = 1 << 20
#: Pickles nested in bytes deeper than this are refused.
NESTING_LIMIT = 4
#: A byte string whose prefix decodes as this many opcodes without a verdict is refused.
PROBE_OPCODES = 1 << 16

_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_OLD_JOBLIB_WRAPPERS = {"joblib.numpy_pickle.NDArrayWrapper", "joblib.numpy_pickle.ZNDArrayWrapper"}
_WRAPPER_NAMES = {"NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper"}
COPYREG_CONSTRUCTORS = frozenset({"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"})
GETATTR = Global("builtins", "getattr")
_BYTES_MAKERS = frozenset({"_codecs.encode", "builtins.bytes", "builtins.bytearray"})
_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"}
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
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


class _NestedPickle(Exception):
    """Raised inside a probe: the bytes begin a pickle that imports something."""


class Machine:
    """Evaluates one pickle (up to its STOP) on symbolic values."""

    def __init__(
        self,
        stream: Stream,
        result: ScanResult,
        *,
        joblib: bool,
        depth: int = 0,
        probe: bool = False,
        persistent_ids: bool = False,
    ) -> None:
        self.persistent_ids = persistent_ids  # push Persistent(pid) instead of failing (outermost pickle only)
        self.s = stream
        self.r = result
        self.what = stream.what
        self.joblib = joblib  # NumpyUnpickler semantics (array buffers follow wrapper BUILDs)
        self.depth = depth
        self.probe = probe  # only asking "do these bytes begin a pickle that imports something?"
        self.proto = 0  # the unpickler's idea of the protocol: set by PROTO, drives name mapping
        self.frame_end = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        # Unbuilt or built NumpyArrayWrapper instances, and containers/objects that hold one.
        self._wrappers: dict[int, Any] = {}
        self._tainted: dict[int, Any] = {}

    def fail(self, msg: str) -> ScanError:
        return ScanError(f"{self.what}: {msg} (at offset {self.s.tell()}); the scanner fails closed")

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> Any:
        """Read one pickle, up to and including its STOP opcode; return the symbolic value it builds."""
        count = 0
        try:
            while True:
                code = self.s.read(1)
                if not code:
                    raise ScanError(
                        f"{self.what}: the pickle stream ends before its STOP opcode; the file is truncated"
                    )
                op = _OPCODES.get(code)
                if op is None:
                    raise self.fail(f"unknown opcode byte {code!r}: this is not a pickle stream")
                count += 1
                if self.probe and count > PROBE_OPCODES:
                    raise _NestedPickle
                self.r.opcodes += 1
                _HANDLERS[op.name](self, self._read_arg(op))
        except Stop as stop:
            return stop.value

    def _read_arg(self, op: pickletools.OpcodeInfo) -> Any:
        name = op.name
        if name in _SIZED:
            return self._read_sized(name)
        if name in ("GLOBAL", "INST"):
            return self._read_line_pair(name)
        if op.arg is None:
            return None
        try:
            return op.arg.reader(self.s)  # type: ignore[arg-type]
        except ScanError:
            raise
        except Exception as exc:  # pickletools' readers raise ValueError and friends on bad input
            raise self.fail(f"bad argument for {name} ({type(exc).__name__}: {exc})") from None

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
            if kind == "bytes":
                window = self.s.window(n)
                self._probe(window)
                self.s.skip(n - window.tell())
            else:
                self.s.skip(n)
            return Opaque(f"{n} bytes")
        data = self.s.read_exact(n)
        if kind == "str":
            try:
                return data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise self.fail(f"invalid UTF-8 in {name}") from None
        return data

    # -- stack helpers ---------------------------------------------------------------------------

    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise self.fail("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow")
        return self.stack[-1]

    def target(self, name: str, allowed: tuple[type, ...]) -> Any:
        """The object an opcode modifies: a literal container, or an object a call created."""
        target = self.top()
        if not isinstance(target, allowed):
            kind = f"the global {target}" if isinstance(target, Global) else type(target).__name__
            raise self.fail(f"{name} modifies {kind}, not a container or object the stream created")
        if isinstance(target, Call):
            self.r.use(target.makes or target.func, "built")
        return target

    # -- nested pickles --------------------------------------------------------------------------

    def _probe(self, stream: Stream) -> None:
        """Refuse bytes that begin a pickle which imports something: a later ``loads`` would run it."""
        if self.depth >= NESTING_LIMIT:
            if self.probe:
                raise _NestedPickle  # fail closed: too deep to tell
            raise self.fail(f"byte strings nested more than {NESTING_LIMIT} levels deep")
        scratch = ScanResult(kind="pickle", compression=None, protocol=0)
        try:
            Machine(stream, scratch, joblib=False, depth=self.depth + 1, probe=True).run()
        except _NestedPickle:
            if self.probe:
                raise  # a pickle inside a pickle inside bytes: the outer bytes are a nested pickle too
            raise self.fail(
                "a byte string in the stream is itself a pickle that imports globals; a later pickle.loads "
                "of it would run code this scan cannot vouch for. Save the model without pickles nested in bytes"
            ) from None
        except (ScanError, RecursionError):
            return  # not a pickle that gets as far as importing anything

    def probe_bytes(self, data: bytes) -> None:
        self._probe(Stream(io.BytesIO(data), len(data), self.what))

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
        if self.probe:
            if _IDENTIFIER_PATH.match(module) and _IDENTIFIER_PATH.match(name):
                raise _NestedPickle
            raise self.fail("not a global name")
        g = Global(module, name)
        self.r.use(g, "value")
        full = str(g)
        if full in _OLD_JOBLIB_WRAPPERS:
            raise ScanError(
                f"{self.what}: the file uses joblib's format from before 0.10, which keeps arrays in "
                "separate .npy files; load and re-save it with a current joblib"
            )
        if name.rsplit(".", 1)[-1] in _WRAPPER_NAMES and g != JOBLIB_WRAPPER:
            raise self.fail(f"joblib's array wrapper is reached under another name ({full})")
        return g

    # -- calls -----------------------------------------------------------------------------------

    def tainted(self, v: Any) -> bool:
        return id(v) in self._wrappers or id(v) in self._tainted

    def taint_if(self, target: Any, values: Any) -> None:
        if any(self.tainted(v) for v in values):
            self._tainted[id(target)] = target

    def make_call(self, func: Any, args: Any, how: str) -> Any:
        """The inert result of calling ``func(*args)``; what cannot be followed exactly is refused."""
        if not isinstance(func, Global):
            what = "the result of another call" if isinstance(func, Call) else type(func).__name__
            raise self.fail(f"{how} calls {what}, not a global; the scanner cannot tell what that runs")
        if self.tainted(args) or (isinstance(args, tuple) and any(self.tainted(a) for a in args)):
            raise self.fail(
                f"{how} passes a joblib array wrapper to {func}; joblib would read an array buffer the "
                "scanner cannot place"
            )
        if func == JOBLIB_WRAPPER or (str(func) in COPYREG_CONSTRUCTORS and _first(args) == JOBLIB_WRAPPER):
            raise self.fail("a joblib array wrapper built by a call, not the way joblib.dump writes it")
        if func == GETATTR:
            return self._getattr(args)
        self.r.use(func, "call")
        call = Call(func, args)
        if str(func) in COPYREG_CONSTRUCTORS:
            cls = _first(args)
            if not isinstance(cls, Global):
                raise self.fail(f"{func} instantiates something other than a global class")
            self.r.use(cls, "call")
            call.makes = cls
            base = args[1] if str(func) == "copyreg._reconstructor" and len(args) > 1 else None
            if isinstance(base, Global):  # _reconstructor calls base.__new__ and base.__init__
                self.r.use(base, "call")
        if str(func) in _BYTES_MAKERS:
            self._made_bytes(func, args)
        return call

    def _getattr(self, args: Any) -> Global:
        """``getattr(SomeClass, "name")`` (how bound classmethods pickle), checked as ``SomeClass.name``."""
        if not (isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], Global) and type(args[1]) is str):
            raise self.fail("builtins.getattr is called on something other than a global and a literal name")
        owner, attr = args
        if not attr or (attr.startswith("__") and attr.endswith("__")):
            raise self.fail(f"builtins.getattr fetches the special attribute {attr!r}")
        g = Global(owner.module, f"{owner.name}.{attr}")
        self.r.use(g, "value")
        return g

    def _made_bytes(self, func: Global, args: Any) -> None:
        """Bytes made at load time: literal arguments only, and never a pickle."""
        if args == ():
            return
        if isinstance(args, tuple) and len(args) == 1 and type(args[0]) is bytes:
            self.probe_bytes(args[0])
            return
        if (
            isinstance(args, tuple)
            and len(args) == 1
            and isinstance(args[0], Call)
            and str(args[0].func) in _BYTES_MAKERS
        ):
            return  # bytearray(_codecs.encode(...)): the inner call's bytes were checked already
        if isinstance(args, tuple) and len(args) == 2 and type(args[0]) is str and args[1] in _LATIN1:
            try:
                self.probe_bytes(args[0].encode("latin-1"))
            except UnicodeEncodeError:
                raise self.fail(f"{func} of text that is not latin-1") from None
            return
        raise self.fail(
            f"{func} builds bytes at load time from values the scanner cannot read exactly (over 1 MiB, or not "
            "literals); save the model with pickle protocol 4 or 5"
        )

    def read_array(self, wrapper: Call) -> Any:
        """Skip the buffer joblib reads right after a NumpyArrayWrapper's BUILD, exactly as it will."""
        if self.s.tell() < self.frame_end:
            raise self.fail(
                "a joblib array buffer starts inside a pickle frame; joblib reads it from the file after "
                "the frame, so the stream and the scan would disagree"
            )
        layout = wrapper_layout(wrapper.state, self.fail)
        self.r.arrays_skipped += 1
        if layout.nested_pickle:
            # joblib pickles object arrays with pickle.dump: a nested, plain pickle. Its value (the
            # array's symbolic reconstruction, e.g. feature_names_in_) replaces the wrapper.
            return Machine(self.s, self.r, joblib=False, depth=self.depth + 1).run()
        if layout.padded:
            self.s.skip(self.s.read_exact(1)[0])
        self.s.skip(layout.nbytes)
        return Opaque("ndarray")

    def record_state(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) states
            state = state[0]
        if isinstance(state, SDict):
            version = state.get("_sklearn_version")
            if isinstance(version, str):
                self.r.recorded_versions.setdefault("scikit-learn", set()).add(version)


def _first(args: Any) -> Any:
    return args[0] if isinstance(args, tuple) and args else None


Handler = Callable[[Machine, Any], None]
