"""The evasion corpus: crafted artifacts that run a payload, each refused twice.

1. At build: the scanner + policy (what ``analyse`` runs) refuse it.
2. At load: put into a manifest by a test-only helper that bypasses the scan (never a user-facing
   switch), with the globals a *tricked* build would have recorded (the allowlisted names a naive
   reading of the stream sees), the restricted unpickler refuses it or returns without running it,
   and the marker file proves nothing ran.

A few cases also run the artifact with plain ``pickle.load``/``joblib.load`` (control): the payload
is live. Regression cases for public scanners' bypasses cite the advisory or issue.
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
from pathlib import Path

import joblib
import pytest
from _craft import b, call, dtype, evil_pickle, g, joblib_stream, proto4, s, t, wrapper, wrapper_state
from _restricted import load_restricted, scan_and_check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatch_modelpack.allowlist import load as load_allowlist
from hatch_modelpack.errors import ScanError


def _cases(M: str) -> dict[str, tuple[bytes, str]]:

    evil0, evil1, evil4 = (evil_pickle(M, p) for p in (0, 1, 4))
    f8_objects = dtype("f8", 63)
    return {
        # -- resolvers and callers inside the stack (issue 10) --
        "ufunc_reconstruct": (
            proto4(call(call(g("numpy.core", "_ufunc_reconstruct"), s("os"), s("system")), s(f"touch {M}"))),
            "pickle",
        ),
        "ufunc_reconstruct_2": (
            proto4(call(call(g("numpy._core", "_ufunc_reconstruct"), s("os"), s("system")), s(f"touch {M}"))),
            "pickle",
        ),
        "wrapfunc": (
            proto4(call(g("numpy._core.fromnumeric", "_wrapfunc"), g("posixpath", "os"), s("system"), s(f"touch {M}"))),
            "pickle",
        ),
        "pandas_pipe": (proto4(call(g("pandas.core.common", "pipe"), s(f"touch {M}"), g("os", "system"))), "pickle"),
        "apply_if_callable": (
            proto4(call(g("pandas.core.common", "apply_if_callable"), g("os", "system"), s(f"touch {M}"))),
            "pickle",
        ),
        "partial_called": (proto4(call(call(g("functools", "partial"), g("os", "system"), s(f"touch {M}")))), "pickle"),
        "partial_reexport": (
            proto4(call(call(g("sklearn.utils.validation", "partial"), g("os", "system"), s(f"touch {M}")))),
            "pickle",
        ),
        "reduce_reexport": (
            proto4(call(g("sklearn.utils.fixes", "reduce"), g("os", "system"), t(s(f"touch {M}")))),
            "pickle",
        ),
        "attrgetter": (
            proto4(call(call(call(g("operator", "attrgetter"), s("system")), g("posixpath", "os")), s(f"touch {M}"))),
            "pickle",
        ),
        "import_module_build": (
            proto4(call(g("importlib", "import_module"), s("os")) + b"}" + s("sep") + s("X") + b"sb"),
            "pickle",
        ),
        "rmtree_reexport": (proto4(call(g("tempfile", "_shutil.rmtree"), s(f"{M}.dir"))), "pickle"),
        "mkdtemp": (proto4(call(g("tempfile", "mkdtemp"), s(""), s(""), s(f"{M}"))), "pickle"),
        "mp_client": (proto4(call(g("multiprocessing.connection", "Client"), t(s("127.0.0.1"), b"K\x09"))), "pickle"),
        "module_as_global": (proto4(g("posixpath", "os")), "pickle"),
        "setitem_on_call": (
            proto4(call(g("numpy.core", "_ufunc_reconstruct"), s("os"), s("environ")) + s("LD_PRELOAD") + s(M) + b"s"),
            "pickle",
        ),
        "getattr_module": (
            proto4(call(call(g("builtins", "getattr"), g("posixpath", "os"), s("system")), s(f"touch {M}"))),
            "pickle",
        ),
        "getattr_method": (
            proto4(call(call(g("builtins", "getattr"), g("pandas", "DataFrame"), s("to_pickle")), s(M))),
            "pickle",
        ),
        "getattr_dunder": (
            proto4(call(g("builtins", "getattr"), g("zoneinfo", "ZoneInfo"), s("__init_subclass__"))),
            "pickle",
        ),
        "getattr_of_call": (
            proto4(call(call(g("builtins", "getattr"), call(g("builtins", "object")), s("__class__")))),
            "pickle",
        ),
        "callback_class": (proto4(call(g("sklearn.callback._progressbar", "ProgressBar"))), "pickle"),
        # -- joblib streams read differently (issue 10) --
        "dtype_key_twice": (
            joblib_stream(wrapper([*wrapper_state(dtype("u1", 0), 4), (s("dtype"), f8_objects)], b"\x01\x02\x03\x04")),
            "joblib",
        ),
        "dtype_key_not_literal": (
            joblib_stream(
                wrapper(
                    [*wrapper_state(dtype("u1", 0), 4), (call(g("builtins", "str"), s("dtype")), f8_objects)],
                    b"\x01\x02\x03\x04",
                )
            ),
            "joblib",
        ),
        "dtype_flags_say_objects": (joblib_stream(wrapper(wrapper_state(f8_objects, 1), evil4)), "joblib"),
        "object_dtype_flags_zero": (
            joblib_stream(wrapper(wrapper_state(dtype("O8", 0, "|"), 1), b"\x00" * 8)),
            "joblib",
        ),
        "object_dtype_mmap": (
            joblib_stream(wrapper(wrapper_state(dtype("O8", 63, "|"), 1, allow_mmap=True), evil4)),
            "joblib",
        ),
        "wrapper_by_call": (
            joblib_stream(
                call(
                    g("copyreg", "_reconstructor"),
                    g("joblib.numpy_pickle", "NumpyArrayWrapper"),
                    g("builtins", "object"),
                    b"N",
                )
                + b"}"
                + s("x")
                + s("y")
                + b"sb"
                + evil4
            ),
            "joblib",
        ),
        "wrapper_other_name": (
            joblib_stream(
                wrapper(wrapper_state(f8_objects, 1), evil4, cls=g("joblib", "numpy_pickle.NumpyArrayWrapper"))
            ),
            "joblib",
        ),
        # -- nested pickles (issue 10) --
        "nested_protocol_0": (proto4(b(evil0)), "pickle"),
        "nested_protocol_1": (proto4(b(evil1)), "pickle"),
        "nested_trailing_byte": (proto4(b(evil4 + b"x")), "pickle"),
        "nested_over_1mib": (proto4(b(evil4 + b"\x00" * (2 << 20))), "pickle"),
        "nested_codecs_encode": (
            proto4(call(g("_codecs", "encode"), s(evil4.decode("latin-1")), s("latin1"))),
            "pickle",
        ),
        "bytes_from_ints": (
            proto4(call(g("builtins", "bytes"), b"(" + b"".join(b"K" + bytes([c]) for c in evil4) + b"l")),
            "pickle",
        ),
        "trailing_after_stop": (proto4(b"N") + evil4, "pickle"),
        # -- public scanners' known bypasses (regressions) --
        "memo_confusion_picklescan_14": (
            proto4(
                s("os")
                + b"q\x00"
                + s("system")
                + b"q\x01"
                + b"0"
                + b"0"
                + s("torch._utils")
                + b"\x94"
                + b"0"
                + b"h\x00h\x01\x93"
                + t(s(f"touch {M}"))
                + b"R"
            ),
            "pickle",
        ),
        "pkgutil_resolve_name_GHSA_vvpj_8cmc_gx39": (
            proto4(call(call(g("pkgutil", "resolve_name"), s("os:system")), s(f"touch {M}"))),
            "pickle",
        ),
        "ensurepip_run_pip_GHSA_xp4f_hrf8_rxw7": (
            proto4(call(g("ensurepip", "_run_pip"), b"]" + s("--version") + b"a")),
            "pickle",
        ),
        "timeit_GHSA_v7x6_rv5q_mhwc": (
            proto4(call(g("timeit", "timeit"), s(f"__import__('os').system('touch {M}')"))),
            "pickle",
        ),
        "mailcap_findmatch_modelscan_346": (proto4(call(g("mailcap", "findmatch"), b"}", s("text/plain"))), "pickle"),
        "importlib_picklescan_74": (proto4(call(g("importlib", "import_module"), s("os"))), "pickle"),
        "marshal_picklescan_74": (proto4(call(g("marshal", "loads"), b(b"\xe3"))), "pickle"),
        "cprofile_run": (proto4(call(g("cProfile", "run"), s(f"open('{M}', 'w')"))), "pickle"),
        "code_runcode": (proto4(call(g("code", "InteractiveInterpreter.runcode"), b"N", s("1"))), "pickle"),
        "pydoc_pipepager": (proto4(call(g("pydoc", "pipepager"), s(""), s(f"touch {M}"))), "pickle"),
        "py2_builtin_eval": (b"\x80\x02c__builtin__\neval\n" + t(s(f"open('{M}', 'w')")) + b"R.", "pickle"),
        "build_on_global_modelscan_85": (
            proto4(g("sklearn.base", "BaseEstimator") + b"}" + s("__reduce__") + g("os", "system") + b"sb"),
            "pickle",
        ),
        "fickling_obj": (proto4(b"(" + g("os", "system") + s(f"touch {M}") + b"o"), "pickle"),
        "fickling_inst": (b"(S'touch " + M.encode() + b"'\nios\nsystem\n.", "pickle"),
        "dotted_runstring": (
            proto4(call(g("numpy", "testing._private.utils.runstring"), s(f"open('{M}', 'w')"), b"}")),
            "pickle",
        ),
    }


CASES = _cases("never-written")  # only the names: each test materialises its case under tmp_path
#: Cases whose plain load really runs the payload (the control), to prove the corpus is live.
LIVE = ("ufunc_reconstruct", "pandas_pipe", "dtype_flags_say_objects", "fickling_obj", "py2_builtin_eval")


def _materialise(tmp_path: Path, name: str) -> tuple[Path, Path, str]:
    marker = tmp_path / "payload-ran"
    data, kind = _cases(str(marker))[name]
    path = tmp_path / f"model.{kind}"
    path.write_bytes(data)
    return path, marker, kind


def _tricked_build_globals(data: bytes) -> list[str]:
    """The allowlisted globals a naive reading sees: what a build fooled by the artifact would record."""
    entries = load_allowlist().entries
    names: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST"):
                module, name = str(arg).split(" ", 1)
                names.append(f"{module}:{name}")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}:{strings[-1]}")
    except Exception:
        pass
    return sorted({n.replace(":", ".", 1) for n in names if n in entries})


def _refused_at_build(path: Path, kind: str) -> str:
    try:
        _, findings = scan_and_check(path, kind)
    except ScanError as exc:
        return str(exc)
    assert findings, "the scan and the policy accepted an evasion"
    return "; ".join(f"{f.name}: {f.reason}" for f in findings)


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_at_build(tmp_path, name):
    path, marker, kind = _materialise(tmp_path, name)
    assert _refused_at_build(path, kind)
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_at_load_when_a_manifest_records_it(tmp_path, name):
    path, marker, kind = _materialise(tmp_path, name)
    recorded = _tricked_build_globals(path.read_bytes())
    with contextlib.suppress(Exception):
        load_restricted(path, recorded, kind)
    assert not marker.exists(), f"the payload ran through the restricted unpickler (recorded: {recorded})"


@pytest.mark.parametrize("name", LIVE)
def test_control_the_payload_is_live_without_the_restriction(tmp_path, name):
    path, marker, kind = _materialise(tmp_path, name)
    with contextlib.suppress(Exception):
        joblib.load(path) if kind == "joblib" else pickle.loads(path.read_bytes())
    assert marker.exists()


def test_unrecorded_global_names_itself_before_anything_runs(tmp_path):
    from hatch_modelpack.runtime.loader import IntegrityError

    path, marker, kind = _materialise(tmp_path, "pandas_pipe")
    with pytest.raises(IntegrityError, match=r"pandas\.core\.common\.pipe"):
        load_restricted(path, [], kind)
    assert not marker.exists()


_ATTACK_NAMES = st.sampled_from(
    [("os", "system"), ("posix", "system"), ("subprocess", "getoutput"), ("builtins", "exec"), ("builtins", "eval"),
     ("numpy.core", "_ufunc_reconstruct"), ("pandas.core.common", "pipe"), ("functools", "reduce"),
     ("operator", "methodcaller"), ("importlib", "import_module"), ("pkgutil", "resolve_name"), ("shutil", "rmtree"),
     ("sklearn.utils", "_joblib"), ("scipy.stats._continuous_distns", "gamma_gen"), ("numpy", "load"),
     ("joblib", "load"), ("sklearn.pipeline", "Pipeline.__reduce__"), ("zoneinfo", "ZoneInfo.clear_cache")]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=_ATTACK_NAMES, wrap=st.sampled_from(["call", "value", "nested", "in_list", "memo", "getattr"]))
def test_generated_attacks_are_refused(tmp_path, target, wrap):
    module, name = target
    inner = call(g(module, name), s("x"))
    body = {
        "call": inner,
        "value": g(module, name),
        "nested": b(b"\x80\x04" + inner + b"."),
        "in_list": b"]" + g("sklearn.pipeline", "Pipeline") + inner + b"a",
        "memo": s(module) + b"\x94" + s(name) + b"\x94" + b"h\x00h\x01\x93" + t(s("x")) + b"R",
        "getattr": call(call(g("builtins", "getattr"), g(module, name.split(".")[0]), s("__call__"))),
    }[wrap]
    path = tmp_path / "attack.pkl"
    path.write_bytes(proto4(body))
    assert _refused_at_build(path, "pickle")
