"""A few user mistakes through a real ``python -m build``: a clear message, no traceback, no wheel, no litter.

Every mistake is checked in-process in ``test_config_errors.py`` (the message names the file, the
config key and the fix); these cases, one per stage that can refuse (the config, the format check,
the pickle scan), prove what only a build shows: it exits non-zero with that one message, prints no
Python traceback, leaves no wheel or sdist in ``dist/`` and no generated file in the source tree.
"""

from __future__ import annotations

import os

import pytest
from conftest import pyproject
from test_config_errors import CASES, _third_party_global

pytestmark = pytest.mark.slow

BUILT = ("missing artifact", "truncated joblib", "dangerous pickle")


@pytest.mark.parametrize("case", BUILT)
def test_bad_input_fails_the_build_cleanly(case, project, build_env, capsys):
    p = project()
    CASES[case].setup(p)
    before = p.tree()
    proc = p.build(build_env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for fragment in CASES[case].expect:
        assert fragment in out, f"{fragment!r} not in:\n{out}"
    assert "Traceback" not in out, out
    dist = p.root / "dist"
    assert not list(dist.glob("*.whl")) and not list(dist.glob("*.tar.gz")), list(dist.iterdir())
    assert p.tree() - before <= {"dist"}, p.tree() - before
    line = next((ln for ln in out.splitlines() if ln.startswith(("hatch-modelpack:", "ERROR Failed to parse"))), "")
    with capsys.disabled():
        print(f"\nFIRSTLINE|{case}|{line.split('. ')[0]}")
    assert line, out


def test_unsafe_pickle_never_ran_during_the_build():
    assert not os.path.exists("/tmp/hatch-modelpack-should-never-exist")


def test_allow_globals_lets_a_trusted_class_through(project, build_env):
    """The same unknown global builds once the user allows it by the key the error named."""
    p = project(extra="", hook='allow-globals = ["churn_features.Ratios"]')
    _third_party_global(p)
    p.write(
        "pyproject.toml",
        pyproject(
            name=p.name, models='churn = "artifacts/churn.pkl"', hook='allow-globals = ["churn_features.Ratios"]'
        ),
    )
    p.build(build_env)
    assert p.wheel().name.startswith("churn_model-1.2.0")
