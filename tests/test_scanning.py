"""The static pickle/joblib scanner: real models pass, known evasions are caught, bad bytes fail closed.

Fast tests: no builds, no venvs. Hand-made streams use the opcode constants of :mod:`pickle`, the
way an attacker would write them; where it matters, a control shows the stream really does what the
test says when an unpickler runs it (in a subprocess, never in the test process).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import pickle
import struct
import subprocess
import sys
import time
import zlib

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatch_modelpack.errors import ScanError
from hatch_modelpack.safety import check_globals
from hatch_modelpack.scanning import Global, _Stream, scan_bytes, scan_file, scan_stream

P = pickle


def g(module: str, name: str) -> Global:
    return Global(module, name)


def names(data: bytes, kind: str = "pickle") -> set[str]:
    return set(scan_bytes(data, kind).global_names())


def unicode(s: str) -> bytes:
    b = s.encode()
    return P.SHORT_BINUNICODE + bytes([len(b)]) + b


def refused(data: bytes, package: str = "churn_model", kind: str = "pickle") -> list[str]:
    return [f.name for f in check_globals(scan_bytes(data, kind).globals, package, [])]


# -- real artefacts ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline():
    from conftest import make_pipeline

    return make_pipeline(seed=3, kind="forest")[0]


COMPRESSIONS = [0, 3, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)]


@pytest.mark.parametrize("compress", COMPRESSIONS, ids=str)
def test_real_joblib_pipeline_scans_clean(tmp_path, pipeline, compress):
    import sklearn

    path = tmp_path / "m.joblib"
    joblib.dump(pipeline, path, compress=compress)
    result = scan_file(path, "joblib")
    assert "sklearn.pipeline.Pipeline" in result.global_names()
    assert result.recorded_versions == {"scikit-learn": {sklearn.__version__}}
    assert result.arrays_skipped > 0
    assert check_globals(result.globals, "churn_model", []) == []


@pytest.mark.parametrize("protocol", range(6))
def test_real_pickle_every_protocol(tmp_path, pipeline, protocol):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(pipeline, protocol=protocol))
    result = scan_file(path, "pickle")
    assert "sklearn.pipeline.Pipeline" in result.global_names()
    # Protocols 0-2 name copyreg as copy_reg and builtins as __builtin__: mapped as the unpickler does.
    assert not any(n.startswith(("copy_reg.", "__builtin__.")) for n in result.global_names())
    assert check_globals(result.globals, "churn_model", []) == []


DTYPES = [
    "f2", "f4", ">f8", "c16", "i1", "u8", "b1", "M8[ns]", "m8[D]", "U5", "S3", "V8",
    [("x", "<f4"), ("y", "<i8")], ("<f8", (3,)), [("a", "U3"), ("b", "f4", (2, 2))],
    np.dtype([("x", "f4"), ("y", "i1")], align=True), object, [("x", "f4"), ("o", object)], ("O", (2,)),
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("compress", [0, 3], ids=["raw", "zlib"])
def test_joblib_array_buffers_are_sized_as_numpy_does(tmp_path, dtype, compress):
    """A wrong item size desynchronises the scan from joblib: every dtype must come out exact."""
    arr = np.zeros(7, dtype=dtype)
    path = tmp_path / "a.joblib"
    joblib.dump({"a": arr, "b": [arr, arr.copy()], "tail": "end"}, path, compress=compress)
    result = scan_file(path, "joblib")
    assert result.arrays_skipped == 3
    assert check_globals(result.globals, "x", []) == []


def test_many_ordinary_python_objects(tmp_path):
    import collections
    import datetime
    import decimal
    import uuid

    import pandas as pd

    objs = [
        pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"]}),
        pd.Series([1, None], dtype="Int64"),
        pd.Timestamp("2020-01-01", tz="UTC"),
        pd.Categorical(["a", "b"]),
        datetime.datetime(2020, 1, 1),
        decimal.Decimal("1.5"),
        collections.OrderedDict(a=1),
        collections.Counter("abc"),
        uuid.UUID(int=5),
        {1, 2},
        frozenset({3}),
        complex(1, 2),
        range(3),
        np.random.default_rng(0),
        np.array([1, "a", None], dtype=object),
    ]
    for proto in range(6):
        result = scan_bytes(pickle.dumps(objs, protocol=proto))
        assert check_globals(result.globals, "x", []) == [], proto
    joblib.dump(objs, tmp_path / "o.joblib")
    assert check_globals(scan_file(tmp_path / "o.joblib", "joblib").globals, "x", []) == []


# -- known evasions ------------------------------------------------------------------------------


def test_plain_reduce_to_os_system():
    data = P.PROTO + b"\x04" + P.GLOBAL + b"os\nsystem\n" + unicode("id") + P.TUPLE1 + P.REDUCE + P.STOP
    assert "os.system" in refused(data)


def _memo_stream(system_slot: bytes) -> bytes:
    return (
        P.PROTO + b"\x04"
        + unicode("os") + P.BINPUT + b"\x07" + P.POP
        + unicode("sklearn.base") + P.MEMOIZE + P.POP
        + unicode("system") + P.BINPUT + system_slot + P.POP
        + unicode("BaseEstimator") + P.MEMOIZE + P.POP
        + P.BINGET + b"\x07" + P.BINGET + system_slot + P.STACK_GLOBAL
    )  # fmt: skip


def test_stack_global_with_memoised_strings():
    # The names live in the memo, interleaved with decoys and mixed PUT/MEMOIZE (picklescan#14).
    data = _memo_stream(b"\x09") + unicode("id") + P.TUPLE1 + P.REDUCE + P.STOP
    assert names(data) == {"os.system"}
    assert refused(data) == ["os.system"]


def test_memo_follows_the_unpickler_exactly():
    # MEMOIZE writes at len(memo): here it overwrites slot 3, so the unpickler looks up os.BaseEstimator.
    data = _memo_stream(b"\x03") + P.STOP
    assert names(data) == {"os.BaseEstimator"}
    with pytest.raises(AttributeError, match="BaseEstimator"):
        pickle.loads(data)  # safe: the lookup fails before anything could be called


def test_stack_global_needs_constant_strings():
    data = (
        P.PROTO
        + b"\x04"
        + P.GLOBAL
        + b"builtins\nstr\n"
        + P.EMPTY_TUPLE
        + P.REDUCE
        + unicode("x")
        + P.STACK_GLOBAL
        + P.STOP
    )
    with pytest.raises(ScanError, match="constant strings"):
        scan_bytes(data)


def _evil_pickle(marker: str = "x") -> bytes:
    return P.PROTO + b"\x02" + P.GLOBAL + b"posix\nsystem\n" + unicode(f"touch {marker}") + P.TUPLE1 + P.REDUCE + P.STOP


def test_nested_pickle_in_bytes_is_refused():
    inner = _evil_pickle()
    for proto in (2, 3, 4, 5):  # protocol 2 writes bytes as _codecs.encode(str, "latin1")
        with pytest.raises(ScanError, match="itself a pickle"):
            scan_bytes(pickle.dumps({"payload": inner}, protocol=proto))
    # Bytes that are not a pickle, or a pickle of plain data, are just bytes.
    assert scan_bytes(pickle.dumps([b"cafe", pickle.dumps([1, "a"]), b"c not a global"], protocol=5))


def test_nested_pickle_two_levels_deep():
    inner = pickle.dumps([_evil_pickle()], protocol=4)
    with pytest.raises(ScanError, match="itself a pickle"):
        scan_bytes(pickle.dumps(inner, protocol=5))


def test_copyreg_reconstructor_indirection():
    data = (
        P.PROTO + b"\x02" + P.GLOBAL + b"copy_reg\n_reconstructor\n"
        + P.MARK + P.GLOBAL + b"subprocess\nPopen\n" + P.GLOBAL + b"__builtin__\nobject\n" + P.NONE + P.TUPLE
        + P.REDUCE + P.STOP
    )  # fmt: skip
    assert names(data) == {"copyreg._reconstructor", "subprocess.Popen", "builtins.object"}
    assert refused(data) == ["subprocess.Popen"]


def test_functools_partial_and_calling_a_call():
    # partial(os.system, "id") is refused by name; calling what a call returned cannot be followed at all.
    partial = (
        P.PROTO
        + b"\x04"
        + P.GLOBAL
        + b"functools\npartial\n"
        + P.GLOBAL
        + b"os\nsystem\n"
        + unicode("id")
        + P.TUPLE2
        + P.REDUCE
    )
    assert set(refused(partial + P.STOP)) == {"os.system"}  # partial is reviewed; what it wraps is checked
    with pytest.raises(ScanError, match="calls the result of another call"):
        scan_bytes(partial + P.EMPTY_TUPLE + P.REDUCE + P.STOP)


def test_protocol_0_inst():
    data = b"(S'id'\nios\nsystem\n."
    assert names(data) == {"os.system"}
    assert refused(data) == ["os.system"]


def test_builtins_getattr_chain():
    data = b"c__builtin__\ngetattr\n(c__builtin__\n__import__\n(S'os'\ntRS'system'\ntR"
    # getattr only ever fetches a literal attribute of a global, checked under its full name.
    with pytest.raises(ScanError, match="getattr is called on something other than a global"):
        scan_bytes(data + b".")
    assert refused(b"c__builtin__\ngetattr\n(cposix\nsystem\nS'x'\ntR.") == ["posix.system", "posix.system.x"]


def test_main_globals_are_refused_for_good():
    class_from_main = P.PROTO + b"\x04" + P.GLOBAL + b"__main__\nRatios\n" + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP
    (finding,) = check_globals(scan_bytes(class_from_main).globals, "churn_model", ["__main__.Ratios", "__main__.*"])
    assert not finding.overridable
    assert "__main__" in finding.reason and "move it into your package" in finding.reason


@pytest.mark.parametrize("opcode", [P.EXT1 + b"\x01", P.EXT2 + b"\x01\x00", P.EXT4 + b"\x01\x00\x00\x00"])
def test_ext_opcodes_fail_closed(opcode):
    with pytest.raises(ScanError, match="extension registry"):
        scan_bytes(P.PROTO + b"\x02" + opcode + P.STOP)


@pytest.mark.parametrize("data", [P.PERSID + b"x\n" + P.STOP, P.PROTO + b"\x02" + P.NONE + P.BINPERSID + P.STOP])
def test_persistent_ids_fail_closed(data):
    with pytest.raises(ScanError, match="persistent IDs"):
        scan_bytes(data)


def test_dotted_names_resolve_to_the_full_path():
    """Protocol 4 resolves dotted names: numpy + 'testing.runstring' is numpy.testing.runstring (fickling#287)."""

    def stack_global(module: str, name: str) -> bytes:
        return P.PROTO + b"\x04" + unicode(module) + unicode(name) + P.STACK_GLOBAL + P.STOP

    assert refused(stack_global("numpy", "testing.runstring")) == ["numpy.testing.runstring"]
    assert refused(stack_global("pathlib", "os.system")) == ["pathlib.os.system"]
    assert refused(stack_global("sklearn.base", "inspect.getsource")) == ["sklearn.base.inspect.getsource"]
    assert refused(stack_global("numpy", "ndarray.tofile")) == ["numpy.ndarray.tofile"]
    # A method of an allowed class is not allowed by the module's entry.
    assert refused(stack_global("pandas", "DataFrame.to_csv")) == ["pandas.DataFrame.to_csv"]
    with pytest.raises(ScanError, match="array wrapper is reached under another name"):
        scan_bytes(stack_global("joblib", "numpy_pickle.NumpyArrayWrapper"), "joblib")


def test_module_aliases_are_refused():
    data = P.PROTO + b"\x04" + P.GLOBAL + b"collections\n_sys\n" + P.STOP
    assert refused(data) == ["collections._sys"]


def test_build_on_a_global_is_monkeypatching():
    # modelscan#85: BUILD's slot state setattr()s on whatever is on the stack, a function included.
    data = (
        P.PROTO + b"\x04" + P.GLOBAL + b"numpy\nprod\n"
        + P.NONE + P.MARK + unicode("a") + unicode("os") + P.DICT + P.TUPLE2 + P.BUILD + P.STOP
    )  # fmt: skip
    with pytest.raises(ScanError, match=r"BUILD modifies the global numpy\.prod"):
        scan_bytes(data)


@pytest.mark.parametrize("op", [P.SETITEM, P.APPEND])
def test_container_opcodes_on_a_global(op):
    args = unicode("k") + unicode("v") if op == P.SETITEM else unicode("v")
    data = P.PROTO + b"\x04" + P.GLOBAL + b"sklearn\n_config\n" + args + op + P.STOP
    with pytest.raises(ScanError, match="modifies the global"):
        scan_bytes(data)


def test_python2_names_are_mapped_like_the_unpickler():
    # commands.getoutput *is* subprocess.getoutput when the protocol is below 3.
    assert names(P.PROTO + b"\x02" + P.GLOBAL + b"commands\ngetoutput\n" + P.STOP) == {"subprocess.getoutput"}
    assert names(P.GLOBAL + b"__builtin__\neval\n" + P.STOP) == {"builtins.eval"}
    assert names(P.PROTO + b"\x04" + P.GLOBAL + b"commands\ngetoutput\n" + P.STOP) == {"commands.getoutput"}


def test_bytes_after_stop_fail():
    with pytest.raises(ScanError, match="after the pickle's STOP"):
        scan_bytes(pickle.dumps([1, 2]) + b"\x00")


@pytest.mark.parametrize("compress", [("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)], ids=str)
def test_bytes_after_the_compressed_stream_fail(tmp_path, compress):
    path = tmp_path / "m.joblib"
    joblib.dump({"a": np.arange(10)}, path, compress=compress)
    scan_file(path, "joblib")
    path.write_bytes(path.read_bytes() + pickle.dumps(_evil_pickle()))
    with pytest.raises(ScanError, match="after the end of the compressed stream"):
        scan_file(path, "joblib")


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_file_named_pkl_gets_one_message_with_one_fix(tmp_path, compress):
    from hatch_modelpack.errors import WrongFormatError
    from hatch_modelpack.formats.pickle import PickleFormat

    path = tmp_path / "m.pkl"
    joblib.dump({"a": np.arange(3)}, path, compress=compress)
    with pytest.raises(WrongFormatError) as err:
        PickleFormat().inspect(path, "m.pkl (models.churn)")
    message = str(err.value)
    assert message.startswith("m.pkl (models.churn): ") and 'Set format = "joblib"' in message
    assert "pickle.dump" not in message and "fails closed" not in message  # no generic advice contradicting it


# -- joblib layout tricks --------------------------------------------------------------------------


def _wrapper(frame_extra: int = 0) -> bytes:
    """A hand-written joblib stream holding one uint8 array of 4 bytes, with a FRAME around its head."""
    dtype = P.GLOBAL + b"numpy\ndtype\n" + unicode("u1") + P.NEWFALSE + P.NEWTRUE + P.TUPLE3 + P.REDUCE
    dtype += P.MARK + P.BININT1 + b"\x03" + unicode("|") + P.NONE + P.NONE + P.NONE + P.BININT1 + b"\xff"
    dtype = (
        dtype[:-2]
        + P.BININT
        + struct.pack("<i", -1)
        + P.BININT
        + struct.pack("<i", -1)
        + P.BININT1
        + b"\x00"
        + P.TUPLE
        + P.BUILD
    )
    make = P.GLOBAL + b"joblib.numpy_pickle\nNumpyArrayWrapper\n" + P.EMPTY_TUPLE + P.NEWOBJ
    state = (
        P.EMPTY_DICT + P.MARK
        + unicode("subclass") + P.GLOBAL + b"numpy\nndarray\n"
        + unicode("shape") + P.BININT1 + b"\x04" + P.TUPLE1
        + unicode("order") + unicode("C")
        + unicode("dtype") + dtype
        + unicode("allow_mmap") + P.NEWFALSE
        + P.SETITEMS
    )  # fmt: skip
    head = make + state + P.BUILD
    frame = P.FRAME + struct.pack("<Q", len(head) + frame_extra)
    return P.PROTO + b"\x04" + frame + head + b"\x01\x02\x03\x04" + P.STOP


def test_handmade_joblib_stream_matches_joblib(tmp_path):
    path = tmp_path / "w.joblib"
    path.write_bytes(_wrapper())
    result = scan_file(path, "joblib")
    assert result.arrays_skipped == 1
    # Control: joblib reads it exactly as the scanner did.
    assert joblib.load(path).tolist() == [1, 2, 3, 4]


def test_array_buffer_inside_a_frame_fails_closed(tmp_path):
    # joblib reads the buffer from the file after the frame, the scan would read it in place.
    with pytest.raises(ScanError, match="inside a pickle frame"):
        scan_bytes(_wrapper(frame_extra=4), "joblib")


def test_wrapper_passed_to_a_call_fails_closed():
    make = (
        P.PROTO
        + b"\x04"
        + P.GLOBAL
        + b"numpy\nasarray\n"
        + P.GLOBAL
        + b"joblib.numpy_pickle\nNumpyArrayWrapper\n"
        + P.EMPTY_TUPLE
        + P.NEWOBJ
    )
    with pytest.raises(ScanError, match="passes a joblib array wrapper"):
        scan_bytes(make + P.TUPLE1 + P.REDUCE + P.STOP, "joblib")
    # ...also hidden in containers: numpy.max([[wrapper]]) would hand the same object back.
    with pytest.raises(ScanError, match="passes a joblib array wrapper"):
        scan_bytes(make + P.TUPLE1 + P.TUPLE1 + P.REDUCE + P.STOP, "joblib")
    nested_list = make + P.MEMOIZE + P.POP + P.EMPTY_LIST + P.EMPTY_LIST + P.BINGET + b"\x00" + P.APPEND + P.APPEND
    with pytest.raises(ScanError, match="passes a joblib array wrapper"):
        scan_bytes(nested_list + P.TUPLE1 + P.REDUCE + P.STOP, "joblib")


def test_wrapper_through_copyreg_newobj_is_refused(tmp_path):
    """copyreg.__newobj__(NumpyArrayWrapper) builds the same object joblib reads a buffer after: refused,
    since joblib.dump only ever writes NEWOBJ."""
    plain = _wrapper()
    via = plain.replace(
        P.GLOBAL + b"joblib.numpy_pickle\nNumpyArrayWrapper\n" + P.EMPTY_TUPLE + P.NEWOBJ,
        P.GLOBAL
        + b"copyreg\n__newobj__\n"
        + P.GLOBAL
        + b"joblib.numpy_pickle\nNumpyArrayWrapper\n"
        + P.TUPLE1
        + P.REDUCE,
    )
    head_len = struct.unpack("<Q", plain[3:11])[0] + len(via) - len(plain)
    via = via[:3] + struct.pack("<Q", head_len) + via[11:]
    (tmp_path / "w.joblib").write_bytes(via)
    with pytest.raises(ScanError, match="built by a call"):
        scan_file(tmp_path / "w.joblib", "joblib")
    assert joblib.load(tmp_path / "w.joblib").tolist() == [1, 2, 3, 4]


def test_evil_pickle_really_runs_when_unpickled(tmp_path):
    """Control for the evasion tests: the hand-written payload does run under pickle.loads."""
    marker = tmp_path / "ran"
    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", code], input=_evil_pickle(str(marker)), check=True, cwd=tmp_path)
    assert marker.exists()


# -- properties: never crash, never hang, never read past the end ----------------------------------


class StrictBytes(io.BytesIO):
    """A file that fails the test if the scanner asks for more than it holds."""

    def read(self, n: int | None = -1) -> bytes:
        assert n is not None and n >= 0, "unbounded read"
        assert self.tell() + n <= len(self.getbuffer()), "read past the end"
        return super().read(n)

    def readline(self, limit: int | None = -1) -> bytes:
        assert limit is not None and 0 <= limit <= len(self.getbuffer()) - self.tell(), "unbounded readline"
        return super().readline(limit)

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = super().seek(offset, whence)
        assert pos <= len(self.getbuffer()), "seek past the end"
        return pos


def _scan_strict(data: bytes, kind: str) -> None:
    with contextlib.suppress(ScanError):
        scan_stream(_Stream(StrictBytes(data), len(data), "fuzz"), kind)


SEEDS: list[bytes] = []


def _seeds() -> list[bytes]:
    if not SEEDS:
        from conftest import make_pipeline

        model = make_pipeline(seed=5)[0]
        for proto in (0, 2, 4, 5):
            SEEDS.append(pickle.dumps(model, protocol=proto))
        buf = io.BytesIO()
        joblib.dump({"m": model, "a": np.arange(20.0), "o": np.array([1, None], dtype=object)}, buf)
        SEEDS.append(buf.getvalue())
        SEEDS.append(_wrapper())
        SEEDS.append(pickle.dumps({"payload": _evil_pickle()}, protocol=2))
    return SEEDS


FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    st.binary(max_size=4096),
    st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05\x95"]),
    st.sampled_from(["pickle", "joblib"]),
)
def test_random_bytes_never_crash(data, prefix, kind):
    _scan_strict(prefix + data, kind)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_seeds())))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
        elif op == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 64))]
    return bytes(data)


