"""The wheel writer: artifacts added to a finished hatchling wheel, stored or deflated on all cores.

The base wheels are real hatchling wheels of a tiny project (no plugin involved), so every test reads
the exact layout the build hook will hand to ``add_artifacts``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
import zlib
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest
from conftest import run

from hatch_modelpack import deflate, wheel_writer, zipstream
from hatch_modelpack.wheel_writer import Artifact, WheelWriteError, add_artifacts, choose_compression

WHEEL_NAME = "demo-0.1-py3-none-any.whl"


def build_base_wheel(root: Path, epoch: str | None = None) -> Path:
    """A real wheel from plain hatchling: a package with two modules, no artifacts."""
    proj = root / "proj"
    (proj / "demo").mkdir(parents=True, exist_ok=True)
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "demo"\nversion = "0.1"\nrequires-python = ">=3.8"\n'
    )
    (proj / "demo" / "__init__.py").write_text("from pathlib import Path\nHERE = Path(__file__).parent\n")
    (proj / "demo" / "util.py").write_text("X = 1\n" * 50)
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    out = root / "dist"
    subprocess.run(
        [sys.executable, "-c", f"import hatchling.build as b; b.build_wheel({str(out)!r})"],
        cwd=proj,
        env=env,
        check=True,
        capture_output=True,
    )
    wheel = out / WHEEL_NAME
    assert wheel.is_file()
    return wheel


def floats(path: Path, n: int, seed: int = 0) -> Path:
    import numpy as np

    np.random.default_rng(seed).standard_normal(n).tofile(path)
    return path


def compressible(path: Path, size: int, seed: int = 0) -> Path:
    """Text-like bytes with some structure, over many deflate blocks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"0.125 ", b"tree_", b"node "]
    idx = rng.integers(0, len(words), size // 4)
    data = b"".join(words[i] for i in idx)[:size]
    path.write_bytes(data)
    return path


def record_of(wheel: Path) -> dict[str, tuple[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(zf.read(name).decode())))
    return {r[0]: (r[1], r[2]) for r in rows}


def assert_valid_wheel(wheel: Path) -> None:
    """Every entry's CRC checks, RECORD lists every entry with its true hash and size, metadata last."""
    record = record_of(wheel)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert len(names) == len(set(names))
        assert set(names) == set(record)
        first_meta = next(i for i, n in enumerate(names) if ".dist-info/" in n)
        assert all(".dist-info/" in n for n in names[first_meta:]), names
        assert names[-1].endswith(".dist-info/RECORD")
        for info in zf.infolist():
            if info.filename.endswith("RECORD"):
                assert record[info.filename] == ("", "")
                continue
            sha = hashlib.sha256()
            with zf.open(info) as f:
                while chunk := f.read(1 << 20):
                    sha.update(chunk)
            digest = "sha256=" + urlsafe_b64encode(sha.digest()).decode().rstrip("=")
            assert record[info.filename] == (digest, str(info.file_size)), info.filename


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return build_base_wheel(tmp_path / "base")


# -- choose_compression -----------------------------------------------------------------------------


def test_auto_stores_what_deflate_cannot_shrink(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    assert choose_compression(floats(tmp_path / "f.bin", 1_000_000), "auto") == "store"
    (tmp_path / "r.bin").write_bytes(os.urandom(3 << 20))
    assert choose_compression(tmp_path / "r.bin") == "store"
    arr = np.random.default_rng(0).integers(0, 16, 2_000_000)
    joblib.dump(arr, tmp_path / "c.joblib", compress=3)
    assert (tmp_path / "c.joblib").stat().st_size > wheel_writer.SMALL_FILE
    assert choose_compression(tmp_path / "c.joblib") == "store"
    joblib.dump(arr, tmp_path / "u.joblib")
    assert choose_compression(tmp_path / "u.joblib") == "deflate"
    assert choose_compression(compressible(tmp_path / "t.txt", 5 << 20)) == "deflate"


def test_auto_sees_the_whole_file_not_just_its_head(tmp_path: Path) -> None:
    # A compressible header (a pickle's) before incompressible bulk: the spread-out sample sees the bulk.
    path = tmp_path / "mixed.bin"
    path.write_bytes(b"\0" * (64 << 10) + os.urandom(16 << 20))
    assert choose_compression(path) == "store"
    path.write_bytes(os.urandom(512 << 10) + b"\0" * (16 << 20))
    assert choose_compression(path) == "deflate"


def test_small_files_and_explicit_modes(tmp_path: Path) -> None:
    (tmp_path / "s").write_bytes(os.urandom(1000))
    (tmp_path / "e").write_bytes(b"")
    assert choose_compression(tmp_path / "s") == "deflate"
    assert choose_compression(tmp_path / "e") == "deflate"
    big = floats(tmp_path / "f.bin", 300_000)
    assert choose_compression(big, "deflate") == "deflate"
    assert choose_compression(tmp_path / "s", "store") == "store"
    with pytest.raises(ValueError, match="'auto', 'deflate', 'store'"):
        choose_compression(big, "gzip")


# -- add_artifacts ----------------------------------------------------------------------------------


def test_artifacts_round_trip_with_a_correct_record(base: Path, tmp_path: Path) -> None:
    before = zipfile.ZipFile(base).infolist()
    f = floats(tmp_path / "f.bin", 600_000)
    t = compressible(tmp_path / "t.txt", (3 << 20) + 12345)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    exe = tmp_path / "run.sh"
    exe.write_bytes(b"#!/bin/sh\necho hi\n")
    exe.chmod(0o700)
    written = add_artifacts(
        base,
        [
            Artifact("demo/_models/f/f.bin", f, "store"),
            Artifact("demo/_models/t/t.txt", t, "deflate"),
            Artifact("demo/_models/e/empty", empty, "deflate"),
            Artifact("demo/_models/e/empty2", empty, "store"),
            Artifact("demo/_models/x/run.sh", exe, "deflate"),
            Artifact("demo/_models/ü/naïve.txt", t, "store"),
        ],
        workers=2,
    )
    assert [w.sha256 for w in written[:2]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (f, t)]
    assert written[1].compressed_size < written[1].size / 3
    assert_valid_wheel(base)
    with zipfile.ZipFile(base) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert zf.read("demo/_models/f/f.bin") == f.read_bytes()
        assert zf.read("demo/_models/t/t.txt") == t.read_bytes()
        assert zf.read("demo/_models/ü/naïve.txt") == t.read_bytes()
        assert zf.read("demo/_models/e/empty") == b""
        assert infos["demo/_models/f/f.bin"].compress_type == zipfile.ZIP_STORED
        assert infos["demo/_models/t/t.txt"].compress_type == zipfile.ZIP_DEFLATED
        # Hatchling's modes and timestamp.
        assert infos["demo/_models/t/t.txt"].external_attr >> 16 == 0o100644
        assert infos["demo/_models/x/run.sh"].external_attr >> 16 == 0o100755
        meta_time = infos["demo-0.1.dist-info/METADATA"].date_time
        assert {i.date_time for i in infos.values()} == {meta_time}
        # hatchling's entries are copied as they were (same compressed bytes, same CRC).
        for old in before:
            if old.filename.endswith("RECORD"):
                continue
            new = infos[old.filename]
            assert (new.CRC, new.compress_size, new.compress_type, new.external_attr) == (
                old.CRC,
                old.compress_size,
                old.compress_type,
                old.external_attr,
            )


def test_parallel_deflate_is_one_valid_stream_independent_of_workers(tmp_path: Path) -> None:
    # Several blocks, and a length that is not a multiple of the block size.
    t = compressible(tmp_path / "t.txt", 5 * deflate.BLOCK + 777)
    outputs = []
    for workers in (1, 2, 4):
        wheel = build_base_wheel(tmp_path / f"w{workers}")
        add_artifacts(wheel, [Artifact("demo/t.txt", t, "deflate")], workers=workers)
        outputs.append(wheel.read_bytes())
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo("demo/t.txt")
            with open(wheel, "rb") as fh:  # the raw stream inflates in one go, as any unzip would
                fh.seek(info.header_offset + 30 + len(info.filename.encode()) + len(info.extra))
                raw = fh.read(info.compress_size)
    assert outputs[0] == outputs[1] == outputs[2]
    d = zlib.decompressobj(-15)
    assert d.decompress(raw) == t.read_bytes()
    assert d.eof and not d.unused_data
    # Block-wise deflate costs almost nothing in ratio against one stream at the same level...
    level = deflate.deflate_level(t.stat().st_size)
    ng = deflate._zlib
    single = ng.compressobj(level, ng.DEFLATED, -15, deflate.DEFLATE_MEM_LEVEL)
    assert len(raw) <= len(single.compress(t.read_bytes()) + single.flush()) * 1.01 + 64
    # ...and a file this size (below FAST_FROM) is no larger than hatchling's level 6 makes it.
    hatchling = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert len(raw) <= len(hatchling.compress(t.read_bytes()) + hatchling.flush())


def test_reproducible_and_follows_source_date_epoch(tmp_path: Path) -> None:
    f = floats(tmp_path / "f.bin", 200_000)
    t = compressible(tmp_path / "t.txt", 2 << 20)
    wheels = []
    for i in range(2):
        wheel = build_base_wheel(tmp_path / f"r{i}", epoch="1700000000")
        add_artifacts(wheel, [Artifact("demo/a/f.bin", f, "store"), Artifact("demo/a/t.txt", t, "deflate")])
        wheels.append(wheel.read_bytes())
    assert wheels[0] == wheels[1]
    with zipfile.ZipFile(io.BytesIO(wheels[0])) as zf:
        assert zf.getinfo("demo/a/t.txt").date_time == (2023, 11, 14, 22, 13, 20)


@pytest.mark.parametrize(
    ("arcname", "message"),
    [
        ("demo/util.py", "two files would be written at demo/util.py"),
        ("demo-0.1.dist-info/extra", "metadata directory"),
        ("../evil", "not a valid path"),
        ("/abs", "not a valid path"),
        ("demo//x", "not a valid path"),
        ("demo\\x", "not a valid path"),
    ],
)
def test_bad_paths_raise_and_leave_the_wheel_alone(base: Path, tmp_path: Path, arcname: str, message: str) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 100)
    original = base.read_bytes()
    with pytest.raises(WheelWriteError, match=message):
        add_artifacts(base, [Artifact(arcname, src, "store")])
    assert base.read_bytes() == original
    assert sorted(p.name for p in base.parent.iterdir()) == [base.name]


def test_duplicate_artifacts_and_changed_files_raise(base: Path, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 100)
    original = base.read_bytes()
    with pytest.raises(WheelWriteError, match=r"two files would be written at demo/a\.bin"):
        add_artifacts(base, [Artifact("demo/a.bin", src, "store"), Artifact("demo/a.bin", src, "deflate")])
    with pytest.raises(WheelWriteError, match="changed during the build"):
        add_artifacts(base, [Artifact("demo/a.bin", src, "deflate", sha256="0" * 64)])
    with pytest.raises(WheelWriteError, match="not found"):
        add_artifacts(base, [Artifact("demo/a.bin", tmp_path / "missing", "store")])
    with pytest.raises(ValueError, match="'store' or 'deflate'"):
        add_artifacts(base, [Artifact("demo/a.bin", src, "auto")])
    assert base.read_bytes() == original
    assert sorted(p.name for p in base.parent.iterdir()) == [base.name]
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    add_artifacts(base, [Artifact("demo/a.bin", src, "deflate", sha256=good)])
    assert_valid_wheel(base)


def test_zip64_records(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the zip64 threshold lowered, small files take the >2 GiB code paths (sizes and offsets)."""
    monkeypatch.setattr(zipstream, "ZIP64_LIMIT", 1000)
    f = floats(tmp_path / "f.bin", 2000)
    t = compressible(tmp_path / "t.txt", 3 << 20)
    add_artifacts(base, [Artifact("demo/a/f.bin", f, "store"), Artifact("demo/a/t.txt", t, "deflate")])
    assert_valid_wheel(base)
    with zipfile.ZipFile(base) as zf:
        assert zf.read("demo/a/f.bin") == f.read_bytes()
        info = zf.getinfo("demo/a/t.txt")
        assert info.extract_version == 45
        assert zf.read(info) == t.read_bytes()


# -- real installers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_installers_accept_the_wheel(tmp_path: Path, venv, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip, uv, installer, `wheel unpack` and check-wheel-contents, on a plain and a zip64 wheel."""
    f = floats(tmp_path / "f.bin", 300_000)
    t = compressible(tmp_path / "t.txt", 3 << 20)
    plain = build_base_wheel(tmp_path / "plain")
    add_artifacts(plain, [Artifact("demo/_models/f/f.bin", f, "store"), Artifact("demo/_models/t/t.txt", t, "deflate")])
    z64 = build_base_wheel(tmp_path / "z64")
    with monkeypatch.context() as m:
        m.setattr(zipstream, "ZIP64_LIMIT", 1000)
        add_artifacts(
            z64, [Artifact("demo/_models/f/f.bin", f, "store"), Artifact("demo/_models/t/t.txt", t, "deflate")]
        )
    tools = venv(seed_pip=True)
    tools.install("check-wheel-contents", "wheel")
    check = (
        "import demo, hashlib; print(hashlib.sha256((demo.HERE / '_models/f/f.bin').read_bytes()).hexdigest(),"
        " hashlib.sha256((demo.HERE / '_models/t/t.txt').read_bytes()).hexdigest())"
    )
    want = f"{hashlib.sha256(f.read_bytes()).hexdigest()} {hashlib.sha256(t.read_bytes()).hexdigest()}"
    for wheel in (plain, z64):
        run([str(tools.path / "bin" / "check-wheel-contents"), str(wheel)])
        run(
            [
                str(tools.path / "bin" / "wheel"),
                "unpack",
                "-d",
                str(tmp_path / f"unpacked-{wheel.parent.parent.name}"),
                str(wheel),
            ]
        )
        by_pip = venv(seed_pip=True)
        by_pip.pip("install", "--no-deps", "--no-index", str(wheel))
        assert by_pip.py(check).stdout.strip() == want
        by_uv = venv()
        by_uv.install("--no-deps", str(wheel))
        assert by_uv.py(check).stdout.strip() == want
        by_installer = venv()
        by_installer.install("installer")
        run([str(by_installer.python), "-m", "installer", "--validate-record", "all", str(wheel)])
        assert by_installer.py(check).stdout.strip() == want


@pytest.mark.slow
def test_a_file_above_4_gib(tmp_path: Path) -> None:
    """A real zip64 entry: a sparse 4.1 GiB file, stored, read back by the standard library."""
    import shutil

    if shutil.disk_usage(tmp_path).free < 12 << 30:
        pytest.skip("needs ~5 GB of free disk")
    big = tmp_path / "big.bin"
    size = (4 << 30) + (100 << 20) + 3
    with open(big, "wb") as fh:
        fh.write(b"head")
        fh.seek(size - 4)
        fh.write(b"tail")
    base = build_base_wheel(tmp_path / "base")
    try:
        (written,) = add_artifacts(base, [Artifact("demo/_models/big/big.bin", big, "store")])
        assert written.size == size
        with zipfile.ZipFile(base) as zf:
            info = zf.getinfo("demo/_models/big/big.bin")
            assert info.file_size == info.compress_size == size
            with zf.open(info) as f:  # reading to the end checks the CRC
                assert f.read(4) == b"head"
                while f.read(16 << 20):
                    pass
            assert zf.read(next(n for n in zf.namelist() if n.endswith("METADATA")))
        assert record_of(base)["demo/_models/big/big.bin"][1] == str(size)
    finally:
        big.unlink()
        base.unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["store", "deflate"])
def test_a_known_digest_is_reused_only_for_the_exact_file_that_was_hashed(base: Path, tmp_path: Path, how: str) -> None:
    """The build hashes each artifact once: the writer reuses the manifest's digest when the file's
    device, inode, size, mtime and ctime prove it is unchanged, and hashes again otherwise."""
    from hatch_modelpack.hashing import fingerprint

    art = compressible(tmp_path / "m.bin", 300_000)
    real = hashlib.sha256(art.read_bytes()).hexdigest()
    marker = "0" * 64  # a digest the writer could only have taken from the artifact's own sha256
    arc = "demo/_models/m/m.bin"
    wheel = tmp_path / "reuse.whl"
    wheel.write_bytes(base.read_bytes())
    (item,) = add_artifacts(wheel, [Artifact(arc, art, how, sha256=marker, fingerprint=fingerprint(art))])
    assert item.sha256 == marker
    # A different fingerprint (the file was touched since it was hashed): hashed again, for real.
    stale = (*fingerprint(art)[:-1], fingerprint(art)[-1] - 1)
    wheel.write_bytes(base.read_bytes())
    with pytest.raises(WheelWriteError, match="changed during the build"):
        add_artifacts(wheel, [Artifact(arc, art, how, sha256=marker, fingerprint=stale)])
    (item,) = add_artifacts(wheel, [Artifact(arc, art, how, sha256=real, fingerprint=stale)])
    assert item.sha256 == real
    assert_valid_wheel(wheel)
