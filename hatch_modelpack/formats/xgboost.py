"""XGBoost models saved with ``Booster.save_model`` / ``XGBModel.save_model``: JSON (``.json``) or UBJSON (``.ubj``).

Both hold one document ``{"learner": {...}, "version": [major, minor, patch]}``: data, not code.
The build reads the recorded version, the objective, the number of boosted rounds and features, the
feature names and types (the input schema) and, when ``save_model`` was called on an ``XGBClassifier``
or ``XGBRegressor``, the sklearn-interface attributes kept under ``learner.attributes.scikit_learn``.
A UBJSON model is read once, streaming, skipping the trees' arrays (:mod:`hatch_modelpack.ubjson`).

XGBoost loads JSON/UBJSON models written by older releases, so the requirement is a floor at the
recorded major.minor.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.ubjson import ALL, COUNT, Reader, UBJError, loads, read_document

#: What the build keeps of a model document; everything else (the trees) is walked and dropped.
SHAPE: dict[str, Any] = {
    "version": ALL,
    "learner": {
        "attributes": ALL,
        "feature_names": ALL,
        "feature_types": ALL,
        "learner_model_param": ALL,
        "objective": {"name": ALL},
        "gradient_booster": {
            "name": ALL,
            "model": {"gbtree_model_param": ALL, "iteration_indptr": COUNT, "trees": COUNT},
            "gbtree": {"model": {"gbtree_model_param": ALL, "iteration_indptr": COUNT, "trees": COUNT}},  # dart
        },
    },
}
_JSON_HEAD = re.compile(rb'^\s*\{\s*"(learner|version)"\s*:')
_UBJ_KEY = re.compile(rb"^\{(?:#[iUIlL].{1,8}?)?[iUIlL]\x00{0,7}\x07(learner|version)", re.S)
FIX = "Save the model again with booster.save_model(path) (or model.save_model(path) on the scikit-learn wrapper), using a .json or .ubj name, and check that the file was copied completely."


def is_xgboost_head(head: bytes) -> str | None:
    """``"json"`` or ``"ubj"`` when the first bytes open an XGBoost model document, else None."""
    if _JSON_HEAD.match(head):
        return "json"
    if _UBJ_KEY.match(head):
        return "ubj"
    return None


def version_string(version: Any) -> str | None:
    """``[3, 2, 0]`` -> ``"3.2.0"``; None when it is not a version array."""
    if (
        isinstance(version, list)
        and 2 <= len(version) <= 4
        and all(type(v) is int and 0 <= v < 10_000 for v in version)
    ):
        return ".".join(str(v) for v in version)
    return None


def read_model(path: Path, label: str) -> dict[str, Any]:
    """The kept parts of a model document (JSON or UBJSON, by its bytes); ArtifactError when it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            kind = is_xgboost_head(head)
            f.seek(0)
            if kind == "ubj":
                doc = read_document(f, os.fstat(f.fileno()).st_size, SHAPE)
            elif kind == "json":
                doc = json.load(f)
            else:
                raise ArtifactError(
                    f"{label}: does not start like an XGBoost model (a JSON or UBJSON document with a `learner` object). {FIX}"
                )
    except OSError as exc:
        raise ArtifactError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    except UBJError as exc:
        raise ArtifactError(
            f"{label}: is a damaged UBJSON document ({exc}), which XGBoost cannot load either. {FIX}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"{label}: is not valid JSON ({exc}), so XGBoost cannot load it. {FIX}") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("learner"), dict)
        or version_string(doc.get("version")) is None
    ):
        raise ArtifactError(
            f"{label}: is a JSON document but not an XGBoost model: it lacks the `learner` object and the `version` array that Booster.save_model writes. {FIX}"
        )
    doc["format"] = kind
    return doc


def _count(value: Any) -> int | None:
    return (
        len(value)
        if isinstance(value, list)
        else int(value)
        if isinstance(value, int) and not isinstance(value, bool)
        else None
    )


