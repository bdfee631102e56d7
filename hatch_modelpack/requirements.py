"""From what an artifact references and records to ``Requires-Dist`` lines.

Module names are not distribution names (``sklearn`` is ``scikit-learn``), and the right pin depends on
the format's compatibility promise: scikit-learn only promises that a pickle loads under the version
that wrote it, so its default pin is exact; Keras and TensorFlow read files from older releases, so
their defaults are ranges. The ``pin`` setting relaxes or tightens that per model.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

#: Top-level module -> distribution that provides it, for the libraries models are pickled from.
MODULE_DISTRIBUTIONS: dict[str, str] = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "joblib": "joblib",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "imblearn": "imbalanced-learn",
    "statsmodels": "statsmodels",
    "category_encoders": "category-encoders",
    "skops": "skops",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "onnxruntime": "onnxruntime",
    "torch": "torch",
    "safetensors": "safetensors",
    "transformers": "transformers",
}

PIN_POLICIES = ("exact", "minor", "major", "minimum", "none")

#: How tightly each framework is pinned to the version recorded in the artifact, by default.
DEFAULT_PINS: dict[str, str] = {
    "scikit-learn": "exact",  # "a pickle loads only under the version that wrote it"
    "keras": "major",  # Keras 3 reads .keras files from any 3.x
    "tensorflow": "minimum",  # SavedModels load in the same or a newer TensorFlow
    "transformers": "major",  # save_pretrained directories load in later releases of the same major
    "torch": "minor",  # exported programs (.pt2) promise no compatibility across PyTorch releases
    # Only pickles record these bare (native formats carry their own floors): a pickled wrapper is code.
    "xgboost": "exact",
    "catboost": "exact",
}

_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__builtin__"}


def distribution_for_module(module: str) -> str | None:
    """The distribution providing ``module``, or None for the standard library and unknown modules."""
    top = module.split(".", 1)[0]
    if top in _STDLIB:
        return None
    return MODULE_DISTRIBUTIONS.get(top)


def pin(distribution: str, version: str, policy: str) -> str:
    """A requirement string for ``distribution`` that admits ``version`` under ``policy``."""
    v = Version(version)
    release = (*v.release, 0, 0)[:3]
    major, minor = release[0], release[1]
    if policy == "exact":
        return f"{distribution}=={v}"
    if policy == "minor":
        return f"{distribution}>={v},<{major}.{minor + 1}"
    if policy == "major":
        return f"{distribution}>={v},<{major + 1}"
    if policy == "minimum":
        return f"{distribution}>={v}"
    return distribution


def is_valid_version(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def merge(requirements: Iterable[str]) -> list[str]:
    """Normalised, deduplicated requirement strings sorted by distribution.

    Two different constraints on one distribution both stay: the installer intersects them.
    """
    parsed = {str(Requirement(text)): Requirement(text) for text in requirements}
    constrained = {canonicalize_name(r.name) for r in parsed.values() if r.specifier and not r.marker}
    # A bare "tensorflow" beside "tensorflow>=2.21" says nothing the constrained line does not.
    unique = [
        text
        for text, r in parsed.items()
        if r.specifier or r.extras or r.marker or canonicalize_name(r.name) not in constrained
    ]
    return sorted(unique, key=lambda r: (canonicalize_name(Requirement(r).name), r))


def check_requirement(text: str) -> str | None:
    """The parse error for a requirement string, or None when it is valid."""
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        return str(exc)
    return None


def specifier_clauses(requirement: str) -> list[list[str]]:
    """The requirement's version bounds as ``[operator, version]`` pairs the stdlib-only loader can check.

    ``~=`` and ``==X.*`` become a lower and an upper bound, so the loader needs only six plain
    comparisons on release numbers; anything it could not check exactly (``===``) is left out.
    """
    clauses: list[list[str]] = []
    for spec in Requirement(requirement).specifier:
        op, version = spec.operator, spec.version
        if op == "~=":
            release = Version(version).release
            upper = (*release[:-2], release[-2] + 1) if len(release) > 1 else (release[0] + 1,)
            clauses += [[">=", version], ["<", ".".join(map(str, upper))]]
        elif op in ("==", "!=") and version.endswith(".*"):
            release = Version(version[:-2]).release
            upper = (*release[:-1], release[-1] + 1)
            if op == "==":
                clauses += [[">=", version[:-2]], ["<", ".".join(map(str, upper))]]
        elif op in ("==", "!=", ">=", "<=", ">", "<"):
            clauses.append([op, version])
    return clauses
