"""The inert values the symbolic machine builds, and what a scan reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: How a stream uses a global. ``call``: called or instantiated while unpickling; ``value``: stored
#: (the model may call it later on data); ``built``: the object a call of it returned is then
#: modified by the stream (``BUILD``, ``SETITEM(S)``, ``APPEND(S)``, ``ADDITEMS``).
USES = ("call", "value", "built")


@dataclass(frozen=True)
class Global:
    """A global the unpickler would import: ``module.name`` (``name`` may be dotted)."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def key(self) -> str:
        """The exact (module, qualified name) pair as one string, as the allowlist spells it."""
        return f"{self.module}:{self.name}"


@dataclass(eq=False)
class Call:
    """The result of calling (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``) a global; never evaluated."""

    func: Global
    args: Any
    state: Any = None
    #: The class a copyreg constructor instantiates (``copyreg._reconstructor(cls, ...)``), else func.
    makes: Global | None = None
    #: SETITEM(S) on the call's result (an ``OrderedDict`` state dict): pairs, as for SDict.
    items: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(eq=False)
class SDict:
    """A dict built by the stream; a list of pairs, since symbolic keys need not be hashable."""

    items: list[tuple[Any, Any]] = field(default_factory=list)

    def get(self, key: str) -> Any:
        for k, v in reversed(self.items):
            if k == key and isinstance(k, str):
                return v
        return None

    def exact(self) -> dict[str, Any] | None:
        """The dict itself when every key is a distinct string literal, else None (not exactly known)."""
        out: dict[str, Any] = {}
        for k, v in self.items:
            if type(k) is not str or k in out:
                return None
            out[k] = v
        return out


@dataclass(eq=False)
class Persistent:
    """What ``persistent_load(pid)`` returns (a tensor storage for torch); never resolved here.

    Only produced when a scan is asked for with ``persistent_ids=True``: the caller, which knows the
    archive the pickle lives in, must check every ``pid`` itself.
    """

    pid: Any


@dataclass(frozen=True)
class Opaque:
    """A value the scanner does not keep: a large byte string, an array buffer."""

    what: str


@dataclass
class ScanResult:
    """What a stream references and records, read without executing it."""

    kind: str  # "pickle" or "joblib"
    compression: str | None
    protocol: int
    globals: set[Global] = field(default_factory=set)
    #: Global -> how the stream uses it (see :data:`USES`); the policy checks each use.
    uses: dict[Global, set[str]] = field(default_factory=dict)
    recorded_versions: dict[str, set[str]] = field(default_factory=dict)
    arrays_skipped: int = 0
    nested_pickles: int = 0
    opcodes: int = 0
    #: The symbolic value the outermost pickle leaves at STOP (an inert Call tree, never evaluated).
    root: Any = None

    def use(self, g: Global, how: str) -> None:
        self.globals.add(g)
        self.uses.setdefault(g, set()).add(how)

    def global_names(self) -> list[str]:
        return sorted(str(g) for g in self.globals)


#: The array wrapper joblib.dump writes; its BUILD is followed by the raw array bytes.
JOBLIB_WRAPPER = Global("joblib.numpy_pickle", "NumpyArrayWrapper")


class Stop(Exception):
    """Raised by STOP's handler to end the loop with the value it popped."""

    def __init__(self, value: Any) -> None:
        self.value = value
