"""Versions of the gradient-boosting libraries inside a pickle, read from the native model it embeds.

A pickled ``XGBClassifier``/``LGBMClassifier``/``CatBoostClassifier`` (alone or in a scikit-learn
pipeline) is the wrapper's code plus the library's own model bytes: ``xgboost.core.Booster`` keeps its
raw UBJSON in ``handle`` (a ``bytearray``), ``lightgbm.basic.Booster`` the model text in ``_handle``, and
every CatBoost estimator a whole ``.cbm`` in ``__model``. The scanner's symbolic value (an inert tree of
:class:`~hatch_modelpack.scanning.Call` records) holds those bytes, so the build reads the version from
them with the same readers as the native formats, without unpickling anything.

The functions here take only the symbolic value: :func:`find_boosters` walks it, and
:func:`apply_to_inspection` is the hook ``formats/pickle.py`` calls after its own requirement inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import catboost, lightgbm, xgboost
from hatch_modelpack.scanning import Call, Global, Opaque, SDict

MAX_DEPTH = 64


@dataclass(frozen=True)
class PickledBooster:
    """One native model found in a pickle: the library, and what its bytes record."""

    distribution: str  # "xgboost", "lightgbm" or "catboost"
    owner: str  # the pickled class, e.g. "xgboost.core.Booster"
    version: str | None = None  # the library version the bytes record (xgboost, catboost)
    format_version: str | None = None  # lightgbm's model-format version ("v4")
    problem: str | None = None  # why nothing was read (bytes too large to keep, unreadable)


def _state(call: Call) -> SDict | None:
    state = call.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) states
        state = state[0]
    return state if isinstance(state, SDict) else None


def _bytes_of(value: Any) -> Any:
    """``bytearray(b"...")`` is pickled as a call of builtins.bytearray with the bytes as its argument."""
    if (
        isinstance(value, Call)
        and str(value.func) == "builtins.bytearray"
        and isinstance(value.args, tuple)
        and value.args
    ):
        return value.args[0]
    return value


def _known_prefix(value: Any) -> Any:
    """A large value the scanner did not keep: its first bytes, when the scanner records them (``head``).

    The versions sit at the start (XGBoost's ``Config``, LightGBM's ``version=`` line), so a prefix is enough.
    """
    head = getattr(value, "head", None) if isinstance(value, Opaque) else None
    return head if isinstance(head, (bytes, str)) else value


def _too_large(value: Any) -> str | None:
    if isinstance(value, Opaque):
        return f"the embedded model ({value.what}) is larger than the scanner keeps in memory"
    return None


def _inspect_call(call: Call) -> PickledBooster | None:
    func = call.func
    if not isinstance(func, Global):
        return None
    state = _state(call)
    if state is None:
        return None
    top = func.module.split(".", 1)[0]
    owner = str(func)
    if top == "xgboost" and func.name == "Booster":
        raw = _bytes_of(state.get("handle"))
        if raw is None:
            return PickledBooster("xgboost", owner, problem="an unfitted Booster (no model bytes)")
        version = xgboost.version_from_raw(_known_prefix(raw))
        return PickledBooster(
            "xgboost", owner, version, problem=None if version else _too_large(raw) or "the model bytes hold no version"
        )
    if top == "lightgbm" and func.name == "Booster":
        text = state.get("_handle")
        if text is None:
            text = state.get("handle")
        if text is None:
            return PickledBooster("lightgbm", owner, problem="an unfitted Booster (no model text)")
        prefix = _known_prefix(text)
        fmt = lightgbm.version_from_text(prefix.decode("utf-8", "replace") if isinstance(prefix, bytes) else prefix)
        return PickledBooster(
            "lightgbm",
            owner,
            format_version=fmt,
            problem=None if fmt else _too_large(text) or "the model text has no version= line",
        )
    if top == "catboost":
        blob = state.get("__model")
        if blob is None:
            return None  # not an estimator, or not fitted
        if not isinstance(blob, bytes):
            return PickledBooster("catboost", owner, problem=_too_large(blob) or "the model is not kept as bytes")
        try:
            version = catboost.library_version(catboost.read_model_bytes(blob)["info"])
        except catboost.CbmError as exc:
            return PickledBooster("catboost", owner, problem=f"the embedded .cbm is unreadable ({exc})")
        return PickledBooster(
            "catboost", owner, version, problem=None if version else "the embedded .cbm records no catboost version"
        )
    return None


def find_boosters(root: Any) -> list[PickledBooster]:
    """Every native gradient-boosting model in a scanned pickle's symbolic value, in stream order."""
    found: list[PickledBooster] = []
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH or id(value) in seen:
            continue
        if isinstance(value, (Call, SDict, list, tuple)):
            seen.add(id(value))
        children: list[Any] = []
        if isinstance(value, Call):
            booster = _inspect_call(value)
            if booster is not None:
                found.append(booster)
            children = [value.args, value.state]
        elif isinstance(value, SDict):
            children = [v for _, v in value.items]
        elif isinstance(value, (list, tuple)):
            children = list(value)
        stack.extend((c, depth + 1) for c in reversed(children))
    return found


def apply_to_inspection(
    root: Any, requires: set[str], frameworks: dict[str, str], details: dict[str, Any], label: str
) -> None:
    """Bound the boosting libraries a pickle needs by what its embedded models record (edits in place).

    xgboost and catboost record their release: it becomes a recorded framework version (pinned by the
    ``pin`` policy, exact by default: the pickle is the wrapper's code). lightgbm records only its
    model-format version: the requirement becomes that format's floor.
    """
    boosters = find_boosters(root)
    if not boosters:
        return
    for dist in ("xgboost", "catboost"):
        versions = {b.version for b in boosters if b.distribution == dist and b.version}
        if len(versions) > 1:
            raise ArtifactError(
                f"{label}: embeds {dist} models written by several {dist} releases ({', '.join(sorted(versions))}); "
                f"one environment cannot match them all. Load the model with one {dist} release and save it again."
            )
        if versions:
            frameworks[dist] = versions.pop()
    formats = {b.format_version for b in boosters if b.distribution == "lightgbm" and b.format_version}
    if formats:
        fmt = max(formats, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0)
        version, source = lightgbm.floor(fmt)
        requires.discard("lightgbm")
        requires.add(f"lightgbm>={version}")
        details["lightgbm_requirement_source"] = f"lightgbm>={version}: {source}"
    details["boosters"] = [
        {
            k: v
            for k, v in {
                "class": b.owner,
                "version": b.version,
                "format_version": b.format_version,
                "unread": b.problem,
            }.items()
            if v
        }
        for b in boosters
    ]
