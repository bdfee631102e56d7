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
  call (a ``functools.partial``, an import helper's return) cannot be followed statically; the one
  exception is ``getattr(<global>, "<literal>")``, how bound classmethods pickle, which is read as
  the dotted global it fetches;
- ``BUILD`` and the container opcodes must act on an object the stream created: ``BUILD`` on a
  global is ``setattr`` on a class or module (monkey-patching, the trick behind modelscan#85);
- bytes that begin a pickle of any protocol and size (also bytes made at load time by
  ``_codecs.encode``, ``bytes`` or ``bytearray``) are refused, since a later ``loads`` would run them;
- every global's use (called, stored, or modified after a call made it) is recorded for the policy
  (:mod:`hatch_modelpack.safety`), which admits exact names for exact uses.

joblib interleaves raw array buffers with the pickle stream: after the ``BUILD`` of a
``NumpyArrayWrapper`` the unpickler reads the array bytes (or a nested pickle for object arrays)
straight from the file, *outside* pickle's framing. The scanner knows that layout, computes the
buffer size from the wrapper's ``shape`` and ``dtype`` exactly as numpy will, and skips it, so a
multi-gigabyte forest is scanned at the speed of its opcodes, not its bytes. Anything that could make
joblib read a buffer the scanner does not (a wrapper built other than by ``NEWOBJ``, passed to a call,
with a state dict whose keys are not distinct literals, a dtype whose pickled flags disagree with its
kind, a buffer inside a pickle frame, the wrapper class reached under another name) fails the scan. Compressed joblib
files are read through streaming decompressors, and bytes after the compressed stream are refused.

The scanner fails closed: an opcode, protocol, structure or size it cannot account for raises
:class:`~hatch_modelpack.errors.ScanError`; it never returns a result for a stream it did not read
to the end.

The package is split along those seams: :mod:`.streams` (byte streams, decompressors),
:mod:`.machine` and :mod:`.handlers` (the opcode machine and its dispatch table), :mod:`.arrays`
(joblib buffer sizing), :mod:`.schema` (input schema and recorded versions), :mod:`.values`.
"""

from __future__ import annotations

import io
from pathlib import Path

from hatch_modelpack.errors import ScanError, WrongFormatError
from hatch_modelpack.scanning.machine import INLINE_BYTES_LIMIT, NESTING_LIMIT, Machine
from hatch_modelpack.scanning.schema import json_content as json_content_of_node
from hatch_modelpack.scanning.schema import one_version, sklearn_input_schema, skops_input_schema
from hatch_modelpack.scanning.streams import LINE_LIMIT, SKIP_CHUNK, Stream, _Stream, detect_compression, open_stream
from hatch_modelpack.scanning.values import Call, Global, Opaque, Persistent, ScanResult, SDict

__all__ = [
    "INLINE_BYTES_LIMIT",
    "LINE_LIMIT",
    "NESTING_LIMIT",
    "SKIP_CHUNK",
    "Call",
    "Global",
    "Opaque",
    "Persistent",
    "SDict",
    "ScanResult",
    "Stream",
    "_Stream",
    "detect_compression",
    "json_content_of_node",
    "one_version",
    "scan_bytes",
    "scan_file",
    "scan_stream",
    "sklearn_input_schema",
    "skops_input_schema",
]


def scan_stream(
    stream: Stream, kind: str, compression: str | None = None, *, persistent_ids: bool = False
) -> ScanResult:
    """Scan an opened stream to its end; shared by :func:`scan_file` and :func:`scan_bytes`."""
    label = stream.what
    result = ScanResult(kind=kind, compression=compression, protocol=0)
    try:
        result.root = Machine(stream, result, joblib=kind == "joblib", persistent_ids=persistent_ids).run()
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
        stream, compression, fh = open_stream(path, label)
    except OSError as exc:
        raise ScanError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    with fh:
        if compression is not None and kind != "joblib":
            raise WrongFormatError(
                f"{label}: is {compression}-compressed, which is joblib's layout (joblib.dump with compress=), "
                'not a plain pickle. Set format = "joblib" in the model\'s table (or rename the file to .joblib) '
                "and build again."
            )
        try:
            return scan_stream(stream, kind, compression)
        except OSError as exc:
            raise ScanError(f"{label}: cannot be read ({exc.strerror or exc})") from None


def scan_bytes(data: bytes, kind: str = "pickle", what: str = "<bytes>", *, persistent_ids: bool = False) -> ScanResult:
    """Scan an in-memory, uncompressed stream (tests, nested payloads, pickles inside torch zips).

    ``persistent_ids=True`` admits PERSID/BINPERSID, leaving a :class:`Persistent` for the caller to check.
    """
    return scan_stream(Stream(io.BytesIO(data), len(data), what), kind, persistent_ids=persistent_ids)