def describe(doc: dict[str, Any]) -> dict[str, Any]:
    """Manifest details from a model document (JSON-loaded or kept by the UBJSON reader)."""
    learner = doc["learner"]
    details: dict[str, Any] = {
        "container": doc.get("format", "json"),
        "xgboost_version": version_string(doc.get("version")),
    }
    objective = learner.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("name"), str):
        details["objective"] = objective["name"]
    booster = learner.get("gradient_booster")
    if isinstance(booster, dict):
        if isinstance(booster.get("name"), str):
            details["booster"] = booster["name"]
        model = (
            booster.get("model")
            if isinstance(booster.get("model"), dict)
            else (booster.get("gbtree") or {}).get("model")
        )
        if isinstance(model, dict):
            trees = _count(model.get("trees"))
            if trees is not None:
                details["trees"] = trees
            indptr = _count(model.get("iteration_indptr"))
            if indptr:
                details["rounds"] = indptr - 1
    param = learner.get("learner_model_param")
    if isinstance(param, dict):
        for key, out in (("num_feature", "n_features"), ("num_class", "num_class"), ("num_target", "num_target")):
            with_value = param.get(key)
            if isinstance(with_value, str) and with_value.isdigit():
                details[out] = int(with_value)
        if isinstance(param.get("base_score"), str):
            details["base_score"] = param["base_score"]
    if "rounds" not in details and "trees" in details:
        per_round = max(1, details.get("num_class") or 1)
        details["rounds"] = details["trees"] // per_round
    names, types = learner.get("feature_names"), learner.get("feature_types")
    attributes = learner.get("attributes")
    if isinstance(attributes, dict):
        sk = attributes.get("scikit_learn")
        if isinstance(sk, str):
            try:
                details["scikit_learn"] = json.loads(sk)
            except ValueError:
                details["scikit_learn"] = sk
        other = {k: v for k, v in attributes.items() if k != "scikit_learn" and isinstance(v, str)}
        if other:
            details["attributes"] = other
    schema: dict[str, Any] = {}
    if "n_features" in details:
        schema["n_features"] = details["n_features"]
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        schema["features"] = names
        schema.setdefault("n_features", len(names))
    if isinstance(types, list) and types and all(isinstance(t, str) for t in types):
        schema["feature_types"] = types
    if schema:
        details["input_schema"] = schema
    return details


def requirement(version: str) -> str:
    """XGBoost reads JSON/UBJSON models of older releases: a floor at the recorded major.minor."""
    major, minor = version.split(".")[:2]
    return f"xgboost>={major}.{minor}"


def version_from_raw(raw: Any) -> str | None:
    """The version inside a pickled Booster's raw bytes, or None.

    ``Booster.__getstate__`` keeps UBJSON ``{"Config": {..., "version": [...]}, "Model": {...}}`` (older
    releases: the JSON model). ``Config`` comes first and records the version, so a prefix of the bytes
    (the first few KiB) is enough; the model after it is not read.
    """
    if not isinstance(raw, (bytes, bytearray)):
        return None
    data = bytes(raw)
    if data[:1] == b"{" and data[1:2] in (b'"', b" ", b"\n"):
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        return version_string(doc.get("version")) if isinstance(doc, dict) else None
    reader = Reader(io.BytesIO(data), len(data))
    try:
        if reader.value_head() != b"{":
            return None
        key = reader.key()
        if key == "Config":
            config = reader.value({"version": ALL})
            return version_string(config.get("version")) if isinstance(config, dict) else None
        doc = loads(data, {"Model": {"version": ALL}, "version": ALL})
    except (UBJError, struct.error, ValueError, OverflowError):
        return None
    for part in (doc.get("Model"), doc) if isinstance(doc, dict) else ():
        if isinstance(part, dict) and version_string(part.get("version")):
            return version_string(part.get("version"))
    return None


class XGBoostFormat(Format):
    name: ClassVar[str] = "xgboost"
    suffixes: ClassVar[tuple[str, ...]] = (".json", ".ubj")

    def sniff(self, path: Path, head: bytes) -> bool:
        return is_xgboost_head(head) is not None

    def inspect(self, path: Path, label: str) -> Inspection:
        doc = read_model(path, label)
        details = describe(doc)
        version = details["xgboost_version"]
        return Inspection(requires=[requirement(version)], frameworks={"xgboost": version}, details=details)
