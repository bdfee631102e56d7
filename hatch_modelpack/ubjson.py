"""A small streaming reader for UBJSON (Universal Binary JSON, draft 12, big-endian), as XGBoost writes it.

XGBoost's ``.ubj`` models hold a few small objects the build needs (version, objective, feature names)
next to large typed arrays (split conditions, leaf weights). The build reads the document once, front to
back, and keeps only the parts a *shape* asks for: everything else is walked (so a truncated or damaged
document is refused) but not stored, and typed numeric arrays are skipped with one seek. Memory stays
bounded by what is kept, not by the model's size.

A shape is :data:`ALL` (keep the value), :data:`COUNT` (keep only a container's element count), or a
dict ``{key: shape}`` for an object whose other keys are skipped.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO, Final

ALL: Final = "all"
COUNT: Final = "count"

#: Fixed-size scalar markers -> struct format (big-endian, as UBJSON specifies).
_FIXED: dict[bytes, str] = {
    b"i": ">b",
    b"U": ">B",
    b"I": ">h",
    b"l": ">i",
    b"L": ">q",
    b"d": ">f",
    b"D": ">d",
    b"C": ">c",
}
_SIZES: dict[bytes, int] = {k: struct.calcsize(v) for k, v in _FIXED.items()}
_EMPTY: dict[bytes, Any] = {b"Z": None, b"T": True, b"F": False}
MAX_DEPTH = 128
#: Kept strings and kept containers above these sizes are refused (a model's metadata is far smaller).
MAX_KEPT_STRING = 64 << 20
MAX_KEPT_ITEMS = 10_000_000


class UBJError(Exception):
    """The bytes are not a complete, well-formed UBJSON document."""


class Counted(int):
    """The element count of a container read with the :data:`COUNT` shape."""


class Reader:
    """Reads one UBJSON value from a binary file, checking every length against the file's size."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size
        self.pos = f.tell()
        self.kept = 0

    def _read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise UBJError(f"needs {n} bytes at offset {self.pos}, but the document ends at {self.size} (truncated?)")
        data = self.f.read(n)
        if len(data) != n:
            raise UBJError(f"the file ends early at offset {self.pos + len(data)} (truncated?)")
        self.pos += n
        return data

    def _skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise UBJError(
                f"a value of {n} bytes at offset {self.pos} runs past the end of the document ({self.size} bytes; truncated?)"
            )
        self.f.seek(n, io.SEEK_CUR)
        self.pos += n

    def _marker(self) -> bytes:
        while True:
            m = self._read(1)
            if m != b"N":  # no-op padding
                return m

    def _fixed(self, marker: bytes) -> Any:
        value = struct.unpack(_FIXED[marker], self._read(_SIZES[marker]))[0]
        return value.decode("latin-1") if marker == b"C" else value

    def _length(self) -> int:
        m = self._marker()
        if m not in (b"i", b"U", b"I", b"l", b"L"):
            raise UBJError(f"a length at offset {self.pos - 1} has the non-integer marker {m!r}")
        n = int(self._fixed(m))
        if n < 0:
            raise UBJError(f"negative length {n} at offset {self.pos}")
        return n

    def _string(self, keep: bool) -> str | None:
        n = self._length()
        if not keep:
            self._skip(n)
            return None
        if n > MAX_KEPT_STRING:
            raise UBJError(f"a string of {n} bytes at offset {self.pos}")
        try:
            return self._read(n).decode("utf-8")
        except UnicodeDecodeError:
            raise UBJError(f"invalid UTF-8 in a string before offset {self.pos}") from None

    def _count_keep(self, n: int) -> None:
        self.kept += n
        if self.kept > MAX_KEPT_ITEMS:
            raise UBJError("more values than a model's metadata holds")

    def value_head(self) -> bytes:
        """Open a container: its marker (``{`` or ``[``) with the optimized header read; for prefix reads."""
        marker = self._marker()
        if marker in (b"{", b"["):
            etype, count = self._header()
            if etype is not None or count is not None:
                raise UBJError("an optimized container where a plain one was expected")
        return marker

    def key(self) -> str:
        """The next object key (after :meth:`value_head` returned ``{``)."""
        key = self._string(True)
        assert key is not None
        return key

    def value(self, shape: Any = ALL, depth: int = 0) -> Any:
        """The next value; containers are kept, counted or skipped as ``shape`` says (None: skip)."""
        return self._value(self._marker(), shape, depth)

    def _value(self, marker: bytes, shape: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise UBJError("containers nested too deeply")
        if marker in _FIXED:
            return self._fixed(marker)
        if marker in _EMPTY:
            return _EMPTY[marker]
        if marker == b"S":
            return self._string(shape is not None)
        if marker == b"H":  # high-precision number, as a string
            text = self._string(shape is not None)
            return None if text is None else float(text) if any(c in text for c in ".eE") else int(text)
        if marker == b"[":
            return self._array(shape, depth)
        if marker == b"{":
            return self._object(shape, depth)
        raise UBJError(f"unknown type marker {marker!r} at offset {self.pos - 1}")

    def _header(self) -> tuple[bytes | None, int | None]:
        """The optimized-container header: (``$`` element type, ``#`` count), either may be absent."""
        etype: bytes | None = None
        m = self._read(1)
        if m == b"$":
            etype = self._read(1)
            if etype not in _FIXED and etype not in _EMPTY and etype not in (b"S", b"H", b"[", b"{"):
                raise UBJError(f"unknown element type {etype!r} at offset {self.pos - 1}")
            m = self._read(1)
            if m != b"#":
                raise UBJError(f"a typed container without a count at offset {self.pos - 1}")
        if m == b"#":
            count = self._length()
            # Every element takes at least one byte (a typed numeric one its width): a count the rest of
            # the document cannot hold is refused before anything is allocated or skipped.
            width = _SIZES.get(etype, 0) if etype is not None else 1
            if etype in (b"S", b"H", b"[", b"{"):
                width = 1
            if count * width > self.size - self.pos:
                raise UBJError(
                    f"{count} elements at offset {self.pos} run past the end of the document ({self.size} bytes; truncated?)"
                )
            return etype, count
        self.f.seek(-1, io.SEEK_CUR)
        self.pos -= 1
        return None, None

    def _array(self, shape: Any, depth: int) -> Any:
        etype, count = self._header()
        keep = shape == ALL
        items: list[Any] = []
        n = 0
        if count is not None:
            if etype is not None and etype in _SIZES and not keep:
                self._skip(count * _SIZES[etype])  # a typed numeric array: one seek
                return Counted(count) if shape == COUNT else None
            if etype is not None and etype in _EMPTY and count > MAX_KEPT_ITEMS:
                raise UBJError(f"an array of {count} empty values")
            if keep:
                self._count_keep(count)
            for _ in range(count):
                v = self._value(etype or self._marker(), ALL if keep else None, depth + 1)
                if keep:
                    items.append(v)
            n = count
        else:
            while True:
                m = self._marker()
                if m == b"]":
                    break
                v = self._value(m, ALL if keep else None, depth + 1)
                n += 1
                if keep:
                    self._count_keep(1)
                    items.append(v)
        if keep:
            return items
        return Counted(n) if shape == COUNT else None

    def _object(self, shape: Any, depth: int) -> Any:
        etype, count = self._header()
        keep_all = shape == ALL
        out: dict[str, Any] = {}
        n = 0
        while count is None or n < count:
            if count is None:
                m = self._marker()
                if m == b"}":
                    break
                self.f.seek(-1, io.SEEK_CUR)
                self.pos -= 1
            key = self._string(True)
            assert key is not None
            sub = ALL if keep_all else shape.get(key) if isinstance(shape, dict) else None
            v = self._value(etype or self._marker(), sub, depth + 1)
            if sub is not None:
                self._count_keep(1)
                out[key] = v
            n += 1
        if keep_all or isinstance(shape, dict):
            return out
        return Counted(n) if shape == COUNT else None


def read_document(f: BinaryIO, size: int, shape: Any) -> Any:
    """Read one UBJSON document that fills the file (``size`` bytes) and return what ``shape`` keeps."""
    reader = Reader(f, size)
    try:
        value = reader.value(shape)
    except (struct.error, ValueError, OverflowError) as exc:
        raise UBJError(str(exc)) from None
    if reader.pos != size:
        raise UBJError(f"{size - reader.pos} bytes follow the end of the document at offset {reader.pos}")
    return value


def loads(data: bytes, shape: Any = ALL) -> Any:
    """Read a whole in-memory document (tests, and model bytes embedded in pickles)."""
    return read_document(io.BytesIO(data), len(data), shape)
