"""What a fitted scikit-learn model expects as input, and which versions it records, read statically.

One walk serves both static readings of an estimator: the symbolic value of a pickle (inert ``Call``
trees) and the node tree of a skops ``schema.json``. Each reading supplies a small :class:`Reader`;
the walk itself (root estimator, a Pipeline's first real step, a search's ``best_estimator_``) is
written once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.scanning.values import Call, Global, SDict

Attrs = Callable[[str], Any]


class Reader(Protocol):
    """How one static representation exposes an estimator's attributes."""

    def attrs(self, node: Any) -> Attrs | None: ...
    def integer(self, value: Any) -> int | None: ...
    def strings(self, value: Any) -> list[str] | None: ...
    def steps(self, value: Any) -> list[Any]: ...


def input_schema(node: Any, reader: Reader, depth: int = 0) -> dict[str, Any] | None:
    """``{"n_features": 3, "features": ["a", "b", "c"]}`` for the estimator a caller feeds, or None."""
    attrs = reader.attrs(node) if depth <= 16 else None
    if attrs is None:
        return None
    schema: dict[str, Any] = {}
    n = reader.integer(attrs("n_features_in_"))
    if n is not None:
        schema["n_features"] = n
    names = reader.strings(attrs("feature_names_in_"))
    if names:
        schema["features"] = names
        schema.setdefault("n_features", len(names))
    if schema:
        return schema
    for step in reader.steps(attrs("steps"))[:1]:  # a Pipeline: its first real step sees the raw input
        return input_schema(step, reader, depth + 1)
    for key in ("best_estimator_", "estimator_", "estimator"):  # searches and meta-estimators
        inner = input_schema(attrs(key), reader, depth + 1)
        if inner:
            return inner
    return None


class PickleReader:
    """Estimators as the symbolic machine leaves them: a ``Call`` whose BUILD state is a dict."""

    def attrs(self, node: Any) -> Attrs | None:
        if not isinstance(node, Call):
            return None
        state = node.state
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) states
            state = state[0]
        return state.get if isinstance(state, SDict) else None

    def integer(self, value: Any) -> int | None:
        return value if type(value) is int else None

    def strings(self, value: Any) -> list[str] | None:
        """The items of a pickled 1-D object array of strings (``feature_names_in_``), or None.

        numpy pickles object arrays as ``_reconstruct(ndarray, (0,), b"b")`` + BUILD with the state
        ``(version, shape, dtype, is_fortran, [items...])``: the items are plain pickled strings.
        """
        if not (isinstance(value, Call) and isinstance(value.func, Global) and value.func.name == "_reconstruct"):
            return None
        state = value.state
        if isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], list):
            items = state[4]
            if items and all(isinstance(v, str) for v in items):
                return list(items)
        return None

    def steps(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            return []
        return [s[1] for s in value if isinstance(s, tuple) and len(s) == 2 and isinstance(s[1], Call)]


def json_content(node: Any) -> Any:
    """The value of a skops JsonNode (``{"__loader__": "JsonNode", "content": "<json text>"}``), or None."""
    if isinstance(node, dict) and node.get("__loader__") == "JsonNode" and isinstance(node.get("content"), str):
        try:
            return json.loads(node["content"])
        except ValueError:
            return None
    return None


class SkopsReader:
    """Estimators as a skops ``schema.json`` names them: ObjectNodes whose content is a DictNode."""

    def attrs(self, node: Any) -> Attrs | None:
        if not isinstance(node, dict) or node.get("__loader__") != "ObjectNode":
            return None
        attrs = node.get("content")
        items = attrs.get("content") if isinstance(attrs, dict) and attrs.get("__loader__") == "DictNode" else None
        return items.get if isinstance(items, dict) else None

    def integer(self, value: Any) -> int | None:
        n = json_content(value)
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    def strings(self, value: Any) -> list[str] | None:
        if not (
            isinstance(value, dict)
            and value.get("__loader__") == "NdArrayNode"
            and isinstance(value.get("content"), list)
        ):
            return None
        values = [json_content(v) for v in value["content"]]
        return values if values and all(isinstance(v, str) for v in values) else None

    def steps(self, value: Any) -> list[Any]:
        if not (isinstance(value, dict) and isinstance(value.get("content"), list)):
            return []
        out = []
        for step in value["content"]:
            pair = step.get("content") if isinstance(step, dict) else None
            # a step that is an estimator, not "passthrough" or None (JsonNodes)
            if (
                isinstance(pair, list)
                and len(pair) == 2
                and isinstance(pair[1], dict)
                and pair[1].get("__loader__") != "JsonNode"
            ):
                out.append(pair[1])
        return out


def sklearn_input_schema(value: Any) -> dict[str, Any] | None:
    """The input schema of a pickled estimator's symbolic value (see :func:`input_schema`)."""
    return input_schema(value, PickleReader())


def skops_input_schema(schema: Any) -> dict[str, Any] | None:
    """The input schema of the estimator a skops ``schema.json`` describes."""
    return input_schema(schema, SkopsReader())


def one_version(label: str, dist: str, versions: Iterable[str]) -> str | None:
    """The one version of ``dist`` an artifact records; several cannot all load under one install."""
    found = sorted(set(versions))
    if len(found) > 1:
        raise ArtifactError(
            f"{label}: records several {dist} versions ({', '.join(found)}); estimators saved under different "
            f"{dist} releases cannot all load under one. Load the model with one {dist} version and save it again."
        )
    return found[0] if found else None
