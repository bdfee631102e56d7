"""Other Pythons: the generated loader on an old interpreter, and a build on the oldest supported one.

The loader is copied into model wheels that may be installed on any Python the model's project
allows, so it keeps to Python 3.8's syntax and standard library. The plugin itself supports what
current hatchling supports (3.10+; ``tomli`` where ``tomllib`` is missing). Each test is skipped when
the interpreter is not on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, UV, Venv, make_pipeline, run, save_model

from hatch_modelpack.contract import LOADER_FILES


def _reports(candidate: str, version: str) -> bool:
    """Whether ``candidate`` runs and is that version (a pyenv shim for an inactive version exits 127)."""
    try:
        proc = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == version


def _candidates(version: str) -> Iterator[str]:
    for directory in os.environ.get("PATH", "").split(os.pathsep):  # every pythonX.Y on PATH, not only the first
        yield os.path.join(directory, f"python{version}")
    found = subprocess.run([UV, "python", "find", "--no-python-downloads", version], capture_output=True, text=True)
    if found.returncode == 0:  # uv's managed Pythons and those it discovers
        yield found.stdout.strip()
    pyenv = shutil.which("pyenv")
    if pyenv:  # pyenv installs versions that its shims only answer for when selected
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        yield from sorted(str(p) for p in Path(root, "versions").glob(f"{version}.*/bin/python{version}"))


def _python(version: str) -> str | None:
    """A real interpreter of that version found on this machine, or None."""
    return next((c for c in _candidates(version) if os.access(c, os.X_OK) and _reports(c, version)), None)


def test_generated_loader_runs_on_python_3_8(tmp_path):
    py = _python("3.8")
    if py is None:
        pytest.skip("no Python 3.8 on this machine")
    pkg = tmp_path / "tok_model"
    (pkg / "_models" / "vocab").mkdir(parents=True)
    for shipped, source in LOADER_FILES.items():
        shutil.copy(REPO / "hatch_modelpack" / "runtime" / source, pkg / shipped)
    shutil.copy(REPO / "hatch_modelpack" / "runtime" / "package_init.py", pkg / "__init__.py")
    vocab = pkg / "_models" / "vocab" / "vocab.txt"
    vocab.write_text("hello\nworld\n")
    import hashlib

    manifest = {
        "manifest_version": 1,
        "distribution": "tok-model",
        "version": "0.1.0",
        "package": "tok_model",
        "default": "vocab",
        "models": {
            "vocab": {
                "name": "vocab",
                "format": "raw",
                "path": "_models/vocab/vocab.txt",
                "kind": "file",
                "files": [
                    {
                        "path": "vocab.txt",
                        "size": vocab.stat().st_size,
                        "sha256": hashlib.sha256(vocab.read_bytes()).hexdigest(),
                    }
                ],
                "requires": [],
                "version_checks": [],
            }
        },
    }
    (pkg / "_modelpack.json").write_text(json.dumps(manifest))
    code = (
        "import json, sys, tok_model\n"
        "p = tok_model.load(); tok_model.verify()\n"
        "err = None\n"
        "try:\n    tok_model.load('nope')\nexcept KeyError as e:\n    err = str(e)\n"
        "print(json.dumps([sys.version_info[:2], tok_model.__version__, p.read_text(), list(tok_model.models()), err]))\n"
    )
    out = run([py, "-c", code], cwd=tmp_path).stdout
    version, ver, text, models, err = json.loads(out.strip().splitlines()[-1])
    assert version == [3, 8] and ver == "0.1.0" and text == "hello\nworld\n" and models == ["vocab"]
    assert "'vocab'" in err
    vocab.write_text("tampered\n")
    out = run(
        [
            py,
            "-c",
            "import tok_model\ntry:\n    tok_model.load()\nexcept tok_model.IntegrityError as e:\n    print('refused', e)\n",
        ],
        cwd=tmp_path,
    ).stdout
    assert out.startswith("refused") and "vocab.txt" in out


@pytest.mark.slow
def test_build_on_python_3_10_uses_tomli(project, build_env, tmp_path):
    py = _python("3.10")
    if py is None:
        pytest.skip("no Python 3.10 on this machine")
    model, _ = make_pipeline(seed=11)
    p = project()
    save_model(model, p.root / "artifacts" / "churn.joblib")
    builder = tmp_path / "py310"
    run([UV, "venv", "--quiet", "--seed", "--python", py, str(builder)])
    Venv(builder).install("build")
    run(
        [str(builder / "bin" / "python"), "-m", "build", "--wheel", "--outdir", str(p.root / "dist"), str(p.root)],
        env=build_env,
    )
    assert p.wheel().name == "churn_model-1.2.0-py3-none-any.whl"
