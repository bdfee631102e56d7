"""Every user mistake, in-process: the config loader and the analysis the hooks run, milliseconds each.

Each case sets up a project the way a user would get it wrong and checks that reading it the way the
hooks do (pyproject.toml, the validated config, the analysis) raises a ModelpackError, never another
exception, with one message naming the file, the config key and the fix, and writes nothing into the
project. ``test_bad_inputs.py`` drives a few of the same cases through a real ``python -m build`` for
what only a build shows: no traceback, no wheel, no stray file.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Project, make_pipeline, pyproject, save_model

from hatch_modelpack.analysis import analysis_of
from hatch_modelpack.config import load_config, read_pyproject_table
from hatch_modelpack.errors import ModelpackError

TABLE = "tool.hatch.build.hooks.modelpack"


@dataclass
class Case:
    setup: Callable[[Project], None]
    expect: tuple[str, ...]  # fragments: the file, the key, the fix


def _model(p: Project, rel: str = "artifacts/churn.joblib", how: str = "joblib") -> None:
    save_model(make_pipeline(seed=2)[0], p.root / rel, how)


def _config(models: str, hook: str = "", with_model: bool = True) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        p.write("pyproject.toml", pyproject(name=p.name, models=models, hook=hook))
        if with_model:
            _model(p)

    return setup


def _file(rel: str, data: bytes, models: str | None = None) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        path = p.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if models is not None:
            p.write("pyproject.toml", pyproject(name=p.name, models=models))

    return setup


def _symlink_outside(p: Project) -> None:
    outside = p.root.parent / "outside.joblib"
    _model(p, "../outside.joblib")
    (p.root / "artifacts").mkdir()
    os.symlink(outside, p.root / "artifacts" / "churn.joblib")


def _truncated(p: Project) -> None:
    _model(p)
    path = p.root / "artifacts" / "churn.joblib"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncated_pickle(p: Project) -> None:
    p.write("pyproject.toml", pyproject(name=p.name, models='churn = "artifacts/churn.pkl"'))
    _model(p, "artifacts/churn.pkl", how="pickle")
    path = p.root / "artifacts" / "churn.pkl"
    path.write_bytes(path.read_bytes()[:-40])


def _savedmodel_without_pb(p: Project) -> None:
    p.write("pyproject.toml", pyproject(name=p.name, models='embedder = { path = "export", format = "savedmodel" }'))
    (p.root / "export" / "variables").mkdir(parents=True)
    (p.root / "export" / "variables" / "variables.index").write_bytes(b"\x00" * 16)


def _dangerous_pickle(p: Project) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/hatch-modelpack-should-never-exist",))

    p.write("pyproject.toml", pyproject(name=p.name, models='churn = "artifacts/churn.pkl"'))
    (p.root / "artifacts").mkdir()
    (p.root / "artifacts" / "churn.pkl").write_bytes(pickle.dumps({"model": Evil()}, protocol=4))


def _third_party_global(p: Project) -> None:
    p.write("pyproject.toml", pyproject(name=p.name, models='churn = "artifacts/churn.pkl"'))
    stream = (
        pickle.PROTO
        + b"\x04"
        + pickle.GLOBAL
        + b"churn_features\nRatios\n"
        + pickle.EMPTY_TUPLE
        + pickle.NEWOBJ
        + pickle.STOP
    )
    (p.root / "artifacts").mkdir()
    (p.root / "artifacts" / "churn.pkl").write_bytes(stream)


def _two_models(models: str) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        p.write("pyproject.toml", pyproject(name=p.name, models=models))
        _model(p, "artifacts/a.joblib")
        _model(p, "artifacts/b.joblib")

    return setup


def _duplicate_toml_key(p: Project) -> None:
    p.write(
        "pyproject.toml",
        pyproject(name=p.name, models='churn = "artifacts/churn.joblib"\nchurn = "artifacts/other.joblib"'),
    )
    _model(p)


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 1024\n"

CASES: dict[str, Case] = {
    "missing artifact": Case(
        _config('churn = "artifacts/missing.joblib"'),
        ("pyproject.toml", "models.churn.path", "does not exist", "Train or copy the model there"),
    ),
    "path ../x": Case(
        _config('churn = "../x.joblib"'),
        ("pyproject.toml", "models.churn.path", "outside the project root", "copy the file into the project"),
    ),
    "absolute path": Case(
        _config('churn = "/etc/passwd"'),
        ("pyproject.toml", "models.churn.path", "absolute path", "relative to the project root"),
    ),
    "symlink outside": Case(
        _symlink_outside,
        (
            "pyproject.toml",
            "models.churn.path",
            "through a symbolic link outside the project root",
            "copy the file into the project",
        ),
    ),
    "git lfs pointer": Case(
        _file("artifacts/churn.joblib", LFS),
        ("artifacts/churn.joblib", "models.churn", "Git LFS pointer", "git lfs pull"),
    ),
    "garbage as joblib": Case(
        _file("artifacts/churn.joblib", b"\x00\x17garbage" + bytes(range(256))),
        ("artifacts/churn.joblib", "models.churn", "suffix of the joblib format", "set `"),
    ),
    "garbage declared joblib": Case(
        _file(
            "artifacts/churn.bin", b"\x00garbage" * 20, 'churn = { path = "artifacts/churn.bin", format = "joblib" }'
        ),
        ("artifacts/churn.bin", "models.churn.format", "is declared as 'joblib'", "or fix `"),
    ),
    "zlib-looking garbage": Case(
        _file("artifacts/churn.joblib", b"x\x9c" + b"\x07" * 100),
        ("artifacts/churn.joblib", "models.churn", "corrupt", "save the model again"),
    ),
    "truncated joblib": Case(
        _truncated, ("artifacts/churn.joblib", "models.churn", "truncated", "save the model again")
    ),
    "truncated pickle": Case(
        _truncated_pickle, ("artifacts/churn.pkl", "models.churn", "truncated", "save the model again")
    ),
    "empty file": Case(
        _file("artifacts/churn.joblib", b""),
        ("artifacts/churn.joblib", "models.churn", "empty file", "Save the model again"),
    ),
    "unknown format": Case(
        _config('churn = { path = "artifacts/churn.joblib", format = "jobleb" }'),
        ("pyproject.toml", "models.churn.format", "not a format", "Did you mean 'joblib'?"),
    ),
    "model name not identifier": Case(
        _config('"Churn-Model" = "artifacts/churn.joblib"'),
        ("pyproject.toml", "models.Churn-Model", "not a lowercase identifier", "[a-z][a-z0-9_]*"),
    ),
    "model name is a keyword": Case(
        _config('class = "artifacts/churn.joblib"'),
        ("pyproject.toml", "models.class", "is a Python keyword", '"class_model"'),
    ),
    "same artifact twice": Case(
        _config('churn = "artifacts/churn.joblib"\nchurn2 = { path = "artifacts/churn.joblib", default = true }'),
        ("pyproject.toml", "models.churn2.path", "same artifact as models.churn", "Declare each artifact once"),
    ),
    "duplicate model name": Case(_duplicate_toml_key, ("pyproject.toml", "line 1", "Cannot overwrite a value")),
    "two defaults": Case(
        _two_models(
            'a = { path = "artifacts/a.joblib", default = true }\nb = { path = "artifacts/b.joblib", default = true }'
        ),
        ("pyproject.toml", "`models`", "several models as default (a, b)", "exactly one"),
    ),
    "no default among several": Case(
        _two_models('a = "artifacts/a.joblib"\nb = "artifacts/b.joblib"'),
        ("pyproject.toml", "`models`", "none is the default", "Add default = true"),
    ),
    "empty models table": Case(_config(""), ("pyproject.toml", "`models`", "is empty", "Add a model")),
    "number where a path goes": Case(
        _config("churn = 3"), ("pyproject.toml", "models.churn", "not a number", 'churn = "artifacts/churn.joblib"')
    ),
    "number as path in a table": Case(
        _config("churn = { path = 3 }"),
        ("pyproject.toml", "models.churn.path", "must be a path string, not a number", "relative to the project root"),
    ),
    "unknown model key": Case(
        _config('churn = { path = "artifacts/churn.joblib", fromat = "joblib" }'),
        ("pyproject.toml", "models.churn.fromat", "not a setting", "Did you mean `format`?"),
    ),
    "unknown top-level key": Case(
        _config('churn = "artifacts/churn.joblib"', hook='pakage = "churn"'),
        ("pyproject.toml", "`pakage`", "not a setting", "Did you mean `package`?"),
    ),
    "package not an identifier": Case(
        _config('churn = "artifacts/churn.joblib"', hook='package = "churn-model"'),
        ("pyproject.toml", "`package`", "not a Python import name", 'package = "churn_model"'),
    ),
    "savedmodel without saved_model.pb": Case(
        _savedmodel_without_pb, ("export", "models.embedder", "no saved_model.pb", "tf.saved_model.save")
    ),
    "dangerous pickle": Case(
        _dangerous_pickle,
        ("artifacts/churn.pkl", "models.churn", "posix.system", "runs shell commands", "cannot be allowed"),
    ),
    "unknown global": Case(
        _third_party_global,
        ("artifacts/churn.pkl", "models.churn", "churn_features.Ratios", 'allow-globals = ["churn_features.Ratios"]'),
    ),
}


def fail_in_process(root: Path) -> str:
    """What the hooks do before writing anything, as the metadata hook does it; the error's message."""
    with pytest.raises(ModelpackError) as info:
        table, location, name = read_pyproject_table(root)
        analysis_of(load_config(root, table, name, location))
    return f"hatch-modelpack: {info.value}"


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_refused_with_the_file_the_key_and_the_fix(case, project):
    p = project()
    CASES[case].setup(p)
    before = p.tree()
    out = fail_in_process(p.root)
    for fragment in CASES[case].expect:
        assert fragment in out, f"{fragment!r} not in:\n{out}"
    assert p.tree() == before


def test_unsafe_pickle_never_ran():
    assert not os.path.exists("/tmp/hatch-modelpack-should-never-exist")
