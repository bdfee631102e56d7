"""Every estimator in ``sklearn.utils.all_estimators()``, fitted on small seeded data.

Shared by the allowlist derivation (``tools/derive_allowlist.py``) and the round-trip test
(``tests/test_allowlist_estimators.py``): the list the allowlist is derived from is the list it is
tested against. Instances come from scikit-learn's own test instance generator, which fills the
required parameters of meta-estimators; inputs follow each estimator's tags.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

N_SAMPLES = 60
N_FEATURES = 4


def _data(seed: int = 0) -> tuple[Any, Any, Any]:
    rng = np.random.RandomState(seed)
    X = np.abs(rng.normal(size=(N_SAMPLES, N_FEATURES))) + 0.1
    y_class = np.arange(N_SAMPLES) % 3
    y_reg = X @ np.arange(1, N_FEATURES + 1) + rng.normal(scale=0.1, size=N_SAMPLES)
    return X, y_class, y_reg


def _target(est: Any, y_class: Any, y_reg: Any) -> Any:
    from sklearn.base import is_classifier, is_regressor

    return y_class if is_classifier(est) or not is_regressor(est) else y_reg


def _two_outputs(est: Any, y: Any) -> Any:
    from sklearn.utils import get_tags

    tags = get_tags(est)
    if tags.target_tags.multi_output and not tags.target_tags.single_output:
        flat = np.asarray(y).reshape(len(y), -1)[:, 0]
        return np.column_stack([flat, flat[::-1]])
    return y


_TARGET_ONLY = frozenset({"LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer"})


def _instances(name: str, cls: Any) -> list[Any]:
    if name == "FrozenEstimator":  # wraps an already fitted estimator
        from sklearn.linear_model import LogisticRegression

        X, y, _ = _data()
        return [cls(LogisticRegression().fit(X, y))]
    from sklearn.utils._test_common.instance_generator import _construct_instances

    return list(_construct_instances(cls))


def _fit(est: Any) -> tuple[Any, Any]:
    """Fit ``est``; return it and an input its prediction method takes."""
    from sklearn.utils import get_tags
    from sklearn.utils.estimator_checks import _enforce_estimator_tags_X, _enforce_estimator_tags_y

    X, y_class, y_reg = _data()
    if est.get_params(deep=False).get("random_state", 0) is None:
        est.set_params(random_state=0)  # predictions that draw random numbers repeat
    tags = get_tags(est)
    if tags.input_tags.string and not tags.input_tags.two_d_array:
        X = [f"word{i % 7} other{i % 3} text" for i in range(N_SAMPLES)]
    elif tags.input_tags.dict:
        X = [{"a": float(i % 5), "b": float(i % 3)} for i in range(N_SAMPLES)]
    elif tags.input_tags.categorical and not tags.input_tags.two_d_array:
        X = [[f"c{i % 3}", f"d{i % 2}"] for i in range(N_SAMPLES)]
    elif not tags.input_tags.two_d_array and tags.input_tags.one_d_array:
        X = X[:, 0]
    else:
        X = _enforce_estimator_tags_X(est, X)
    y = _two_outputs(est, _enforce_estimator_tags_y(est, _target(est, y_class, y_reg)))
    if type(est).__name__ in _TARGET_ONLY:
        y = [[0, 1], [1], [2]] * (N_SAMPLES // 3) if type(est).__name__ == "MultiLabelBinarizer" else y
        est.fit(y)
        return est, y
    dictionary = getattr(est, "dictionary", None)
    if isinstance(dictionary, np.ndarray):  # SparseCoder: X must match the dictionary's width
        X = X[:, : dictionary.shape[1]]
    est.fit(X, y)
    return est, X


def predict_method(est: Any) -> str | None:
    for method in ("predict", "transform", "predict_proba", "decision_function", "score_samples"):
        if hasattr(est, method):
            return method
    return None


def fitted_estimators() -> Iterator[tuple[str, Any, Any, BaseException | None]]:
    """(name, fitted estimator or None, input, error) for every instance of every estimator."""
    from sklearn.utils import all_estimators

    for name, cls in all_estimators():
        try:
            instances = _instances(name, cls)
        except Exception as exc:
            yield name, None, None, exc
            continue
        for est in instances[:1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fitted, X = _fit(est)
                except Exception as exc:
                    yield name, None, None, exc
                    continue
            yield name, fitted, X, None


def fit_one(name: str) -> tuple[Any, Any]:
    """The fitted estimator called ``name`` and an input for it (raises what fitting raises)."""
    from sklearn.utils import all_estimators

    cls = dict(all_estimators())[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _fit(_instances(name, cls)[0])
