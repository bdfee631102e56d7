"""The three stages are built once per process: one validation, one analysis, one hashing per artifact.

A real hatchling build, in this process (as a front end without isolation runs it): the metadata hook
(prepared metadata, then again for the wheel), the build hook's ``dependencies()`` and
``initialize()``, and the smoke check all share one PackConfig and one Analysis.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_pipeline, save_model

from hatch_modelpack import analysis, config

pytestmark = pytest.mark.slow  # builds a wheel (in this process) and runs a smoke check


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()

    def wrap(module: Any, name: str) -> None:
        original = getattr(module, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)

    wrap(config, "_validate")
    wrap(analysis, "_analyse_model")
    wrap(analysis, "hash_file_chunked")
    monkeypatch.setattr(config, "_CONFIGS", {})
    monkeypatch.setattr(analysis, "_ANALYSES", {})
    return calls


def test_one_validation_one_analysis_one_hash_per_build(
    project, tmp_path: Path, counted: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hatchling.build import build_wheel, prepare_metadata_for_build_wheel

    model, X = make_pipeline(seed=3)
    p = project(
        models='churn = { path = "artifacts/churn.joblib", check = { input = "checks/x.npy", expected = "checks/y.npy" } }'
    )
    save_model(model, p.root / "artifacts" / "churn.joblib")
    (p.root / "checks").mkdir()
    np.save(p.root / "checks" / "x.npy", X.head(5).to_numpy())
    np.save(p.root / "checks" / "y.npy", model.predict(X.head(5)))
    monkeypatch.chdir(p.root)
    out = tmp_path / "out"
    out.mkdir()
    meta_dir = prepare_metadata_for_build_wheel(str(out))
    name = build_wheel(str(out))
    assert counted == {"_validate": 1, "_analyse_model": 1, "hash_file_chunked": 1}, counted
    with zipfile.ZipFile(out / name) as zf:
        manifest = json.loads(zf.read("churn_model/_modelpack.json"))
        requires = [
            line for line in zf.read(f"{meta_dir}/METADATA").decode().splitlines() if line.startswith("Requires-Dist")
        ]
    assert manifest["models"]["churn"]["check"]["expected"]["path"] == "_checks/churn/y.npy"
    assert any("scikit-learn" in r for r in requires)
    assert not os.path.exists(p.root / "churn_model")
