"""What a newcomer reads: the missing-metadata-hook warning says only what is true, and `modelpack init`
writes the same complete pyproject as the README's Quickstart."""

from __future__ import annotations

import tomllib
from test_quickstart import _blocks, _section

from hatch_modelpack.build_hook import _missing_metadata_hook
from hatch_modelpack.scaffold import render_pyproject


def test_warning_names_the_tools_that_miss_the_requirements_and_only_the_missing_steps():
    neither = _missing_metadata_hook(["scikit-learn==1.9.1"], [], {})
    assert "scikit-learn==1.9.1" in neither and "uv" in neither and "PDM" in neither and "Poetry" in neither
    assert "pip or pip-tools" in neither  # pip builds the wheel first: it does see them
    assert 'dynamic = ["dependencies"]' in neither and "[tool.hatch.metadata.hooks.modelpack]" in neither
    only_table = _missing_metadata_hook(["joblib"], ["dependencies"], {})
    assert 'dynamic = ["dependencies"]' not in only_table and "[tool.hatch.metadata.hooks.modelpack]" in only_table
    only_dynamic = _missing_metadata_hook(["joblib"], ["version"], {"modelpack": {}})
    assert (
        'dynamic = ["dependencies"]' in only_dynamic
        and "empty [tool.hatch.metadata.hooks.modelpack]" not in only_dynamic
    )


def test_init_writes_the_quickstarts_project_keys():
    (quickstart,) = _blocks(_section("Quickstart"), "toml")
    shown = tomllib.loads(quickstart)
    written = tomllib.loads(
        render_pyproject("churn-model", "1.2.0", "churn", "artifacts/churn.joblib", "joblib", [], "", ">=3.11")
    )
    assert set(shown["project"]) == set(written["project"]), set(shown["project"]) ^ set(written["project"])
    assert (
        set(shown["tool"]["hatch"]["metadata"]["hooks"])
        == set(written["tool"]["hatch"]["metadata"]["hooks"])
        == {"modelpack"}
    )
    assert written["build-system"]["build-backend"] == shown["build-system"]["build-backend"] == "hatchling.build"
