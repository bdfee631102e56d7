"""One handler per pickle opcode, keyed by opcode name: the dispatch table of the symbolic machine.

Each handler does to inert values what ``pickle._Unpickler.load_<opcode>`` does to real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hatch_modelpack.errors import WrongFormatError
from hatch_modelpack.scanning.values import JOBLIB_WRAPPER, Call, Global, Persistent, SDict, Stop

if TYPE_CHECKING:  # the machine calls the handlers; they only need its type
    from hatch_modelpack.scanning.machine import Machine

Handler = Callable[["Machine", Any], None]
HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn

    return register


# -- framing and control ---------------------------------------------------------------------------


@_handles("PROTO")
def _proto(m: Machine, arg: Any) -> None:
    if not 0 <= arg <= 5:
        raise m.fail(f"unsupported pickle protocol {arg}")
    m.proto = arg
    m.r.protocol = max(m.r.protocol, arg)


@_handles("FRAME")
def _frame(m: Machine, arg: Any) -> None:
    if m.s.tell() < m.frame_end:
        raise m.fail("a new frame starts before the current one ends")
    if m.s.size is not None and m.s.tell() + arg > m.s.size:
        raise m.fail(f"a frame of {arg} bytes runs past the end of the file, which is truncated")
    m.frame_end = m.s.tell() + arg


@_handles("STOP")
def _stop(m: Machine, arg: Any) -> None:
    value = m.pop()
    if m.stack or m.metastack:
        raise m.fail("values left on the stack at STOP")
    raise Stop(value)


@_handles("MARK")
def _mark(m: Machine, arg: Any) -> None:
    m.metastack.append(m.stack)
    m.stack = []


@_handles("POP")
def _pop(m: Machine, arg: Any) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


@_handles("POP_MARK")
def _pop_mark(m: Machine, arg: Any) -> None:
    m.pop_mark()


@_handles("DUP")
def _dup(m: Machine, arg: Any) -> None:
    m.stack.append(m.top())


# -- constants -------------------------------------------------------------------------------------


@_handles(
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING",
    "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
)  # fmt: skip
def _constant(m: Machine, arg: Any) -> None:
    if isinstance(arg, bytes):
        m.probe_bytes(arg)
    m.stack.append(arg)


@_handles("NONE")
def _none(m: Machine, arg: Any) -> None:
    m.stack.append(None)


@_handles("NEWTRUE")
def _true(m: Machine, arg: Any) -> None:
    m.stack.append(True)


@_handles("NEWFALSE")
def _false(m: Machine, arg: Any) -> None:
    m.stack.append(False)


# -- containers ------------------------------------------------------------------------------------


@_handles("EMPTY_TUPLE")
def _empty_tuple(m: Machine, arg: Any) -> None:
    m.stack.append(())


@_handles("TUPLE")
def _tuple(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    value = tuple(items)
    m.taint_if(value, items)
    m.stack.append(value)


def _tuple_of(n: int) -> Handler:
    def handler(m: Machine, arg: Any) -> None:
        items = [m.pop() for _ in range(n)][::-1]
        value = tuple(items)
        m.taint_if(value, items)
        m.stack.append(value)

    return handler


for _n in (1, 2, 3):
    HANDLERS[f"TUPLE{_n}"] = _tuple_of(_n)


@_handles("EMPTY_LIST")
def _empty_list(m: Machine, arg: Any) -> None:
    m.stack.append([])


@_handles("LIST")
def _list(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    m.taint_if(items, items)
    m.stack.append(items)


@_handles("APPEND")
def _append(m: Machine, arg: Any) -> None:
    v = m.pop()
    target = m.target("APPEND", (list, Call))
    if isinstance(target, list):
        target.append(v)
    m.taint_if(target, (v,))


@_handles("APPENDS")
def _appends(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    target = m.target("APPENDS", (list, Call))
    if isinstance(target, list):
        target.extend(items)
    m.taint_if(target, items)


@_handles("EMPTY_DICT")
def _empty_dict(m: Machine, arg: Any) -> None:
    m.stack.append(SDict())


@_handles("DICT")
def _dict(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise m.fail("DICT with an odd number of items")
    value = SDict(list(zip(items[::2], items[1::2], strict=True)))
    m.taint_if(value, items)
    m.stack.append(value)


@_handles("SETITEM")
def _setitem(m: Machine, arg: Any) -> None:
    v = m.pop()
    k = m.pop()
    target = m.target("SETITEM", (SDict, Call))
    if isinstance(target, (SDict, Call)):
        target.items.append((k, v))
    m.taint_if(target, (k, v))


@_handles("SETITEMS")
def _setitems(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise m.fail("SETITEMS with an odd number of items")
    target = m.target("SETITEMS", (SDict, Call))
    if isinstance(target, (SDict, Call)):
        target.items.extend(zip(items[::2], items[1::2], strict=True))
    m.taint_if(target, items)


@_handles("EMPTY_SET")
def _empty_set(m: Machine, arg: Any) -> None:
    m.stack.append(Call(Global("builtins", "set"), ()))


@_handles("ADDITEMS")
def _additems(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    target = m.target("ADDITEMS", (Call,))
    m.taint_if(target, items)


@_handles("FROZENSET")
def _frozenset(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    value = Call(Global("builtins", "frozenset"), tuple(items))
    m.taint_if(value, items)
    m.stack.append(value)


# -- globals and calls -----------------------------------------------------------------------------


@_handles("GLOBAL")
def _global(m: Machine, arg: Any) -> None:
    m.stack.append(m.resolve(*arg))


@_handles("STACK_GLOBAL")
def _stack_global(m: Machine, arg: Any) -> None:
    name = m.pop()
    module = m.pop()
    m.stack.append(m.resolve(module, name))


@_handles("INST")
def _inst(m: Machine, arg: Any) -> None:
    cls = m.resolve(*arg)
    items = m.pop_mark()
    m.stack.append(m.make_call(cls, tuple(items), "INST"))


@_handles("OBJ")
def _obj(m: Machine, arg: Any) -> None:
    items = m.pop_mark()
    if not items:
        raise m.fail("OBJ without a class")
    m.stack.append(m.make_call(items[0], tuple(items[1:]), "OBJ"))


@_handles("REDUCE")
def _reduce(m: Machine, arg: Any) -> None:
    args = m.pop()
    func = m.pop()
    m.stack.append(m.make_call(func, args, "REDUCE"))


@_handles("NEWOBJ")
def _newobj(m: Machine, arg: Any) -> None:
    args = m.pop()
    cls = m.pop()
    if cls == JOBLIB_WRAPPER and isinstance(cls, Global) and args == ():
        _new_wrapper(m)
        return
    m.stack.append(m.make_call(cls, args, "NEWOBJ"))


def _new_wrapper(m: Machine) -> None:
    """``NumpyArrayWrapper.__new__(NumpyArrayWrapper)``: the one way joblib.dump writes a wrapper."""
    if not m.joblib:
        if m.r.kind == "joblib":
            raise m.fail("a joblib array wrapper inside a nested pickle, which plain pickle.load reads")
        raise WrongFormatError(
            f"{m.what}: was written by joblib.dump (it holds joblib array wrappers), so pickle.load cannot read "
            'it. Set format = "joblib" in the model\'s table (or rename the file to .joblib) and build again.'
        )
    m.r.use(JOBLIB_WRAPPER, "call")
    call = Call(JOBLIB_WRAPPER, ())
    m._wrappers[id(call)] = call
    m.stack.append(call)


@_handles("NEWOBJ_EX")
def _newobj_ex(m: Machine, arg: Any) -> None:
    kwargs = m.pop()
    args = m.pop()
    cls = m.pop()
    if m.tainted(kwargs) or not (isinstance(kwargs, SDict) and kwargs.exact() is not None):
        raise m.fail("NEWOBJ_EX with keyword arguments that are not a literal dict of plain values")
    if any(m.tainted(v) for _, v in kwargs.items):
        raise m.fail("NEWOBJ_EX passes a joblib array wrapper as a keyword argument")
    m.stack.append(m.make_call(cls, args, "NEWOBJ_EX"))


@_handles("BUILD")
def _build(m: Machine, arg: Any) -> None:
    state = m.pop()
    obj = m.target("BUILD", (Call,))
    if m.tainted(state):
        raise m.fail("BUILD hands a joblib array wrapper to another object's state")
    if obj.state is not None:
        raise m.fail("BUILD on an object that was already built")
    obj.state = state
    m.record_state(state)
    if id(obj) in m._wrappers:
        m.stack[-1] = m.read_array(obj)


# -- the memo --------------------------------------------------------------------------------------


@_handles("PUT", "BINPUT", "LONG_BINPUT")
def _put(m: Machine, arg: Any) -> None:
    m.memo[int(arg)] = m.top()


@_handles("MEMOIZE")
def _memoize(m: Machine, arg: Any) -> None:
    m.memo[len(m.memo)] = m.top()


@_handles("GET", "BINGET", "LONG_BINGET")
def _get(m: Machine, arg: Any) -> None:
    key = int(arg)
    if key not in m.memo:
        raise m.fail(f"memo key {key} is read before it is written")
    m.stack.append(m.memo[key])


# -- what a file cannot use ------------------------------------------------------------------------


@_handles("PERSID", "BINPERSID")
def _persid(m: Machine, arg: Any) -> None:
    if m.persistent_ids:  # torch archives: the caller checks every pid against the archive
        m.stack.append(Persistent(m.pop() if arg is None else arg))
        return
    raise m.fail(
        "the stream uses persistent IDs, which a plain unpickler cannot resolve and which hide objects from this scan"
    )


@_handles("EXT1", "EXT2", "EXT4")
def _ext(m: Machine, arg: Any) -> None:
    raise m.fail(
        "the stream uses the copyreg extension registry, which names globals by number and cannot be "
        "resolved statically"
    )


@_handles("NEXT_BUFFER", "READONLY_BUFFER")
def _buffer(m: Machine, arg: Any) -> None:
    raise m.fail("the stream needs out-of-band buffers, which a file cannot provide")
