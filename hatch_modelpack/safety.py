"""Which pickle globals a model package may reference, and for what.

Unpickling calls whatever the stream names, so the set of globals *is* the set of code a service
runs at ``load()``. The scanner (:mod:`hatch_modelpack.scanning`) resolves every global the way
``find_class`` will and records how the stream uses it (called, stored, or modified after a call made
it); this module decides, for each global and each use:

1. **The reviewed allowlist** (:mod:`hatch_modelpack.allowlist`, data derived from the real libraries
   and reviewed): an exact ``module:qualname`` pair admits exactly the uses it lists. A name on its
   ``refused`` list is refused with the reviewer's reason. No prefix rule admits anything.
2. **The user's** ``allow-globals``: ``pkg.mod.Name`` exactly, or ``pkg.mod.*`` for names defined
   directly in one of the user's own modules (a wildcard never covers the scientific stack or the
   standard library, nor a dotted attribute path).
3. **The package itself**: a module-level ``def`` or ``class`` of the package being built, read from
   its source with :mod:`ast` (:mod:`hatch_modelpack.own_names`). An imported name is not the
   package's own; a name bound to a ``lambda`` is refused with the fix.
4. Everything else is refused, with the key that would allow it. Whatever the user allows, the names
   below (modules and attributes that run code or touch the system) stay refused.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hatch_modelpack import own_names
from hatch_modelpack.allowlist import load as load_allowlist
from hatch_modelpack.scanning import Global

#: Modules whose globals are refused outright, with why (a prefix match on the full dotted path).
DANGEROUS_MODULES: dict[str, str] = {
    # running commands and code
    "os": "runs commands and touches files",
    "posix": "runs commands and touches files",
    "nt": "runs commands and touches files",
    "subprocess": "runs commands",
    "_posixsubprocess": "runs commands",
    "pty": "spawns processes",
    "sys": "changes the interpreter (modules, paths, hooks)",
    "builtins": "is a builtin outside the plain data types (eval, exec, open, __import__ live there)",
    "importlib": "imports arbitrary code",
    "_imp": "imports arbitrary code",
    "imp": "imports arbitrary code",
    "pkgutil": "resolves any name to any object (resolve_name)",
    "zipimport": "imports code from archives",
    "runpy": "runs modules as scripts",
    "code": "runs Python source",
    "codeop": "compiles Python source",
    "types": "builds functions and code objects from bytes",
    "marshal": "loads code objects",
    "doctest": "runs code from strings",
    "pydoc": "runs pagers and imports modules",
    "IPython": "runs code cells",
    "numexpr": "evaluates expression strings",
    "sympy": "evaluates strings (sympify)",
    "logging.config": "evaluates configuration and listens on sockets",
    "mailcap": "runs the commands of mailcap entries",
    "imaplib": "runs commands (IMAP4_stream)",
    "lib2to3": "loads pickled grammars",
    "venv": "creates environments and runs pip",
    "ensurepip": "runs pip",
    "pip": "installs packages",
    "setuptools": "runs build commands",
    "distutils": "runs build commands",
    # deserialisers that would run a nested payload the scan cannot see
    "pickle": "unpickles nested payloads the scan cannot see",
    "_pickle": "unpickles nested payloads the scan cannot see",
    "copyreg": "rewires the unpickler",  # its object constructors are in SAFE_NAMES
    "dill": "unpickles code",
    "cloudpickle": "unpickles code",
    "jsonpickle": "unpickles objects from JSON",
    "shelve": "unpickles stored objects",
    "yaml": "constructs arbitrary objects (yaml.load)",
    "torch.serialization": "unpickles files",
    "torch.hub": "downloads and runs code",
    "joblib": "loads files and runs parallel jobs (only joblib.numpy_pickle.NumpyArrayWrapper is safe)",
    # the system: network, files, processes, native code
    "socket": "opens network connections",
    "_socket": "opens network connections",
    "ssl": "opens network connections",
    "http": "makes network requests",
    "urllib": "makes network requests",
    "requests": "makes network requests",
    "ftplib": "makes network requests",
    "telnetlib": "makes network requests",
    "xmlrpc": "makes network requests",
    "smtplib": "sends mail",
    "webbrowser": "starts programs",
    "antigravity": "starts a web browser",
    "shutil": "copies and deletes files",
    "tempfile": "creates files",
    "pathlib": "reads and writes files",
    "io": "opens files",
    "_io": "opens files",
    "codecs": "opens files (codecs.open)",
    "fileinput": "reads files",
    "glob": "lists files",
    "zipfile": "reads and writes archives",
    "tarfile": "reads and writes archives",
    "mmap": "maps files",
    "fcntl": "controls file descriptors",
    "resource": "changes process limits",
    "ctypes": "calls native code",
    "_ctypes": "calls native code",
    "cffi": "calls native code",
    "multiprocessing": "starts processes",
    "concurrent": "starts processes and threads",
    "threading": "starts threads",
    "_thread": "starts threads",
    "signal": "changes signal handlers",
    "atexit": "registers code to run at exit",
    "faulthandler": "writes to file descriptors",
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
    # the dangerous corners of the scientific stack
    "numpy.testing": "runstring executes code",
    "numpy._pytesttester": "runs the test suite",
    "numpy.f2py": "compiles and imports code",
    "numpy.distutils": "runs build commands",
    "numpy.ctypeslib": "loads native libraries",
    "numpy.lib.npyio": "loads files, pickles included",
    "numpy.lib._npyio_impl": "loads files, pickles included",
    "numpy.lib.format": "loads files, pickles included",
    "numpy.lib._datasource": "opens files and URLs",
    "numpy.core.memmap": "maps files",
    "numpy._core.memmap": "maps files",
    "pandas.io": "reads files and unpickles them",
    "pandas.core.computation": "evaluates expression strings",
    "pandas.plotting": "imports a backend module named by a string",
    "pandas.testing": "runs test helpers (round-trips through pickle)",
    "pandas._testing": "runs test helpers (round-trips through pickle)",
    "pandas.util._tester": "runs the test suite",
    "pandas._config": "changes process-wide settings",
    "scipy.io": "reads and writes files",
    "scipy.datasets": "downloads files",
    "scipy._lib._testutils": "runs the test suite",
    "sklearn.datasets": "downloads and reads files",
    "sklearn.utils._testing": "runs test helpers",
    "sklearn.utils.estimator_checks": "runs test helpers",
    "sklearn.utils._joblib": "re-exports joblib's load, dump and Parallel",
    "statsmodels.iolib": "reads files and unpickles them",
    "statsmodels.datasets": "downloads files",
    "imblearn.datasets": "downloads files",
    "catboost.datasets": "downloads files",
    "xgboost.tracker": "opens network services",
    "xgboost.collective": "opens network connections",
    "xgboost.dask": "connects to clusters",
    "xgboost.spark": "connects to clusters",
    "xgboost.testing": "runs test helpers",
    "lightgbm.dask": "connects to clusters",
}

#: Single globals refused outright, with why.
DANGEROUS_NAMES: dict[str, str] = {
    "numpy.save": "writes files",
    "numpy.savez": "writes files",
    "numpy.savez_compressed": "writes files",
    "numpy.savetxt": "writes files",
    "numpy.loadtxt": "reads files",
    "numpy.genfromtxt": "reads files",
    "numpy.DataSource": "opens files and URLs",
    "numpy.test": "runs the test suite",
    "pandas.eval": "evaluates expression strings",
    "pandas.to_pickle": "writes pickles",
    "pandas.HDFStore": "opens files",
    "pandas.ExcelFile": "opens files",
    "pandas.ExcelWriter": "writes files",
    "pandas.set_option": "changes process-wide settings",
    "pandas.test": "runs the test suite",
    "scipy.test": "runs the test suite",
    "sklearn.set_config": "changes process-wide settings",
    "torch.load": "unpickles files",
    "uuid._get_command_stdout": "runs commands",
    "uuid._popen": "runs commands",
}

#: Attribute names refused in any module, with why: modules re-export them under innocent paths.
DANGEROUS_ATTRIBUTES: dict[str, str] = {
    "system": "runs shell commands",
    "popen": "runs shell commands",
    "getoutput": "runs shell commands",
    "getstatusoutput": "runs shell commands",
    "check_output": "runs commands",
    "check_call": "runs commands",
    "eval": "evaluates Python source",
    "exec": "executes Python source",
    "execfile": "executes Python files",
    "compile": "compiles Python source",
    "import_module": "imports arbitrary modules",
    "__import__": "imports arbitrary modules",
    "resolve_name": "resolves any name to any object",
    "getattr": "reaches any attribute of any object, os.system included",
    "setattr": "changes any attribute of any object",
    "delattr": "changes any object",
    "breakpoint": "starts the debugger",
    "set_trace": "starts the debugger",
    "open": "opens files",
    "load": "loads files, pickles included",
    "loads": "deserialises bytes, pickles included",
    "load_pickle": "unpickles files",
    "read_pickle": "unpickles files",
    "to_pickle": "writes pickles",
    "fromfile": "reads files",
    "tofile": "writes files",
    "fromregex": "reads files",
    "memmap": "maps files",
    "open_memmap": "maps files",
    "urlopen": "makes network requests",
    "urlretrieve": "downloads files",
    "runstring": "executes code strings",
    "run_module": "runs modules as scripts",
    "run_path": "runs files as scripts",
    "findmatch": "runs mailcap commands",
}
#: Attribute-name prefixes refused in any module: ``read_csv``/``read_sql`` (files, URLs, databases),
#: ``spawnv``, ``execvp``, ``popen2``.
DANGEROUS_ATTRIBUTE_PREFIXES: dict[str, str] = {
    "read_": "reads files, URLs or databases",
    "spawn": "starts processes",
    "exec": "runs programs or code",
    "popen": "runs shell commands",
}

#: Dangerous modules by the names other modules import them under: ``collections._sys`` *is* sys.
MODULE_ALIASES: frozenset[str] = frozenset(
    {
        "os", "_os", "posix", "nt", "sys", "_sys", "subprocess", "_subprocess", "_posixsubprocess",
        "builtins", "importlib", "_imp", "imp", "pkgutil", "runpy", "marshal", "pickle", "_pickle",
        "cPickle", "dill", "cloudpickle", "shelve", "shutil", "socket", "_socket", "ctypes", "_ctypes",
        "pty", "webbrowser", "multiprocessing", "asyncio", "io", "_io", "codecs", "tempfile",
        "pathlib", "operator", "functools", "threading", "_thread", "signal", "inspect", "gc",
        "joblib", "urllib", "http", "requests",
    }
)  # fmt: skip

_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__builtin__"}


@dataclass(frozen=True)
class Finding:
    """One global the policy refuses, and why."""

    name: str
    reason: str
    overridable: bool


def _module_match(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _wildcard_ok(pattern: str) -> bool:
    """A ``pkg.mod.*`` wildcard may only cover the user's own modules."""
    top = pattern.split(".", 1)[0]
    return top not in _STDLIB and top not in load_allowlist().top_modules()


