"""No false positives: every estimator of ``sklearn.utils.all_estimators()`` passes the scan and the
policy, loads through the restricted unpickler with only the recorded globals, and predicts the same.

In-process (fit, joblib.dump, scan + policy, restricted load, compare) for the whole list; the
estimators and their inputs come from tools/fitted_estimators.py, the same list the allowlist is
derived from.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from _restricted import load_restricted, scan_and_check
from sklearn.utils import all_estimators

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from fitted_estimators import fit_one, predict_method

NAMES = [name for name, _ in all_estimators()]


def _same(a: object, b: object) -> None:
    if hasattr(a, "toarray"):
        a, b = a.toarray(), b.toarray()  # type: ignore[union-attr]
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc":
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_every_estimator_packs_and_loads_restricted(tmp_path, name):
    est, X = fit_one(name)
    path = tmp_path / "m.joblib"
    joblib.dump(est, path)
    result, findings = scan_and_check(path, "joblib")
    assert findings == [], [f"{f.name}: {f.reason}" for f in findings]
    loaded = load_restricted(path, result.global_names(), "joblib")
    assert type(loaded) is type(est)
    method = predict_method(est)
    if method is None or name in {"LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer"}:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = getattr(est, method)(X)
        except Exception as exc:
            pytest.skip(f"{name}.{method} does not run on its training input: {exc}")
        _same(getattr(loaded, method)(X), expected)
