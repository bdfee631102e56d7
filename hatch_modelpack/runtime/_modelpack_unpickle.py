"""The restricted unpicklers: only the globals the build recorded (and reviewed) are importable.

The build read every pickle statically and admitted each global it names against a reviewed
allowlist; the manifest's "globals" list is what it admitted. Loading goes through an unpickler
whose find_class admits exactly that list, as torch.load(weights_only=True) and skops do: a global
the build did not record raises IntegrityError before it is imported, let alone called.

Part of the loader that ships in every model package beside ``_modelpack.py``: standard library
only (pickle and joblib are imported when a model is loaded), Python 3.8 syntax.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet

from ._modelpack_errors import IntegrityError
from ._modelpack_integrity import _open_verified


def _recorded_globals(artifact: Path, entry: Dict[str, Any]) -> FrozenSet[str]:
    """The globals the build admitted; none recorded admits none (plain data still loads)."""
    recorded = entry.get("globals")
    return frozenset(str(g) for g in recorded) if isinstance(recorded, list) else frozenset()


def _refuse_global(artifact: Path, entry: Dict[str, Any], full: str) -> IntegrityError:
    return IntegrityError(
        f"{artifact}: unpickling model {entry.get('name')!r} needs the global {full}, which the build did not "
        "record for it; nothing of it was imported or run. The artifact or the manifest was changed after the "
        "package was built: reinstall the package from a trusted index"
    )


def _checked_global(
    unpickler: Any, module: str, name: str, allowed: FrozenSet[str], artifact: Path, entry: Dict[str, Any]
) -> Any:
    """find_class for both unpicklers: the name after pickle's Python 2 mapping, as the build resolved it."""
    compat = import_module("_compat_pickle")
    mapped = (module, name)
    if getattr(unpickler, "proto", 0) < 3 and getattr(unpickler, "fix_imports", True):
        if (module, name) in compat.NAME_MAPPING:
            mapped = compat.NAME_MAPPING[(module, name)]
        elif module in compat.IMPORT_MAPPING:
            mapped = (compat.IMPORT_MAPPING[module], name)
    full = mapped[0] + "." + mapped[1]
    if full not in allowed:
        raise _refuse_global(artifact, entry, full)
    if mapped == ("builtins", "getattr"):
        return _guarded_getattr(allowed, artifact, entry)
    return None


def _guarded_getattr(allowed: FrozenSet[str], artifact: Path, entry: Dict[str, Any]) -> Callable[[Any, str], Any]:
    """getattr for ``getattr(SomeClass, "name")`` (how bound classmethods pickle): recorded names only."""

    def getattr_(owner: Any, attr: str) -> Any:
        full = "{}.{}.{}".format(getattr(owner, "__module__", "?"), getattr(owner, "__qualname__", "?"), attr)
        if not isinstance(owner, type) or full not in allowed:
            raise _refuse_global(artifact, entry, full)
        return getattr(owner, attr)

    return getattr_


def _restricted_pickle_load(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    pickle = import_module("pickle")
    allowed = _recorded_globals(artifact, entry)

    class RestrictedUnpickler(pickle.Unpickler):  # type: ignore[misc,name-defined]
        def find_class(self, module: str, name: str) -> Any:
            special = _checked_global(self, module, name, allowed, artifact, entry)
            return special if special is not None else super().find_class(module, name)

    with _open_verified(artifact) as f:
        return RestrictedUnpickler(f, **kwargs).load()


def _restricted_joblib_load(artifact: Path, entry: Dict[str, Any], kwargs: Dict[str, Any]) -> Any:
    npp = import_module("joblib.numpy_pickle")
    pickle = import_module("pickle")
    allowed = _recorded_globals(artifact, entry)
    mmap_mode = kwargs.pop("mmap_mode", None)
    native = kwargs.pop("ensure_native_byte_order", "auto")
    if kwargs:
        raise TypeError(f"joblib models take mmap_mode= and ensure_native_byte_order= only, not {sorted(kwargs)}")
    if native == "auto":
        native = mmap_mode is None

    def find_class(self: Any, module: str, name: str) -> Any:
        special = _checked_global(self, module, name, allowed, artifact, entry)
        return special if special is not None else pickle._Unpickler.find_class(self, module, name)

    class InnerUnpickler(pickle._Unpickler):  # type: ignore[misc,name-defined]
        """joblib's object arrays are nested pickles: the same restriction applies to them."""

    InnerUnpickler.find_class = find_class

    def load_build(self: Any) -> None:
        pickle._Unpickler.load_build(self)
        top = self.stack[-1]
        if isinstance(top, npp.NumpyArrayWrapper) and top.dtype.hasobject != _holds_objects(top.dtype):
            raise IntegrityError(
                f"{artifact}: a joblib array's dtype claims {'' if top.dtype.hasobject else 'not '}to hold objects "
                "against its kind; the file was crafted to be read differently. Nothing of it was loaded"
            )
        if isinstance(top, npp.NumpyArrayWrapper) and top.dtype.hasobject:
            self.stack[-1] = InnerUnpickler(self.file_handle).load()  # not an unrestricted inner pickle.load
        elif isinstance(top, (npp.NumpyArrayWrapper, npp.NDArrayWrapper)):
            _joblib_read(self, npp)

    class RestrictedNumpyUnpickler(npp.NumpyUnpickler):  # type: ignore[misc,name-defined]
        dispatch = dict(npp.NumpyUnpickler.dispatch)  # noqa: RUF012 - pickle._Unpickler's own table, copied
        dispatch[pickle.BUILD[0]] = load_build

    RestrictedNumpyUnpickler.find_class = find_class
    with _open_verified(artifact) as f, npp._validate_fileobject_and_memmap(f, str(artifact), mmap_mode) as (
        fobj,
        validated,
    ):
        if isinstance(fobj, str):
            raise IntegrityError(f"{artifact}: is in joblib's format from before 0.10, which this loader refuses")
        try:
            unpickler = RestrictedNumpyUnpickler(str(artifact), fobj, native, mmap_mode=validated)
        except TypeError:  # joblib before 1.5 has no ensure_native_byte_order
            unpickler = RestrictedNumpyUnpickler(str(artifact), fobj, mmap_mode=validated)
        return unpickler.load()


def _holds_objects(dt: Any) -> bool:
    """Whether a dtype's kind (not its pickled flags) says it holds Python objects."""
    if dt.fields:
        return any(_holds_objects(spec[0]) for spec in dt.fields.values())
    if dt.subdtype:
        return _holds_objects(dt.subdtype[0])
    return bool(dt.kind == "O" or type(dt).__name__ == "StringDType")


def _joblib_read(unpickler: Any, npp: Any) -> None:
    """What joblib's own load_build does after BUILD: replace the wrapper with the array it reads."""
    wrapper = unpickler.stack.pop()
    if isinstance(wrapper, npp.NDArrayWrapper):
        raise IntegrityError(f"{unpickler.filename}: holds joblib's pre-0.10 array wrapper, which this loader refuses")
    native = getattr(unpickler, "ensure_native_byte_order", None)
    unpickler.stack.append(wrapper.read(unpickler) if native is None else wrapper.read(unpickler, native))