def _allowed_by_user(g: Global, allow: Iterable[str]) -> bool:
    full = str(g)
    for pattern in allow:
        if pattern == full:
            return True
        if pattern.endswith(".*") and "." not in g.name and g.module == pattern[:-2] and _wildcard_ok(pattern):
            return True
    return False


def _always_refused(g: Global) -> str | None:
    """Why ``g`` is dangerous whatever the configuration says, or None."""
    full = str(g)
    segments = g.name.split(".")
    last = segments[-1]
    if full in DANGEROUS_NAMES:
        return DANGEROUS_NAMES[full]
    if last in DANGEROUS_ATTRIBUTES:
        return DANGEROUS_ATTRIBUTES[last]
    for prefix, reason in DANGEROUS_ATTRIBUTE_PREFIXES.items():
        if last.startswith(prefix):
            return reason
    for prefix, reason in DANGEROUS_MODULES.items():
        if _module_match(full, prefix):
            return reason
    for seg in segments:
        if seg.startswith("__") and seg.endswith("__"):
            return f"reaches the special attribute {seg}"
        if seg in MODULE_ALIASES:
            return f"reaches the {seg} module through an attribute"
    if g.module == "_codecs":
        return "is a codec internal (only _codecs.encode, for protocol 0-2 bytes, is on the reviewed list)"
    if g.module == "__main__":
        return (
            "is defined in the training script's __main__, which a service cannot import; move it into "
            "your package (or a module you ship) and retrain"
        )
    return None


