"""The model version is the package version: hatch-vcs tags, provenance, reproducible builds.

- ``dynamic = ["version", "dependencies"]`` with hatch-vcs: tag ``v1.2.0`` gives 1.2.0, through the
  sdist too, and the manifest records the source commit (and whether the checkout was dirty).
- Two builds of the same sources give byte-identical wheels and sdists, whatever the file times and
  the checkout's path; ``SOURCE_DATE_EPOCH`` sets the archive times and the manifest's build time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import Project, make_pipeline, pyproject, requires_dist, run, save_model, wheel_metadata

pytestmark = pytest.mark.slow

VCS_PYPROJECT = """\
[build-system]
requires = ["hatchling", "hatch-vcs", "hatch-modelpack"]
build-backend = "hatchling.build"

[project]
name = "churn-model"
requires-python = ">=3.10"
dynamic = ["version", "dependencies"]

[tool.hatch.version]
source = "vcs"

[tool.hatch.metadata.hooks.modelpack]
dependencies = ["pandas"]

[tool.hatch.build.hooks.modelpack.models]
churn = "artifacts/churn.joblib"
"""


def git(root: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return run(["git", "-C", str(root), *args], env=env).stdout.strip()


def build(root: Path, out: Path, env: dict[str, str], *args: str) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel from the sdist."""
    run([sys.executable, "-m", "build", *args, "--outdir", str(out), str(root)], env=env)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def manifest(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read("churn_model/_modelpack.json"))


def test_hatch_vcs_tag_is_the_model_version(tmp_path, build_env, venv, sklearn_version):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text(VCS_PYPROJECT)
    (root / "README.md").write_text("# churn-model\n")
    (root / ".gitignore").write_text("artifacts/\ndist/\n")  # models usually live outside git (or in LFS)
    save_model(make_pipeline(seed=1)[0], root / "artifacts" / "churn.joblib")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "churn model")
    git(root, "tag", "v1.2.0")
    commit = git(root, "rev-parse", "HEAD")

    wheel, sdist = build(root, tmp_path / "dist", build_env)
    assert wheel.name == "churn_model-1.2.0-py3-none-any.whl" and sdist.name == "churn_model-1.2.0.tar.gz"
    assert f"scikit-learn=={sklearn_version}" in requires_dist(
        wheel_metadata(wheel)
    )  # dynamic deps alongside dynamic version
    m = manifest(wheel)
    assert m["version"] == "1.2.0"
    # The wheel was built from the sdist (no .git there): the commit travelled inside the sdist.
    assert m["source"] == {"commit": commit, "dirty": False}
    assert "build_time" not in m
    assert str(tmp_path) not in json.dumps(m)  # no absolute paths
    with tarfile.open(sdist) as tf:
        assert json.loads(tf.extractfile("churn_model-1.2.0/_modelpack_source.json").read())["commit"] == commit

    env = venv()
    env.install("--no-deps", str(wheel))
    got = env.json(
        "import json, churn_model; print(json.dumps([churn_model.__version__, churn_model.metadata()['name']]))"
    )
    assert got == ["1.2.0", "churn"]

    # Another checkout of the same tag, elsewhere, with other file times: the same bytes.
    clone = tmp_path / "elsewhere" / "clone"
    run(["git", "clone", "-q", str(root), str(clone)])
    shutil.copytree(root / "artifacts", clone / "artifacts")
    for f in clone.rglob("*"):
        os.utime(f, (1_000_000_000, 1_000_000_000))
    wheel2, sdist2 = build(clone, tmp_path / "dist2", build_env)
    assert wheel2.read_bytes() == wheel.read_bytes()
    assert sdist2.read_bytes() == sdist.read_bytes()

    # Retrain, commit, tag v1.3.0: the new commit and version; then an uncommitted edit is "dirty".
    save_model(make_pipeline(seed=2, kind="forest")[0], root / "artifacts" / "churn.joblib")
    (root / "README.md").write_text("# churn-model\n\nRetrained as a forest.\n")
    git(root, "commit", "-q", "-am", "retrain")
    git(root, "tag", "v1.3.0")
    wheel13, _ = build(root, tmp_path / "dist13", build_env)
    m13 = manifest(wheel13)
    assert wheel13.name == "churn_model-1.3.0-py3-none-any.whl" and m13["version"] == "1.3.0"
    assert (
        m13["source"] == {"commit": git(root, "rev-parse", "HEAD"), "dirty": False}
        and m13["source"]["commit"] != commit
    )
    (root / "README.md").write_text("# churn-model\n\nwork in progress\n")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dirty"), str(root)], env=build_env)
    (dirty,) = (tmp_path / "dirty").glob("*.whl")
    md = manifest(dirty)
    assert md["source"]["dirty"] is True and md["version"].startswith("1.3.1.dev0+g")


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    p = Project(root, "churn-model")
    p.write("pyproject.toml", pyproject(deps='"pandas"'))
    p.write("README.md", "# churn-model\n")
    p.write("churn_model/__init__.py", "from ._modelpack import load, metadata, __version__\n")
    save_model(make_pipeline(seed=3)[0], root / "artifacts" / "churn.joblib")
    return root


def test_reproducible_whatever_the_file_times(tmp_path, build_env):
    a = make_project(tmp_path / "a" / "churn-model")
    b = tmp_path / "b" / "somewhere" / "churn-model"
    shutil.copytree(a, b)
    for i, f in enumerate(sorted(b.rglob("*"))):
        os.utime(f, (1_600_000_000 + 7919 * i, 1_600_000_000 + 7919 * i))
    wa, sa = build(a, tmp_path / "out-a", build_env)
    wb, sb = build(b, tmp_path / "out-b", build_env)
    assert wa.read_bytes() == wb.read_bytes()
    assert sa.read_bytes() == sb.read_bytes()
    m = manifest(wa)
    assert "source" not in m and "build_time" not in m  # not a git checkout; no epoch given


def test_source_date_epoch_is_honoured(tmp_path, build_env):
    root = make_project(tmp_path / "churn-model")
    plain, _ = build(root, tmp_path / "plain", build_env)
    epoch = 1_700_000_000
    env = dict(build_env, SOURCE_DATE_EPOCH=str(epoch))
    w1, s1 = build(root, tmp_path / "e1", env)
    for f in root.rglob("*"):
        os.utime(f, (epoch + 12345, epoch + 12345))
    w2, s2 = build(root, tmp_path / "e2", env)
    assert w1.read_bytes() == w2.read_bytes() and s1.read_bytes() == s2.read_bytes()
    assert w1.read_bytes() != plain.read_bytes()

    when = datetime.fromtimestamp(epoch, tz=timezone.utc)
    assert manifest(w1)["build_time"] == when.strftime("%Y-%m-%dT%H:%M:%SZ") == "2023-11-14T22:13:20Z"
    with zipfile.ZipFile(w1) as zf:
        assert {info.date_time for info in zf.infolist()} == {when.timetuple()[:6]}
    with tarfile.open(s1) as tf:
        assert {member.mtime for member in tf.getmembers()} == {epoch}