@FUZZ
@given(mutated(), st.sampled_from(["pickle", "joblib"]))
def test_mutated_streams_never_crash(data, kind):
    _scan_strict(data, kind)


_COMPRESSORS = {
    "zlib": zlib.compress,
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ),
    "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
}


@FUZZ
@given(mutated(), st.sampled_from(sorted(_COMPRESSORS)), st.data())
def test_mutated_compressed_joblib_never_crashes(tmp_path_factory, data, compression, draw):
    blob = bytearray(_COMPRESSORS[compression](data))
    if draw.draw(st.booleans()):  # corrupt the compressed bytes too
        i = draw.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= draw.draw(st.integers(1, 255))
    path = tmp_path_factory.mktemp("fuzz") / "f.joblib"
    path.write_bytes(bytes(blob))
    with contextlib.suppress(ScanError):
        scan_file(path, "joblib")


@pytest.mark.parametrize(
    "data",
    [
        P.MARK * 200_000 + P.STOP,
        P.PROTO + b"\x04" + P.EMPTY_LIST + P.DUP * 200_000 + P.STOP,
        P.PROTO + b"\x04" + P.EMPTY_LIST + P.MEMOIZE + (P.BINGET + b"\x00" + P.APPEND) * 100_000 + P.STOP,
        P.LONG + b"9" * 1_000_000 + b"L\n" + P.STOP,
        P.PROTO
        + b"\x04"
        + P.EMPTY_LIST
        + P.MEMOIZE
        + (P.MARK + P.BINGET + b"\x00") * 10_000
        + P.TUPLE * 10_000
        + P.STOP,
        P.PROTO + b"\x04" + P.BINBYTES + struct.pack("<I", 0xFFFFFFFF),
        P.PROTO + b"\x04" + P.FRAME + struct.pack("<Q", 2**63) + P.STOP,
    ],
    ids=["marks", "dups", "self-append", "long-text", "tuples", "huge-length", "huge-frame"],
)
def test_pathological_streams_end_quickly(data):
    start = time.perf_counter()
    _scan_strict(data, "pickle")
    assert time.perf_counter() - start < 10


def test_pickles_nested_too_deep_fail_closed():
    data = _evil_pickle()
    for _ in range(6):
        data = pickle.dumps(data, protocol=4)
    with pytest.raises(ScanError, match="itself a pickle"):
        scan_bytes(data)


def test_truncated_and_empty(tmp_path):
    full = pickle.dumps(list(range(100)), protocol=4)
    for n in (0, 1, 2, len(full) // 2, len(full) - 1):
        (tmp_path / "t.pkl").write_bytes(full[:n])
        with pytest.raises(ScanError):
            scan_file(tmp_path / "t.pkl", "pickle")


def test_unreadable_file_is_a_scan_error(tmp_path):
    with pytest.raises(ScanError, match="cannot be read"):
        scan_file(tmp_path / "missing.pkl", "pickle")


def test_large_joblib_array_is_skipped_not_read(tmp_path):
    arr = np.zeros((2000, 1000))  # 16 MB
    joblib.dump(arr, tmp_path / "big.joblib")
    start = time.perf_counter()
    result = scan_file(tmp_path / "big.joblib", "joblib")
    assert result.arrays_skipped == 1
    assert time.perf_counter() - start < 1.0