def _listed(g: Global, needed: set[str]) -> Finding | bool | None:
    """The allowlist's verdict: True (admitted), a Finding, or None (not on the list)."""
    allowlist = load_allowlist()
    if g.key in allowlist.refused:
        return Finding(str(g), allowlist.refused[g.key], overridable=False)
    uses = allowlist.uses(g.key)
    if uses is None:
        return None
    extra = needed - uses
    if not extra:
        return True
    return Finding(
        str(g),
        f"is on the reviewed allowlist for {'/'.join(sorted(uses))} only, but this stream uses it as "
        f"{'/'.join(sorted(extra))} (" + _USE_TEXT + "); a stream that does that is not one a library writes",
        overridable=False,
    )


_USE_TEXT = "call: called while unpickling; built: an object a call of it made is then modified"


def _own(g: Global, package: str, root: Path | None) -> Finding | bool | None:
    """The package's own names: admitted where its source defines them."""
    if not _module_match(g.module, package):
        return None
    if root is None:
        return None
    verdict = own_names.defines(root, g.module, g.name)
    if verdict == own_names.DEFINED:
        return True
    if verdict == own_names.LAMBDA:
        return Finding(
            str(g),
            f"is bound to a lambda in {g.module}, which pickle cannot import by name (load() would fail); "
            "define it with def at module level and save the model again",
            overridable=False,
        )
    if verdict == own_names.NOT_DEFINED:
        return Finding(
            str(g),
            f"is not defined by a def or class in {g.module} (an imported name is the object it was imported "
            "from, and only that name counts); save the model after defining it there, or allow the exact name",
            overridable=True,
        )
    return None


