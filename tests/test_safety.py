"""The pickle-globals policy: the reviewed allowlist admits exact names for exact uses; the user's
allow-globals and the package's own definitions are the only additions; dangerous names stay refused."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from hatch_modelpack import safety
from hatch_modelpack.allowlist import load as load_allowlist
from hatch_modelpack.safety import check_global, check_globals
from hatch_modelpack.scanning import Global

PKG = "churn_model"


def decide(full: str, allow: list[str] | None = None, package: str = PKG, split: int | None = None, uses=None):
    """check_global for a dotted name; ``split`` picks where the module ends (default: before the last dot)."""
    parts = full.split(".")
    cut = len(parts) - 1 if split is None else split
    return check_global(Global(".".join(parts[:cut]), ".".join(parts[cut:])), package, allow or [], uses)


@pytest.mark.parametrize(
    "name",
    [
        "os.system", "posix.system", "nt.system", "subprocess.Popen", "subprocess.getoutput", "sys.modules",
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.__import__",
        "builtins.print", "importlib.import_module", "runpy.run_path", "socket.socket",
        "shutil.rmtree", "pickle.loads", "_pickle.loads", "marshal.loads", "ctypes.CDLL", "webbrowser.open",
        "pty.spawn", "code.interact", "types.FunctionType", "functools.reduce", "operator.attrgetter",
        "pkgutil.resolve_name", "copyreg.add_extension", "joblib.load", "numpy.load", "numpy.testing.runstring",
        "numpy.lib.npyio.load", "numpy._core.multiarray.fromfile", "numpy.fromfile", "numpy.memmap",
        "pandas.read_pickle", "pandas.read_csv", "pandas.eval", "pandas.io.pickle.read_pickle",
        "pandas.core.computation.eval.eval", "scipy.io.loadmat", "sklearn.datasets.fetch_openml",
        "sklearn.utils._joblib.load", "torch.load", "yaml.load", "_codecs.decode", "__main__.Ratios",
        "collections._sys", "uuid._get_command_stdout", "mailcap.findmatch", "dill.loads",
    ],
)  # fmt: skip
def test_dangerous_globals_are_refused_and_cannot_be_allowed(name):
    module = name.rsplit(".", 1)[0]
    finding = decide(name, allow=[name, f"{module}.*"])
    assert finding is not None and not finding.overridable, name
    assert finding.name == name and finding.reason


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.pipeline.Pipeline", "sklearn.tree._tree.Tree", "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray",
        "numpy.random._pickle.__randomstate_ctor", "scipy.sparse._csr.csr_matrix",
        "pandas.DataFrame", "pandas._libs.internals._unpickle_block", "joblib.numpy_pickle.NumpyArrayWrapper",
        "copyreg._reconstructor", "builtins.set", "builtins.bytes", "collections.OrderedDict",
        "datetime.datetime", "functools.partial", "pathlib.PosixPath",
    ],
)  # fmt: skip
def test_reviewed_names_are_allowed_exactly(name):
    assert decide(name, uses={"value", "call"}) is None, name


def test_no_prefix_rule_admits_a_name():
    # Under modules the list names, an unlisted name is still refused.
    assert decide("sklearn.utils.fixes.reduce").overridable
    assert decide("numpy.core._ufunc_reconstruct").overridable
    assert decide("pandas.core.common.pipe").overridable
    # The same object under another spelling is another name.
    assert decide("numpy.core.multiarray._reconstruct", split=1) is not None


def test_uses_are_checked_per_entry():
    assert decide("zoneinfo.ZoneInfo._unpickle", uses={"call"}, split=1) is None
    assert decide("numpy.log1p", uses={"value"}) is None
    finding = decide("numpy.log1p", uses={"value", "call"})
    assert finding is not None and not finding.overridable and "call" in finding.reason
    assert decide("numpy.clip", uses={"call"}) is not None  # stored for later, never called while unpickling


def test_refused_entries_say_why():
    finding = decide("scipy.stats._continuous_distns.gamma_gen")
    assert not finding.overridable and "exec" in finding.reason
    assert (
        decide("scipy.stats._continuous_distns.gamma_gen", allow=["scipy.stats._continuous_distns.gamma_gen"])
        is not None
    )


def test_user_allow_globals():
    assert decide("churn_features.Ratios").overridable
    assert decide("churn_features.Ratios", allow=["churn_features.Ratios"]) is None
    assert decide("churn_features.Ratios", allow=["churn_features.*"]) is None
    # A wildcard covers names defined directly in that module only, and never the stack or the stdlib.
    assert decide("churn_features.sub.Ratios", allow=["churn_features.*"]) is not None
    assert decide("sklearn.utils.fixes.reduce", allow=["sklearn.utils.fixes.*"]) is not None
    assert decide("json.decoder.JSONDecoder", allow=["json.decoder.*"]) is not None
    nested = "churn_features.Outer.Inner"
    assert decide(nested, allow=["churn_features.*"], split=1) is not None
    assert decide(nested, allow=[nested], split=1) is None


def test_the_package_needs_its_source_to_vouch_for_a_name():
    # Without the project's source nothing under the package name is admitted by the name alone.
    assert decide("churn_model.features.Ratios").overridable
    assert not decide("churn_model.features.os", split=2).overridable


def test_findings_are_sorted_and_complete():
    gs = {Global("os", "system"), Global("sklearn.pipeline", "Pipeline"), Global("churn_features", "Ratios")}
    findings = check_globals(gs, PKG, [])
    assert [f.name for f in findings] == ["churn_features.Ratios", "os.system"]
    assert [f.overridable for f in findings] == [True, False]


def test_the_allowlist_is_reviewed_data():
    data = json.loads(resources.files("hatch_modelpack").joinpath("allowlist.json").read_text())
    assert {"numpy", "scikit-learn", "scipy", "pandas"} <= set(data["derived_from"])
    allowlist = load_allowlist()
    for key, uses in allowlist.entries.items():
        assert ":" in key and uses and uses <= {"call", "value", "built"}, key
        assert not key.startswith("sklearn.callback"), key
        assert key not in allowlist.refused, key
    for table in (safety.DANGEROUS_MODULES, safety.DANGEROUS_NAMES, safety.DANGEROUS_ATTRIBUTES):
        assert all(isinstance(v, str) and v for v in table.values())
