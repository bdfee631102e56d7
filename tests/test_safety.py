"""The pickle-globals policy: what is refused for good, what a user may allow, what is allowed already."""

from __future__ import annotations

import pytest

from hatch_modelpack import safety
from hatch_modelpack.safety import check_global, check_globals
from hatch_modelpack.scanning import Global

PKG = "churn_model"


def decide(full: str, allow: list[str] | None = None, package: str = PKG, split: int | None = None):
    """check_global for a dotted name; ``split`` picks where the module ends (default: before the last dot)."""
    parts = full.split(".")
    cut = len(parts) - 1 if split is None else split
    return check_global(Global(".".join(parts[:cut]), ".".join(parts[cut:])), package, allow or [])


@pytest.mark.parametrize(
    "name",
    [
        "os.system", "posix.system", "nt.system", "subprocess.Popen", "subprocess.getoutput", "sys.modules",
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.__import__",
        "builtins.getattr", "builtins.print", "importlib.import_module", "runpy.run_path", "socket.socket",
        "shutil.rmtree", "pickle.loads", "_pickle.loads", "marshal.loads", "ctypes.CDLL", "webbrowser.open",
        "pty.spawn", "code.interact", "types.FunctionType", "functools.partial", "operator.attrgetter",
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
    assert finding.name == name
    assert finding.reason  # every refusal says why


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.pipeline.Pipeline", "sklearn.tree._tree.Tree", "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray", "numpy.log",
        "numpy.random._pickle.__randomstate_ctor", "scipy.sparse._csr.csr_matrix",
        "pandas.core.frame.DataFrame", "pandas._libs.internals._unpickle_block", "xgboost.core.Booster",
        "lightgbm.basic.Booster", "catboost.core.CatBoostClassifier", "joblib.numpy_pickle.NumpyArrayWrapper",
        "copyreg._reconstructor", "copyreg.__newobj__", "_codecs.encode", "builtins.set", "builtins.bytes",
        "collections.OrderedDict", "datetime.datetime", "decimal.Decimal", "uuid.UUID", "re._compile",
    ],
)  # fmt: skip
def test_the_scientific_stack_is_allowed(name):
    assert decide(name) is None, name


def test_the_users_own_package_is_allowed():
    assert decide("churn_model.features.Ratios") is None
    assert decide("churn_model.Ratios") is None
    # ...but not a look-alike, and not a dangerous attribute it happens to import.
    assert decide("churn_model_extra.Ratios").overridable
    assert not decide("churn_model.features.os", split=2).overridable


def test_other_globals_are_refused_with_a_key_that_allows_them():
    finding = decide("churn_features.Ratios")
    assert finding.overridable
    assert "outside the scientific stack" in finding.reason
    assert decide("churn_features.Ratios", allow=["churn_features.Ratios"]) is None
    assert decide("churn_features.Ratios", allow=["churn_features.*"]) is None
    assert decide("churn_features.sub.Ratios", allow=["churn_features.*"]) is None
    assert decide("churn_features.Ratios", allow=["churn_feat.*", "other.Ratios"]).overridable


def test_dotted_attribute_paths_need_an_exact_allow():
    # Global("pandas", "DataFrame.to_csv"): what protocol 4 resolves through getattr chains.
    finding = decide("pandas.DataFrame.to_csv", split=1)
    assert finding.overridable and "attribute" in finding.reason
    assert decide("pandas.DataFrame.to_csv", allow=["pandas.*"], split=1) is not None
    nested = "churn_features.Outer.Inner"
    assert decide(nested, split=1).overridable
    assert decide(nested, allow=["churn_features.*"], split=1) is not None
    assert decide(nested, allow=[nested], split=1) is None
    # The array wrapper's exact name only counts under its real module split.
    assert decide("joblib.numpy_pickle.NumpyArrayWrapper", split=1) is not None


def test_findings_are_sorted_and_complete():
    gs = {Global("os", "system"), Global("sklearn.pipeline", "Pipeline"), Global("churn_features", "Ratios")}
    findings = check_globals(gs, PKG, [])
    assert [f.name for f in findings] == ["churn_features.Ratios", "os.system"]
    assert [f.overridable for f in findings] == [True, False]


def test_lists_are_documented_and_consistent():
    for table in (safety.DANGEROUS_MODULES, safety.DANGEROUS_NAMES, safety.DANGEROUS_ATTRIBUTES):
        assert all(isinstance(v, str) and v for v in table.values())
    # Nothing is both safe and dangerous, except the documented exceptions inside refused modules.
    for name in safety.SAFE_NAMES:
        module, _, attr = name.rpartition(".")
        assert check_global(Global(module, attr), PKG, []) is None, name
    for module in safety.SAFE_MODULES:
        assert not any(module == p or module.startswith(p + ".") for p in safety.DANGEROUS_MODULES), module
