"""Which pickle globals a model package may reference.

Unpickling calls whatever the stream names, so the set of globals *is* the set of code a service will
run at ``load()``. The policy, in order:

1. **Refused, always**: globals that run code or touch the system (:data:`DANGEROUS_MODULES`,
   :data:`DANGEROUS_NAMES`). ``allow-globals`` cannot override these; ship such an artifact as
   ``format = "raw"`` and deserialise it yourself if you must.
2. **Allowed by the user**: ``allow-globals = ["pkg.mod.Name", "pkg.mod.*"]``.
3. **Allowed, the package itself**: anything under the package being built (feature code, custom
   transformers that ship in the same wheel).
4. **Allowed, the scientific stack**: :data:`SAFE_MODULES` and :data:`SAFE_NAMES`.
5. Everything else is refused, with the key that allows it.

The lists follow what public pickle scanners (picklescan, modelscan, fickling) flag, written for
this package's narrower job: a model package has no reason to reference anything but its framework.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hatch_modelpack.scanning import Global

#: Modules whose globals are refused outright, with why (a prefix match on the module path).
DANGEROUS_MODULES: dict[str, str] = {
    "os": "runs commands and touches files",
    "posix": "runs commands and touches files",
    "nt": "runs commands and touches files",
    "subprocess": "runs commands",
    "_posixsubprocess": "runs commands",
    "pty": "spawns processes",
    "sys": "changes the interpreter (modules, paths, hooks)",
    "importlib": "imports arbitrary code",
    "runpy": "runs modules as scripts",
    "code": "runs Python source",
    "codeop": "compiles Python source",
    "types": "builds functions and code objects from bytes",
    "marshal": "loads code objects",
    "pickle": "unpickles nested payloads the scan cannot see",
    "_pickle": "unpickles nested payloads the scan cannot see",
    "dill": "unpickles code",
    "cloudpickle": "unpickles code",
    "shelve": "unpickles stored objects",
    "socket": "opens network connections",
    "http": "makes network requests",
    "urllib": "makes network requests",
    "requests": "makes network requests",
    "ftplib": "makes network requests",
    "smtplib": "sends mail",
    "webbrowser": "starts programs",
    "shutil": "copies and deletes files",
    "tempfile": "creates files",
    "pathlib": "reads and writes files",
    "io": "opens files",
    "_io": "opens files",
    "glob": "lists files",
    "zipfile": "reads and writes archives",
    "tarfile": "reads and writes archives",
    "ctypes": "calls native code",
    "_ctypes": "calls native code",
    "multiprocessing": "starts processes",
    "threading": "starts threads",
    "signal": "changes signal handlers",
    "asyncio": "starts event loops and subprocesses",
    "operator": "calls arbitrary methods (attrgetter, methodcaller)",
    "functools": "wraps calls to hide them (partial, reduce)",
    "pdb": "runs code under the debugger",
    "bdb": "runs code under the debugger",
    "timeit": "runs code strings",
    "trace": "runs code",
    "cProfile": "runs code strings",
    "profile": "runs code strings",
    "inspect": "reaches into frames and modules",
    "gc": "reaches into every live object",
    "sqlite3": "opens databases",
    "numpy.testing": "runstring executes code",
    "numpy.f2py": "compiles and imports code",
    "numpy.distutils": "runs build commands",
    "numpy.ctypeslib": "loads native libraries",
    "numpy.lib.npyio": "loads files, pickles included",
    "numpy.lib._npyio_impl": "loads files, pickles included",
    "numpy.lib.format": "loads files, pickles included",
    "pandas.io": "reads files and unpickles them",
    "pandas.core.computation": "evaluates expression strings",
    "scipy.io": "reads and writes files",
    "sklearn.datasets": "downloads and reads files",
    "sklearn.utils._testing": "runs test helpers",
    "joblib": "loads files and runs parallel jobs (only joblib.numpy_pickle.NumpyArrayWrapper is safe)",
    "torch.hub": "downloads and runs code",
}

#: Single globals refused outright, with why.
DANGEROUS_NAMES: dict[str, str] = {
    "builtins.eval": "evaluates Python source",
    "builtins.exec": "executes Python source",
    "builtins.compile": "compiles Python source",
    "builtins.open": "opens files",
    "builtins.__import__": "imports arbitrary modules",
    "builtins.getattr": "reaches any attribute of any object, os.system included",
    "builtins.setattr": "changes any attribute of any object",
    "builtins.delattr": "changes any object",
    "builtins.globals": "reaches the interpreter's globals",
    "builtins.locals": "reaches the interpreter's frames",
    "builtins.vars": "reaches any object's namespace",
    "builtins.input": "reads from the terminal",
    "builtins.breakpoint": "starts the debugger",
    "builtins.exit": "exits the process",
    "builtins.quit": "exits the process",
    "builtins.help": "starts the pager",
    "builtins.memoryview": "reaches raw memory",
    "builtins.type": "creates classes at load time",
    "builtins.object.__reduce_ex__": "reaches reduction machinery",
    "numpy.load": "loads files, pickles included",
    "numpy.save": "writes files",
    "numpy.savez": "writes files",
    "numpy.savez_compressed": "writes files",
    "numpy.savetxt": "writes files",
    "numpy.loadtxt": "reads files",
    "numpy.genfromtxt": "reads files",
    "numpy.fromfile": "reads files",
    "numpy.memmap": "maps files",
    "pandas.eval": "evaluates expression strings",
    "pandas.read_pickle": "unpickles files",
    "copyreg.add_extension": "rewires the unpickler",
    "copyreg.pickle": "rewires pickling",
}
# The unpickler's own helpers that a pickle of a Python 2 name also reaches.
DANGEROUS_NAMES.update({"__builtin__." + k.split(".", 1)[1]: v for k, v in list(DANGEROUS_NAMES.items()) if k.startswith("builtins.")})

#: Modules whose globals a scikit-learn-era model legitimately references (prefix match).
SAFE_MODULES: tuple[str, ...] = (
    "numpy",
    "scipy",
    "sklearn",
    "pandas",
    "xgboost",
    "lightgbm",
    "catboost",
    "imblearn",
    "statsmodels",
    "category_encoders",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "_codecs",  # only encode is reached in practice; see SAFE_NAMES for the others
    "pytz",
    "zoneinfo",
    "uuid",
    "enum",
)

#: Single globals outside SAFE_MODULES that plain pickles of ordinary data use.
SAFE_NAMES: frozenset[str] = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "_codecs.encode",
        "re._compile",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.range",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.object",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bool",
        "builtins.NotImplemented",
        "builtins.Ellipsis",
        "__builtin__.set",
        "__builtin__.frozenset",
        "__builtin__.object",
        "__builtin__.slice",
        "__builtin__.complex",
    }
)
# _codecs' module entry is only for encode: everything else in _codecs is refused below.
_CODECS_ALLOWED = {"_codecs.encode"}


@dataclass(frozen=True)
class Finding:
    """One global the policy refuses, and why."""

    name: str
    reason: str
    overridable: bool


def _module_match(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _allowed_by_user(g: Global, allow: Iterable[str]) -> bool:
    full = str(g)
    for pattern in allow:
        if pattern.endswith(".*"):
            if _module_match(g.module, pattern[:-2]):
                return True
        elif pattern == full:
            return True
    return False


def check_global(g: Global, package: str, allow: Iterable[str]) -> Finding | None:
    """None when ``g`` may be imported by the package's loader, otherwise why not."""
    full = str(g)
    if full in DANGEROUS_NAMES:
        return Finding(full, DANGEROUS_NAMES[full], overridable=False)
    if full not in SAFE_NAMES:
        for prefix, reason in DANGEROUS_MODULES.items():
            if _module_match(g.module, prefix):
                return Finding(full, reason, overridable=False)
    if g.module in {"builtins", "__builtin__"} and full not in SAFE_NAMES:
        return Finding(full, "is a builtin outside the small set of plain data types", overridable=False)
    if g.module == "_codecs" and full not in _CODECS_ALLOWED:
        return Finding(full, "is a codec internal outside _codecs.encode", overridable=False)
    if _allowed_by_user(g, allow):
        return None
    if _module_match(g.module, package):
        return None
    if full in SAFE_NAMES or any(_module_match(g.module, m) for m in SAFE_MODULES):
        return None
    if g.module == "__main__":
        return Finding(
            full,
            "is defined in the training script's __main__, which a service cannot import; move it into "
            "your package (or a module you ship) and retrain",
            overridable=False,
        )
    return Finding(full, "is outside the scientific stack and outside this package", overridable=True)


def check_globals(globals_: Iterable[Global], package: str, allow: Iterable[str]) -> list[Finding]:
    allow = list(allow)
    findings = [check_global(g, package, allow) for g in sorted(globals_, key=str)]
    return [f for f in findings if f is not None]
