"""A tiny pickle assembler for the evasion corpus: streams a pickler never writes, byte by byte."""

from __future__ import annotations

import pickle
import struct


def s(text: str) -> bytes:
    """A str constant (BINUNICODE)."""
    data = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(data)) + data


def b(data: bytes) -> bytes:
    """A bytes constant (BINBYTES)."""
    return b"B" + struct.pack("<I", len(data)) + data


def g(module: str, name: str) -> bytes:
    """A global by STACK_GLOBAL (protocol 4 semantics: dotted names walk attributes)."""
    return s(module) + s(name) + b"\x93"


def t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def call(func: bytes, *args: bytes) -> bytes:
    return func + t(*args) + b"R"


def proto4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def system(marker: str) -> bytes:
    """The classic payload: os.system creating ``marker``."""
    return call(g("os", "system"), s(f"touch {marker}"))


def wrapper(state_items: list[tuple[bytes, bytes]], buffer: bytes = b"", cls: bytes | None = None) -> bytes:
    """A joblib NumpyArrayWrapper built with NEWOBJ and the given state dict items, then its buffer."""
    head = (cls or g("joblib.numpy_pickle", "NumpyArrayWrapper")) + b")\x81"
    state = b"}(" + b"".join(k + v for k, v in state_items) + b"u"
    return head + state + b"b" + buffer


def dtype(spec: str, flags: int, endian: str = "<") -> bytes:
    """A pickled numpy.dtype with an explicit flags field (the 8th item of its state)."""
    st = t(
        b"K\x03",
        s(endian),
        b"N",
        b"N",
        b"N",
        b"J" + struct.pack("<i", -1),
        b"J" + struct.pack("<i", -1),
        b"J" + struct.pack("<i", flags),
    )
    return call(g("numpy", "dtype"), s(spec), b"\x89", b"\x88") + st + b"b"


def wrapper_state(dt: bytes, n: int, allow_mmap: bool = False) -> list[tuple[bytes, bytes]]:
    return [
        (s("subclass"), g("numpy", "ndarray")),
        (s("shape"), t(b"K" + bytes([n]))),
        (s("order"), s("C")),
        (s("dtype"), dt),
        (s("allow_mmap"), b"\x88" if allow_mmap else b"\x89"),
    ]


def joblib_stream(body: bytes) -> bytes:
    """A joblib file: protocol 4, no framing (joblib turns framing off around array buffers)."""
    return b"\x80\x04" + body + b"."


def evil_pickle(marker: str, protocol: int) -> bytes:
    """A genuine pickle (any protocol) whose loading runs os.system."""

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return os.system, (f"touch {marker}",)

    return pickle.dumps(Payload(), protocol=protocol)
