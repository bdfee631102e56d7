"""The deflate backend (hatch_modelpack.deflate): zlib-ng when installed, the standard library otherwise.

Either way the blocks join into one raw deflate stream any inflater reads, the bytes depend only on the
backend and the file's size (not on the workers: see test_wheel_writer), and zlib-ng is no larger than
zlib at level 6 on a model's bytes, at the level for small files and at the fast one for large files.
"""

from __future__ import annotations

import io
import pickle
import zlib

import pytest

from hatch_modelpack import deflate

zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")


def _forest_pickle() -> bytes:
    """A real model's bytes (a small seeded random forest): what the writer deflates most often."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3000, 8)), rng.integers(0, 2, 3000)
    return pickle.dumps(RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y), protocol=4)


def _deflate(data: bytes, level: int = deflate.DEFLATE_LEVEL) -> bytes:
    """As _deflate_into does: fixed blocks, each primed with the previous block's last 32 KiB."""
    out, zdict, f = [], None, io.BytesIO(data)
    for block, last in deflate.blocks(f, deflate.BLOCK):
        out.append(deflate.deflate_block(block, zdict, last, level))
        zdict = block[-deflate.WINDOW :]
    return b"".join(out)


def test_zlib_ng_is_the_backend_when_installed() -> None:
    assert deflate._zlib is zlib_ng
    assert deflate.DEFLATE_BACKEND.startswith("zlib-ng ")


@pytest.mark.parametrize("backend", ["zlib-ng", "zlib"])
def test_each_backend_writes_one_valid_deterministic_stream(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    if backend == "zlib":
        monkeypatch.setattr(deflate, "_zlib", zlib)
    data = _forest_pickle() * 2 + bytes(range(256)) * 5000  # several blocks, an odd length
    assert len(data) > 2 * deflate.BLOCK
    raw = _deflate(data)
    assert _deflate(data) == raw
    d = zlib.decompressobj(-15)
    assert d.decompress(raw) == data
    assert d.eof and not d.unused_data


def test_the_level_depends_on_the_size_alone() -> None:
    assert deflate.deflate_level(deflate.FAST_FROM - 1) == deflate.DEFLATE_LEVEL
    assert deflate.deflate_level(deflate.FAST_FROM) == deflate.FAST_DEFLATE_LEVEL


@pytest.mark.parametrize("level", ["small files", "large files"])
def test_zlib_ng_is_no_larger_than_hatchlings_zlib_level_6(level: str) -> None:
    data = _forest_pickle()
    ours = len(_deflate(data, deflate.DEFLATE_LEVEL if level == "small files" else deflate.FAST_DEFLATE_LEVEL))
    c = zlib.compressobj(6, zlib.DEFLATED, -15)  # what hatchling's ZipFile writes
    hatchling = len(c.compress(data) + c.flush())
    assert ours <= hatchling, (ours, hatchling)
