"""joblib's array buffers: how many bytes follow a ``NumpyArrayWrapper``, read exactly as joblib will.

After the ``BUILD`` of a wrapper, joblib reads the array straight from the file: ``pickle.load`` of a
nested pickle when ``dtype.hasobject``, else ``count * itemsize`` raw bytes (after an alignment pad).
The scanner must make the same decision from the *pickled* dtype, so every part of that decision is
read exactly or refused: the wrapper's state must be a literal dict with distinct string keys, the
dtype must be a pickled ``numpy.dtype`` (or numpy 2's StringDType) whose "has objects" flag agrees with
its kind. A dtype ``'O'`` pickled with flags 0 makes ``joblib.load`` crash the process; it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hatch_modelpack.errors import ScanError
from hatch_modelpack.scanning.values import Call, SDict

Fail = Callable[[str], ScanError]

DTYPE_GLOBALS = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype"})
#: numpy 2's StringDType pickles as a call of this helper; its arrays always hold Python objects.
STRINGDTYPE_GLOBALS = frozenset({"numpy._core._internal._convert_to_stringdtype_kwargs"})
_DTYPE_STR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)$")
#: NPY_OBJECT_DTYPE_FLAGS: what numpy pickles for dtype('O'); bit 0 is NPY_ITEM_HASOBJECT.
_OBJECT_FLAGS = 63
_HASOBJECT = 1
#: The keys joblib's NumpyArrayWrapper state holds (the alignment key since joblib 1.2).
_WRAPPER_KEYS = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap"})
_WRAPPER_OPTIONAL = frozenset({"numpy_array_alignment_bytes"})


@dataclass(frozen=True)
class Layout:
    """What follows a wrapper's BUILD in the file: a nested pickle, or ``nbytes`` after an optional pad."""

    nested_pickle: bool
    nbytes: int = 0
    padded: bool = False


def wrapper_layout(state: object, fail: Fail) -> Layout:
    """The buffer layout a NumpyArrayWrapper's state describes, exactly or not at all."""
    if not isinstance(state, SDict):
        raise fail("a NumpyArrayWrapper without a literal state dict")
    fields = state.exact()
    if fields is None:
        raise fail("a NumpyArrayWrapper whose state dict has duplicate or non-literal keys")
    keys = set(fields)
    if not (_WRAPPER_KEYS <= keys <= _WRAPPER_KEYS | _WRAPPER_OPTIONAL):
        raise fail(f"a NumpyArrayWrapper with the state keys {sorted(keys)}, not joblib's")
    shape = fields["shape"]
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise fail("a NumpyArrayWrapper whose shape is not a tuple of sizes")
    if fields["order"] not in ("C", "F") or type(fields["allow_mmap"]) is not bool:
        raise fail("a NumpyArrayWrapper with an unexpected order or allow_mmap")
    dtype = fields["dtype"]
    if has_object(dtype, fail, 0):
        if fields["allow_mmap"]:  # joblib would try to map it instead of reading the nested pickle
            raise fail("a NumpyArrayWrapper of objects that claims it may be memory-mapped")
        return Layout(nested_pickle=True)
    alignment = fields.get("numpy_array_alignment_bytes")
    if alignment is not None and type(alignment) is not int:
        raise fail("a NumpyArrayWrapper with a non-integer alignment")
    count = 1
    for d in shape:
        count *= d
    return Layout(nested_pickle=False, nbytes=count * itemsize(dtype, fail), padded=alignment is not None)


def _parse(dtype: object, fail: Fail) -> tuple[str, int | None, object]:
    """(kind letter, digits, state) of a pickled ``numpy.dtype``; anything else fails closed."""
    if not (isinstance(dtype, Call) and str(dtype.func) in DTYPE_GLOBALS):
        raise fail("a NumpyArrayWrapper whose dtype is not a pickled numpy.dtype")
    args = dtype.args
    if not (isinstance(args, tuple) and args and isinstance(args[0], str)):
        raise fail("a numpy.dtype with unexpected arguments")
    m = _DTYPE_STR.match(args[0])
    if not m:
        raise fail(f"a numpy dtype {args[0]!r} the scanner cannot size")
    return m.group(1), int(m.group(2)) if m.group(2) else None, dtype.state


def _flags(state: object, fail: Fail) -> int:
    if state is None:
        return 0
    # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
    if not (isinstance(state, tuple) and len(state) >= 8 and type(state[7]) is int):
        raise fail("a numpy dtype whose pickled state has no flags")
    return int(state[7])


def has_object(dtype: object, fail: Fail, depth: int) -> bool:
    """Whether numpy will say ``dtype.hasobject``; the pickled flags must agree with the kind."""
    if depth > 32:
        raise fail("a numpy dtype nested too deeply")
    if isinstance(dtype, Call) and str(dtype.func) in STRINGDTYPE_GLOBALS:
        if dtype.state is not None:
            raise fail("a numpy StringDType with a pickled state")
        return True
    kind, _, state = _parse(dtype, fail)
    flags = _flags(state, fail)
    if kind == "O":
        if flags != _OBJECT_FLAGS:
            raise fail(f"a numpy object dtype pickled with flags {flags}, not {_OBJECT_FLAGS}")
        return True
    expected = False
    if isinstance(state, tuple):
        subarray = state[2] if len(state) >= 3 else None  # (base dtype, shape)
        if isinstance(subarray, tuple) and subarray and has_object(subarray[0], fail, depth + 1):
            expected = True
        if len(state) >= 5 and isinstance(state[4], SDict):  # fields: name -> (dtype, offset[, title])
            for _, spec in state[4].items:
                if not (isinstance(spec, tuple) and spec):
                    raise fail("a structured numpy dtype with a malformed field")
                expected = has_object(spec[0], fail, depth + 1) or expected
    if bool(flags & _HASOBJECT) != expected:
        raise fail(
            f"a numpy dtype {kind!r} whose pickled flags ({flags}) disagree with its fields about holding objects"
        )
    return expected


def itemsize(dtype: object, fail: Fail) -> int:
    """numpy's itemsize for a pickled dtype: flexible kinds take the state's elsize, as numpy does."""
    kind, digits, state = _parse(dtype, fail)
    elsize = None
    if isinstance(state, tuple) and len(state) >= 6 and type(state[5]) is int and state[5] > 0:
        elsize = state[5]
    if kind in "VSU":
        if digits is None:
            raise fail(f"a flexible numpy dtype {kind!r} without a size")
        expected = digits * 4 if kind == "U" else digits
        if elsize is not None and elsize != expected:
            raise fail(f"numpy dtype {kind}{digits} disagrees with its recorded item size {elsize}")
        return expected
    if digits is not None:
        return digits
    if kind == "b":
        return 1
    raise fail(f"a numpy dtype {kind!r} without an item size")