def check_global(
    g: Global, package: str, allow: Iterable[str], uses: set[str] | None = None, root: Path | None = None
) -> Finding | None:
    """None when ``g`` may be imported (for ``uses``) by the package's loader, otherwise why not."""
    needed = set(uses or {"value"})
    listed = _listed(g, needed)
    if listed is True:
        return None
    if isinstance(listed, Finding):
        return listed
    reason = _always_refused(g)
    if reason is not None:
        return Finding(str(g), reason, overridable=False)
    if _allowed_by_user(g, allow):
        return None
    own = _own(g, package, root)
    if own is True:
        return None
    if isinstance(own, Finding):
        return own
    if "." in g.name:
        return Finding(
            str(g),
            f"reaches the attribute {g.name!r} of {g.module} (a method or a nested class), which is not on the "
            "reviewed allowlist; only an exact allow-globals entry admits one",
            overridable=True,
        )
    return Finding(str(g), "is not on the reviewed allowlist and not defined by this package", overridable=True)


def check_globals(
    globals_: Iterable[Global],
    package: str,
    allow: Iterable[str],
    *,
    uses: Mapping[Global, set[str]] | None = None,
    root: Path | None = None,
) -> list[Finding]:
    """Every refused global, sorted by name."""
    allow = list(allow)
    uses = uses or {}
    findings = [check_global(g, package, allow, set(uses.get(g, {"value"})), root) for g in sorted(globals_, key=str)]
    return [f for f in findings if f is not None]
