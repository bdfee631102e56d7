"""The generated loader's own logic, imported directly (it is a real module of this package)."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from hatch_modelpack import loader


@pytest.mark.parametrize(
    ("version", "release"),
    [("1.9.1", (1, 9, 1, 0)), ("2.21.0rc1", (2, 21, 0, 0)), ("3", (3, 0, 0, 0)), ("1.2.3.4+local", (1, 2, 3, 4))],
)
def test_release_numbers(version, release):
    assert loader._release(version) == release


def test_tensorflow_cpu_satisfies_a_tensorflow_check():
    """A `tensorflow` requirement recorded by a SavedModel is met by tensorflow-cpu's import package."""
    try:
        md.version("tensorflow")
        pytest.skip("the `tensorflow` distribution itself is installed here")
    except md.PackageNotFoundError:
        pass
    cpu = pytest.importorskip("tensorflow").__version__
    assert loader._installed_version("tensorflow") == cpu
    assert loader._installed_version("surely-not-installed-dist") is None


def test_unknown_model_error_is_a_readable_key_error():
    exc = loader.UnknownModelError("no model named 'x'; the packaged models are: 'a', 'b'")
    assert isinstance(exc, KeyError)
    assert str(exc) == "no model named 'x'; the packaged models are: 'a', 'b'"
