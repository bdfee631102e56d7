"""The generated loader's own logic, imported directly (it is a real module of this package)."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from hatch_modelpack.runtime import _modelpack_formats, _modelpack_versions, loader


@pytest.mark.parametrize(
    ("version", "release"),
    [("1.9.1", (1, 9, 1, 0)), ("2.21.0rc1", (2, 21, 0, 0)), ("3", (3, 0, 0, 0)), ("1.2.3.4+local", (1, 2, 3, 4))],
)
def test_release_numbers(version, release):
    assert _modelpack_versions._release(version) == release


def test_tensorflow_cpu_satisfies_a_tensorflow_check():
    """A `tensorflow` requirement recorded by a SavedModel is met by tensorflow-cpu's import package."""
    try:
        md.version("tensorflow")
        pytest.skip("the `tensorflow` distribution itself is installed here")
    except md.PackageNotFoundError:
        pass
    cpu = pytest.importorskip("tensorflow").__version__
    assert _modelpack_versions._installed_version("tensorflow") == cpu
    assert _modelpack_versions._installed_version("surely-not-installed-dist") is None


def test_unknown_model_error_is_a_readable_key_error():
    exc = loader.UnknownModelError("no model named 'x'; the packaged models are: 'a', 'b'")
    assert isinstance(exc, KeyError)
    assert str(exc) == "no model named 'x'; the packaged models are: 'a', 'b'"


def _pack_with_one_file(tmp_path, data: bytes):
    """A package directory holding one raw artifact and the manifest the build would write for it."""
    import json
    from pathlib import Path

    from hatch_modelpack.hashing import hash_file_chunked

    models_dir = tmp_path / "_models" / "blob"
    models_dir.mkdir(parents=True)
    artifact = models_dir / "blob.bin"
    artifact.write_bytes(data)
    size, sha, chunks = hash_file_chunked(artifact)
    entry = {"path": "blob.bin", "size": size, "sha256": sha}
    if chunks:
        from hatch_modelpack.hashing import CHUNK_SIZE

        entry.update(chunk_size=CHUNK_SIZE, chunks=list(chunks))
    manifest = {
        "distribution": "blob",
        "version": "1.0",
        "default": "blob",
        "models": {"blob": {"name": "blob", "format": "raw", "path": "_models/blob/blob.bin", "files": [entry]}},
    }
    (tmp_path / loader.MANIFEST_NAME).write_text(json.dumps(manifest))
    return loader._Pack(Path(tmp_path)), artifact, entry


def test_large_files_are_checked_chunk_by_chunk_as_strictly_as_whole(tmp_path):
    import os

    data = os.urandom(20 << 20)  # above the chunked threshold: per-chunk digests on all cores
    pack, artifact, entry = _pack_with_one_file(tmp_path, data)
    assert len(entry["chunks"]) == 5
    assert pack.load("blob", False, {}) == artifact
    # One flipped byte in the last chunk is caught (a new file: the per-process memo must not hide it).
    flipped = bytearray(data)
    flipped[-1] ^= 1
    artifact.unlink()
    artifact.write_bytes(bytes(flipped))
    with pytest.raises(loader.IntegrityError, match="differ"):
        pack.load("blob", False, {})
    # A truncated file is caught by its size.
    artifact.unlink()
    artifact.write_bytes(data[:-10])
    with pytest.raises(loader.IntegrityError, match="expected"):
        pack.verify("blob")


def test_small_files_keep_the_whole_file_digest(tmp_path):
    pack, artifact, entry = _pack_with_one_file(tmp_path, b"vocabulary\n" * 100)
    assert "chunks" not in entry
    pack.verify("blob")
    artifact.write_bytes(b"changed")
    with pytest.raises(loader.IntegrityError, match="does not match the manifest"):
        pack.verify("blob")


def test_the_unpickler_reads_the_verified_file_not_a_swapped_one(tmp_path):
    """A file replaced after its sha256 matched (a new inode at the same path) is refused, unread."""
    import json
    import pickle
    from pathlib import Path

    from hatch_modelpack.hashing import hash_file

    art_dir = tmp_path / "_models" / "m"
    art_dir.mkdir(parents=True)
    artifact = art_dir / "m.pkl"
    artifact.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    size, sha = hash_file(artifact)
    manifest = {
        "distribution": "m",
        "version": "1",
        "default": "m",
        "models": {
            "m": {
                "name": "m",
                "format": "pickle",
                "path": "_models/m/m.pkl",
                "files": [{"path": "m.pkl", "size": size, "sha256": sha}],
            }
        },
    }
    (tmp_path / loader.MANIFEST_NAME).write_text(json.dumps(manifest))
    pack = loader._Pack(Path(tmp_path))
    assert pack.load("m", False, {}) == {"weights": [1, 2, 3]}
    # Verified, then swapped for other bytes before the unpickler opens it.
    pack.verify("m", force=True)
    replacement = tmp_path / "swap.pkl"
    replacement.write_bytes(pickle.dumps({"weights": "evil"}))
    replacement.replace(artifact)
    with pytest.raises(loader.IntegrityError, match="changed between its sha256 check and loading"):
        _modelpack_formats._load_pickle(artifact, manifest["models"]["m"], {})
