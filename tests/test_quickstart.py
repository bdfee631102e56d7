"""The README's Install and Quickstart, followed word for word as a newcomer would.

The commands and the pyproject are read out of README.md itself, so the README cannot drift from what
works: a clean venv, the machine's pip configuration disabled, the plugin reached only the way the
Install section says, and the result checked by ``twine check --strict`` and ``check-wheel-contents``.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap

import pytest
from conftest import REPO, UV, Venv, make_pipeline, run, save_model

README = REPO / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(section: str, lang: str) -> list[str]:
    """Fenced blocks of one language; indented ones (inside a list item) are dedented."""
    return [textwrap.dedent(b) for b in re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)]


def test_quickstart_blocks_are_where_the_test_reads_them():
    """A fast guard: the Install section has one shell block and the Quickstart one pyproject."""
    (install,) = _blocks(_section("Install"), "bash")
    assert "pip wheel" in install and "PIP_FIND_LINKS" in install
    (pyproject,) = _blocks(_section("Quickstart"), "toml")
    assert "requires-python" in pyproject and 'readme = "README.md"' in pyproject and "license" in pyproject


@pytest.mark.slow
def test_readme_install_and_quickstart_word_for_word(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "hatch-modelpack").symlink_to(REPO)  # what the Install section's `git clone` gives
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_FIND_LINKS"))}
    env.update(HOME=str(home), PIP_CONFIG_FILE="/dev/null")

    # The Install section's shell block, minus the clone (network), in a fresh venv's shell.
    newcomer = tmp_path / "venv"
    run([UV, "venv", "--quiet", "--seed", "--python", sys.executable, str(newcomer)])
    Venv(newcomer).pip("install", "--quiet", "build", "twine", "check-wheel-contents", env=env)
    (install,) = _blocks(_section("Install"), "bash")
    steps = [line for line in install.splitlines() if line.strip() and not line.startswith("git clone")]
    script = "\n".join(
        [
            "set -euo pipefail",
            f'export PATH="{newcomer / "bin"}:$PATH"',
            *steps,
            "env | grep -E '^(PIP|UV)_FIND_LINKS=' > exported.env",
        ]
    )
    run(["bash", "-c", script], cwd=work, env=env)
    for line in (work / "exported.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value

    # The Quickstart project exactly as the README prints it.
    (pyproject,) = _blocks(_section("Quickstart"), "toml")
    root = work / "churn-model"
    (root / "artifacts").mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "README.md").write_text("# churn-model\n\nCustomer churn model.\n")
    model, X = make_pipeline(seed=17)
    save_model(model, root / "artifacts" / "churn.joblib")
    run([str(newcomer / "bin" / "python"), "-m", "build"], cwd=root, env=env)

    shown = re.search(r"unzip -l dist/(\S+\.whl)", _section("Quickstart"))
    assert shown, "the Quickstart shows the wheel's name"
    wheel = root / "dist" / shown.group(1)
    assert wheel.exists(), sorted(p.name for p in (root / "dist").iterdir())
    run([str(newcomer / "bin" / "twine"), "check", "--strict", *map(str, (root / "dist").iterdir())], env=env)
    run([str(newcomer / "bin" / "check-wheel-contents"), str(wheel)], env=env)

    # It installs and loads, with the requirements the build inferred.
    service = tmp_path / "service"
    run([UV, "venv", "--quiet", "--python", sys.executable, str(service)])
    Venv(service).install(str(wheel))
    X.head(5).to_csv(tmp_path / "x.csv", index=False)
    got = Venv(service).json(
        f"""
        import json, pandas as pd
        from churn_model import load
        print(json.dumps(load().predict(pd.read_csv({str(tmp_path / "x.csv")!r})).tolist()))
        """
    )
    assert got == model.predict(X.head(5)).tolist()
