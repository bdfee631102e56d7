"""PyTorch, safetensors and Hugging Face models: read without PyTorch at build time, loaded by real PyTorch after install.

The fast tests need no PyTorch: they hand-assemble ``torch.save``-shaped zips (pickle opcodes with
persistent ids), safetensors files and ``save_pretrained``-shaped directories, and check the static
readers, the exact allowlist and every refusal. The slow ones (marker ``torch``) make real models in a
session virtual environment holding PyTorch 2.13.0 (CPU build, ``pip install torch==2.13.0``),
transformers and safetensors; the test process itself never imports torch. Wheels are built with
``python -m build``, installed into that venv with ``--no-deps``, ``pip check``-ed, loaded and compared
with the originals inside the venv.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import struct
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, Venv, pyproject, requires_dist, run, wheel_metadata, wheel_names

from hatch_modelpack.config import load_config
from hatch_modelpack.errors import ArtifactError, ScanError, UnsafePickleError
from hatch_modelpack.formats._torch_archive import ADMITTED
from hatch_modelpack.formats.registry import FORMATS, detect
from hatch_modelpack.formats.safetensors import MAX_HEADER, SafetensorsError, parse_header
from hatch_modelpack.manifest import analyse

TORCH_PIN = "torch==2.13.0"  # the CPU build on this machine's disk; never let a bare `torch` resolve (CUDA, GBs)
slow_torch = [pytest.mark.slow, pytest.mark.torch]

# -- hand-made torch.save files ------------------------------------------------------------------


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def tensor_pickle(
    key: str, shape: tuple[int, ...], storage: str = "FloatStorage", numel: int | None = None, offset: int = 0
) -> bytes:
    """The opcodes torch.save writes for one tensor: _rebuild_tensor_v2(persistent storage, offset, size, stride, ...)."""
    stride = []
    acc = 1
    for d in reversed(shape):
        stride.insert(0, acc)
        acc *= d
    pid = _tuple(
        _str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel if numel is not None else acc)
    )
    args = _tuple(
        pid + b"Q",
        _int(offset),
        _tuple(*map(_int, shape)),
        _tuple(*map(_int, stride)),
        b"\x89",
        _global("collections", "OrderedDict") + b")R",
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state_dict_pickle(tensors: dict[str, tuple[int, ...]], extra: bytes = b"") -> bytes:
    body = b"".join(_str(name) + tensor_pickle(str(i), shape) for i, (name, shape) in enumerate(tensors.items()))
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + extra + b"u."


def torch_zip(
    path: Path, pickle: bytes, storages: dict[str, int], prefix: str = "model", extra: dict[str, bytes] | None = None
) -> Path:
    """A zip laid out like torch.save's: <prefix>/data.pkl, data/<key>, version, byteorder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", pickle)
        zf.writestr(f"{prefix}/byteorder", "little")
        for key, nbytes in storages.items():
            zf.writestr(f"{prefix}/data/{key}", bytes(nbytes))
        zf.writestr(f"{prefix}/version", "3\n")
        for name, data in (extra or {}).items():
            zf.writestr(f"{prefix}/{name}", data)
    return path


def good_state_dict(path: Path) -> Path:
    return torch_zip(path, state_dict_pickle({"fc.weight": (3, 4), "fc.bias": (3,)}), {"0": 48, "1": 12})


# -- hand-made safetensors -----------------------------------------------------------------------


def safetensors_bytes(
    tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    header: dict[str, Any] = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def small_safetensors() -> bytes:
    return safetensors_bytes({"a": ("F32", [2, 3], bytes(24)), "b": ("I64", [2], bytes(16))}, {"format": "np"})


def header_with(header: dict[str, Any], data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


# -- the static readers ----------------------------------------------------------------------------


def test_safetensors_header_is_read():
    data = small_safetensors()
    got = parse_header(data, len(data))
    assert got == {
        "tensor_count": 2,
        "total_parameters": 8,
        "total_bytes": 40,
        "tensors": {
            "a": {"dtype": "float32", "shape": [2, 3], "numel": 6},
            "b": {"dtype": "int64", "shape": [2], "numel": 2},
        },
        "metadata": {"format": "np"},
    }


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            bytes(12),
            "overlaps",
        ),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), "gap"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8), "past its end"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "needs 12 bytes"),
        ({"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), "malformed shape"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), "malformed data_offsets"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(12), "cover 8 bytes"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}}, bytes(8), "not {dtype"),
        ({"__metadata__": {"k": 1}}, b"", "map of strings"),
    ],
)
def test_safetensors_header_bounds(header: dict[str, Any], data: bytes, match: str):
    blob = header_with(header, data)
    with pytest.raises(SafetensorsError, match=match):
        parse_header(blob, len(blob))


def test_safetensors_header_refuses_size_lies_duplicates_and_non_json():
    huge = struct.pack("<Q", MAX_HEADER + 1) + b"{"
    with pytest.raises(SafetensorsError, match="over the"):
        parse_header(huge, 1 << 40)
    with pytest.raises(SafetensorsError, match="claims"):
        parse_header(struct.pack("<Q", 100) + b"{}", 10)
    dup = b'{"a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}, "a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
    with pytest.raises(SafetensorsError, match="twice"):
        parse_header(struct.pack("<Q", len(dup)) + dup, 8 + len(dup))
    for text in (b"{not json", b'{"a": 1', '{"\xff"}'.encode("latin-1"), b"[1, 2]"):
        with pytest.raises(SafetensorsError):
            parse_header(struct.pack("<Q", len(text)) + text, 8 + len(text))


def test_safetensors_reader_survives_every_truncation_and_garbage():
    data = small_safetensors()
    for cut in range(len(data)):
        with pytest.raises(SafetensorsError):
            parse_header(data[:cut], cut)
    rng = random.Random(12)
    for _ in range(500):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        if rng.random() < 0.5:  # a plausible length prefix, so the JSON path is exercised too
            junk = struct.pack("<Q", max(0, len(junk) - rng.randrange(0, 4))) + b"{" + junk
        with contextlib.suppress(SafetensorsError):  # anything else (IndexError, RecursionError...) fails the test
            parse_header(junk, len(junk))


def test_safetensors_file_and_sharded_directory(tmp_path: Path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(small_safetensors())
    fmt = detect(f, None, "w", "models.w")
    assert fmt.name == "safetensors"
    assert fmt.inspect(f, "w").requires == ["safetensors", "numpy"]
    shards = tmp_path / "sharded"
    shards.mkdir()
    (shards / "model-00001-of-00002.safetensors").write_bytes(safetensors_bytes({"a": ("F32", [2], bytes(8))}))
    (shards / "model-00002-of-00002.safetensors").write_bytes(safetensors_bytes({"b": ("F16", [4], bytes(8))}))
    index = {
        "metadata": {"total_size": 16},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
    }
    (shards / "model.safetensors.index.json").write_text(json.dumps(index))
    fmt = detect(shards, None, "sharded", "models.s")
    assert fmt.name == "safetensors"
    got = fmt.inspect(shards, "sharded").details
    assert got["shards"] == sorted(index["weight_map"].values()) and got["total_parameters"] == 6
    index["weight_map"]["c"] = "model-00002-of-00002.safetensors"
    (shards / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ArtifactError, match="disagree"):
        fmt.inspect(shards, "sharded")
    index["weight_map"] = {"a": "../w.safetensors"}
    (shards / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ArtifactError, match="not a file beside it"):
        fmt.inspect(shards, "sharded")


def test_torch_state_dict_is_read_without_torch(tmp_path: Path):
    f = good_state_dict(tmp_path / "sd.pt")
    fmt = detect(f, None, "sd.pt", "models.m")
    assert fmt.name == "torch"
    got = fmt.inspect(f, "sd.pt")
    assert got.requires == ["torch>=1.13"]
    assert got.details["tensors"] == {
        "fc.weight": {"dtype": "float32", "shape": [3, 4], "numel": 12},
        "fc.bias": {"dtype": "float32", "shape": [3], "numel": 3},
    }
    assert (got.details["tensor_count"], got.details["total_parameters"], got.details["total_bytes"]) == (2, 15, 60)
    assert "record no PyTorch version" in got.details["requirement_note"]
    assert {(g.module, g.name) for g in got.globals or ()} <= ADMITTED
    assert "torch" not in sys.modules


def test_allowlist_mirrors_weights_only_unpickler():
    assert ("torch._utils", "_rebuild_tensor_v2") in ADMITTED and ("torch", "FloatStorage") in ADMITTED
    assert (
        ("collections", "OrderedDict") in ADMITTED
        and ("torch", "Size") in ADMITTED
        and ("torch", "float32") in ADMITTED
    )
    assert (
        ("builtins", "eval") not in ADMITTED
        and ("torch", "load") not in ADMITTED
        and ("torch.nn.modules.linear", "Linear") not in ADMITTED
    )


def write_project(root: Path, models: str, extra: str = "", name: str = "tm") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(pyproject(name=name, models=models, extra=extra))
    (root / "README.md").write_text("# tm\n")
    return root


def analyse_project(root: Path, table: dict[str, Any]) -> list[Any]:
    return analyse(load_config(root, table, "tm"), hash_files=False)


def test_torch_globals_outside_the_allowlist_need_allow_globals(tmp_path: Path):
    """The package's own class and allow-globals are the only additions; the loader admits them with safe_globals."""
    extra = (
        _str("cfg") + _global("tm.config", "Settings") + b")R" + _str("opt") + _global("shop.things", "Thing") + b")R"
    )
    art = torch_zip(tmp_path / "artifacts" / "ckpt.pt", state_dict_pickle({"w": (2,)}, extra), {"0": 8})
    with pytest.raises(UnsafePickleError, match=r"shop\.things\.Thing.*allow-globals") as exc:
        analyse_project(tmp_path, {"models": {"m": "artifacts/ckpt.pt"}})
    assert "tm.config.Settings" not in str(exc.value)
    (packed,) = analyse_project(
        tmp_path, {"models": {"m": {"path": "artifacts/ckpt.pt", "allow-globals": ["shop.things.Thing"]}}}
    )
    assert packed.inspection.details["safe_globals"] == [["shop.things", "Thing"], ["tm.config", "Settings"]]
    assert packed.requires == ["torch>=2.5"]
    assert art.is_file()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (_global("os", "system") + _tuple(_str("echo pwned")) + b"R", r"os\.system.*no setting admits it"),
        (_global("builtins", "eval") + _tuple(_str("1")) + b"R", r"builtins\.eval"),
        (_global("torch", "load") + _tuple(_str("x")) + b"R", r"torch\.load.*weights_only"),
    ],
)
def test_malicious_data_pkl_in_a_valid_torch_zip_is_refused(tmp_path: Path, payload: bytes, match: str):
    pickle = (
        b"\x80\x02"
        + _global("collections", "OrderedDict")
        + b")R("
        + _str("w")
        + tensor_pickle("0", (2,))
        + _str("x")
        + payload
        + b"u."
    )
    torch_zip(tmp_path / "artifacts" / "evil.pt", pickle, {"0": 8})
    with pytest.raises(UnsafePickleError, match=match):
        analyse_project(
            tmp_path, {"models": {"m": {"path": "artifacts/evil.pt", "allow-globals": ["os.system", "builtins.eval"]}}}
        )


def test_torch_zip_structure_errors(tmp_path: Path):
    cases = {
        "missing storage": (state_dict_pickle({"w": (2, 2)}), {}, "no model/data/0 record"),
        "short storage": (state_dict_pickle({"w": (2, 2)}), {"0": 4}, "truncated or corrupt"),
        "past storage": (
            b"\x80\x02"
            + _global("collections", "OrderedDict")
            + b")R("
            + _str("w")
            + tensor_pickle("0", (4,), numel=2)
            + b"u.",
            {"0": 8},
            "reaches past",
        ),
        "bad pid": (b"\x80\x02" + _tuple(_str("file"), _str("/etc/passwd")) + b"Q.", {}, "not a PyTorch storage"),
        "bad storage class": (
            b"\x80\x02"
            + _global("torch._utils", "_rebuild_tensor_v2")
            + _tuple(
                _tuple(_str("storage"), _global("torch", "Evil"), _str("0"), _str("cpu"), _int(1)) + b"Q",
                _int(0),
                _tuple(_int(1)),
                _tuple(_int(1)),
                b"\x89",
                b"N",
            )
            + b"R.",
            {"0": 4},
            "does not admit",
        ),
        "truncated pickle": (state_dict_pickle({"w": (2,)})[:-9], {"0": 8}, "truncated|ends early|STOP|stream"),
        "trailing bytes": (state_dict_pickle({"w": (2,)}) + b"junk", {"0": 8}, "after the pickle"),
    }
    for name, (pickle, storages, match) in cases.items():
        f = torch_zip(tmp_path / f"{name}.pt", pickle, storages)
        with pytest.raises((ArtifactError, ScanError), match=match):
            FORMATS["torch"].inspect(f, name)
    dup = tmp_path / "dup.pt"
    good_state_dict(dup)
    with zipfile.ZipFile(dup, "a") as zf, pytest.warns(UserWarning):
        zf.writestr("model/data.pkl", b"\x80\x02N.")
    with pytest.raises(ArtifactError, match="twice"):
        FORMATS["torch"].inspect(dup, "dup")


def test_legacy_torch_file_and_whole_module_are_refused_with_the_fix(tmp_path: Path):
    legacy = tmp_path / "old.pt"
    legacy.write_bytes(b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.")
    fmt = detect(legacy, None, "old.pt", "models.m")
    with pytest.raises(ArtifactError, match=r"legacy serialization.*torch\.save\(obj, path\)"):
        fmt.inspect(legacy, "old.pt")
    module = (
        b"\x80\x02"
        + _global("train", "Net")
        + b")\x81}("
        + _str("fc")
        + _global("torch.nn.modules.linear", "Linear")
        + b")\x81"
        + b"u"
        + b"b."
    )
    whole = torch_zip(tmp_path / "whole.pt", module, {})
    with pytest.raises(
        ArtifactError, match=r"whole pickled model.*train\.Net.*state_dict\(\).*torch\.jit.*torch\.export"
    ):
        detect(whole, None, "whole.pt", "models.m").inspect(whole, "whole.pt")


def test_suffix_never_decides_between_torch_and_torchscript(tmp_path: Path):
    ts = torch_zip(
        tmp_path / "ts.pt",
        b"\x80\x02" + _global("__torch__", "Net") + b")\x81}b.",
        {},
        extra={
            "constants.pkl": b"\x80\x02).",
            "code/__torch__.py": b"class Net(Module):\n  def forward(self, x):\n    return x\n",
        },
    )
    assert detect(ts, None, "ts.pt", "models.m").name == "torchscript"
    assert detect(good_state_dict(tmp_path / "sd.pt"), None, "sd.pt", "models.m").name == "torch"
    got = FORMATS["torchscript"].inspect(ts, "ts.pt").details
    assert (got["class"], got["methods"]) == ("__torch__.Net", ["forward"])
    with pytest.raises(ArtifactError, match=r"declared as 'torch'.*a torchscript file"):
        detect(ts, "torch", "ts.pt", "models.m")
    st = tmp_path / "w.safetensors"
    st.write_bytes(small_safetensors())
    with pytest.raises(ArtifactError, match=r"declared as 'torch'.*a safetensors file"):
        detect(st, "torch", "w.safetensors", "models.m")


def hf_dir(root: Path, **config: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(
        json.dumps(
            {
                "model_type": "bert",
                "architectures": ["BertModel"],
                "transformers_version": "4.57.1",
                "torch_dtype": "float32",
                **config,
            }
        )
    )
    (root / "model.safetensors").write_bytes(small_safetensors())
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return root


def test_transformers_directory_is_read_and_remote_code_needs_opting_in(tmp_path: Path):
    hf_dir(tmp_path / "artifacts" / "bert")
    (packed,) = analyse_project(tmp_path, {"models": {"m": "artifacts/bert"}})
    assert packed.format.name == "transformers"
    assert packed.requires == ["safetensors", "torch", "transformers<5,>=4.57.1"]
    d = packed.inspection.details
    assert (d["model_type"], d["architectures"], d["dtype"], d["transformers_version"]) == (
        "bert",
        ["BertModel"],
        "float32",
        "4.57.1",
    )
    assert d["weights"]["tensor_count"] == 2 and d["components"] == ["vocab.txt"]
    (tmp_path / "artifacts" / "bert" / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(ArtifactError, match=r"custom code.*modeling_evil\.py.*trust-remote-code = true"):
        analyse_project(tmp_path, {"models": {"m": "artifacts/bert"}})
    (packed,) = analyse_project(tmp_path, {"models": {"m": {"path": "artifacts/bert", "trust-remote-code": True}}})
    assert packed.inspection.details["trust_remote_code"] is True
    hf_dir(tmp_path / "artifacts" / "hub", auto_map={"AutoModel": "someone/repo--modeling.Net"})
    with pytest.raises(ArtifactError, match="another Hub repository"):
        analyse_project(tmp_path, {"models": {"m": {"path": "artifacts/hub", "trust-remote-code": True}}})


def test_transformers_pytorch_bin_is_scanned_like_torch(tmp_path: Path):
    d = tmp_path / "artifacts" / "bin"
    hf_dir(d)
    (d / "model.safetensors").unlink()
    evil = b"\x80\x02" + _global("subprocess", "getoutput") + _tuple(_str("id")) + b"R."
    torch_zip(d / "pytorch_model.bin", evil, {}, prefix="archive")
    with pytest.raises(UnsafePickleError, match=r"subprocess\.getoutput"):
        analyse_project(tmp_path, {"models": {"m": "artifacts/bin"}})
    good_state_dict(d / "pytorch_model.bin")
    (packed,) = analyse_project(tmp_path, {"models": {"m": "artifacts/bin"}})
    assert "safetensors" not in " ".join(packed.requires)
    assert packed.inspection.details["weights"]["tensor_count"] == 2


def test_scanner_still_refuses_persistent_ids_by_default():
    from hatch_modelpack.scanning import scan_bytes

    with pytest.raises(ScanError, match="persistent IDs"):
        scan_bytes(b"\x80\x02" + _str("x") + b"Q.")
    assert scan_bytes(b"\x80\x02" + _str("x") + b"Q.", persistent_ids=True).root.pid == "x"


# -- bad inputs through a real build -------------------------------------------------------------


def _bad_torch_zip(root: Path) -> str:
    evil = b"\x80\x02" + _global("posix", "system") + _tuple(_str("touch /tmp/hatch-modelpack-torch-pwned")) + b"R."
    torch_zip(root / "artifacts" / "model.pt", evil, {})
    return 'm = "artifacts/model.pt"'


def _truncated_safetensors(root: Path) -> str:
    (root / "artifacts").mkdir(parents=True)
    (root / "artifacts" / "w.safetensors").write_bytes(small_safetensors()[:-5])
    return 'm = "artifacts/w.safetensors"'


def _non_json_header(root: Path) -> str:
    (root / "artifacts").mkdir(parents=True)
    text = b"{this is not json}"
    (root / "artifacts" / "w.safetensors").write_bytes(struct.pack("<Q", len(text)) + text)
    return 'm = "artifacts/w.safetensors"'


def _wrong_format(root: Path) -> str:
    (root / "artifacts").mkdir(parents=True)
    (root / "artifacts" / "w.safetensors").write_bytes(small_safetensors())
    return 'm = { path = "artifacts/w.safetensors", format = "torch" }'


def _remote_code(root: Path) -> str:
    d = hf_dir(root / "artifacts" / "bert", auto_map={"AutoModel": "modeling_bert2.Bert2"})
    (d / "modeling_bert2.py").write_text("raise SystemExit('ran')\n")
    return 'm = "artifacts/bert"'


BAD_BUILDS = {
    "malicious data.pkl": (_bad_torch_zip, ["artifacts/model.pt (models.m)", "posix.system", "no setting admits it"]),
    "truncated safetensors": (
        _truncated_safetensors,
        ["artifacts/w.safetensors (models.m)", "not a valid safetensors file", "covers|past its end|cover"],
    ),
    "non-JSON header": (_non_json_header, ["artifacts/w.safetensors (models.m)", "not valid JSON"]),
    "wrong declared format": (_wrong_format, ["declared as 'torch'", "a safetensors file", "models.m.format"]),
    "remote code": (_remote_code, ["artifacts/bert (models.m)", "custom code", "trust-remote-code = true"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_BUILDS))
def test_bad_torch_family_input_fails_the_build_with_one_paragraph(
    case: str, tmp_path: Path, build_env: dict[str, str]
):
    import re

    setup, expect = BAD_BUILDS[case]
    root = tmp_path / "proj"
    root.mkdir()
    models = setup(root)
    write_project(root, models)
    before = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    proc = Project(root, "tm").build(build_env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    line = next((ln for ln in out.splitlines() if ln.startswith("hatch-modelpack:")), "")
    for fragment in expect:
        assert re.search(
            fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.") if "|" not in fragment else fragment,
            line,
        ), f"{fragment!r} not in:\n{out}"
    assert "Traceback" not in out, out
    assert not (root / "dist").exists() or not any((root / "dist").iterdir())
    assert {p.relative_to(root).as_posix() for p in root.rglob("*")} - before <= {"dist"}
    assert not os.path.exists("/tmp/hatch-modelpack-torch-pwned")


# -- real models in a session venv ---------------------------------------------------------------

MAKE_MODELS = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
import safetensors.numpy
import transformers

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.norm = torch.nn.BatchNorm1d(3)

    def forward(self, x):
        return torch.tanh(self.norm(self.fc(x)))


net = Net().eval()
x = torch.randn(5, 4)
torch.save(net.state_dict(), out / "state.pt")
torch.jit.save(torch.jit.script(net), out / "scripted.pt")
torch.export.save(torch.export.export(net, (x,)), out / "exported.pt2")
torch.save(x, out / "x.pt")
rng = np.random.default_rng(0)
arrays = {"emb": rng.normal(size=(10, 4)).astype(np.float32), "ids": np.arange(7, dtype=np.int64), "half": rng.normal(size=(3,)).astype(np.float16)}
safetensors.numpy.save_file(arrays, str(out / "weights.safetensors"), metadata={"format": "np", "note": "tiny"})
shards = out / "sharded"
shards.mkdir()
safetensors.numpy.save_file({"emb": arrays["emb"]}, str(shards / "model-00001-of-00002.safetensors"))
safetensors.numpy.save_file({"ids": arrays["ids"], "half": arrays["half"]}, str(shards / "model-00002-of-00002.safetensors"))
(shards / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": {"emb": "model-00001-of-00002.safetensors", "ids": "model-00002-of-00002.safetensors", "half": "model-00002-of-00002.safetensors"}}))

# A tiny BERT made offline from a config, with a tokenizer built from a local vocabulary.
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "model", "pack", "##s", "the", "a"]
(out / "vocab.txt").write_text("\n".join(vocab) + "\n")
tokenizer = transformers.BertTokenizerFast(vocab_file=str(out / "vocab.txt"))
config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32, num_labels=3)
torch.manual_seed(0)
bert = transformers.BertForSequenceClassification(config).eval()
bert.save_pretrained(out / "bert")
tokenizer.save_pretrained(out / "bert")
enc = tokenizer(["hello world", "the model packs"], padding=True, return_tensors="pt")
with torch.no_grad():
    logits = bert(**enc).logits
print(json.dumps({
    "torch": torch.__version__, "transformers": transformers.__version__,
    "pred": net(x).tolist(), "ids": enc["input_ids"].tolist(), "logits": logits.tolist(),
}))
"""

CHECK_MODELS = r"""
import json, sys
from pathlib import Path
src = Path(sys.argv[1])
import tm_torch as pkg
imported = sorted(m for m in ("torch", "safetensors", "transformers", "numpy") if m in sys.modules)
import numpy as np
import torch
import safetensors.numpy
x = torch.load(src / "x.pt", weights_only=True)
out = {"imported": imported, "models": list(pkg.models())}
state = pkg.load("state", map_location="cpu")
orig = torch.load(src / "state.pt", weights_only=True)
out["state_equal"] = list(state) == list(orig) and all(torch.equal(state[k], orig[k]) for k in orig)
out["scripted"] = pkg.load("scripted")(x).tolist()
out["exported"] = pkg.load("exported").module()(x).tolist()
arrays, orig = pkg.load("weights"), safetensors.numpy.load_file(str(src / "weights.safetensors"))
out["safetensors_equal"] = sorted(arrays) == sorted(orig) and all(np.array_equal(arrays[k], orig[k]) and arrays[k].dtype == orig[k].dtype for k in orig)
pt = pkg.load("weights", framework="pt")
out["safetensors_pt"] = all(isinstance(v, torch.Tensor) and np.array_equal(v.numpy(), orig[k]) for k, v in pt.items())
sharded = pkg.load("sharded")
out["sharded_equal"] = sorted(sharded) == sorted(orig) and all(np.array_equal(sharded[k], orig[k]) for k in orig)
tok = pkg.load("bert", component="tokenizer")
bert = pkg.load("bert")
enc = tok(["hello world", "the model packs"], padding=True, return_tensors="pt")
with torch.no_grad():
    out["logits"] = bert(**enc).logits.tolist()
out["ids"] = enc["input_ids"].tolist()
out["bert_class"] = type(bert).__name__
out["meta"] = {n: pkg.metadata(n) for n in pkg.models()}
print(json.dumps(out))
"""


def flat(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    """One venv per session: python -m venv + pip, torch==2.13.0 (CPU build from this machine's disk) first."""
    given = os.environ.get("MODELPACK_TORCH_VENV")  # a venv made the same way, kept between runs (local iteration)
    if given:
        yield Venv(Path(given))
        return
    path = tmp_path_factory.mktemp("torchvenv") / "venv"
    run([sys.executable, "-m", "venv", str(path)])
    venv = Venv(path)
    run([str(venv.python), "-m", "pip", "install", "-q", TORCH_PIN], timeout=1800)
    # With torch installed, transformers' own torch requirement (if any) is already satisfied: nothing else resolves torch.
    run([str(venv.python), "-m", "pip", "install", "-q", "transformers", "safetensors", "numpy"], timeout=1800)
    yield venv
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def torch_models(tmp_path_factory: pytest.TempPathFactory, torch_venv: Venv) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("torchmodels")
    script = out / "make_models.py"
    script.write_text(MAKE_MODELS)
    proc = run([str(torch_venv.python), str(script), str(out / "models")], timeout=900)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["dir"] = out / "models"
    return info


ALL_MODELS = """
[tool.hatch.build.hooks.modelpack.models.state]
path = "artifacts/state.pt"
default = true
description = "a state dict"

[tool.hatch.build.hooks.modelpack.models.scripted]
path = "artifacts/scripted.pt"

[tool.hatch.build.hooks.modelpack.models.exported]
path = "artifacts/exported.pt2"

[tool.hatch.build.hooks.modelpack.models.weights]
path = "artifacts/weights.safetensors"

[tool.hatch.build.hooks.modelpack.models.sharded]
path = "artifacts/sharded"

[tool.hatch.build.hooks.modelpack.models.bert]
path = "artifacts/bert"
"""


@pytest.mark.slow
@pytest.mark.torch
def test_every_torch_family_format_builds_installs_and_matches_the_original(
    tmp_path: Path, build_env: dict[str, str], torch_models: dict[str, Any], torch_venv: Venv
):
    root = tmp_path / "tm-torch"
    root.mkdir()
    src = torch_models["dir"]
    (root / "artifacts").mkdir()
    for name in ("state.pt", "scripted.pt", "exported.pt2", "weights.safetensors"):
        shutil.copy(src / name, root / "artifacts" / name)
    for name in ("sharded", "bert"):
        shutil.copytree(src / name, root / "artifacts" / name)
    (root / "pyproject.toml").write_text(pyproject(name="tm-torch", models="", extra=ALL_MODELS))
    (root / "README.md").write_text("# tm-torch\n")
    p = Project(root, "tm-torch")
    p.build(build_env)
    wheel = p.wheel()
    names = set(wheel_names(wheel))
    assert (
        "tm_torch/_models/bert/bert/model.safetensors" in names and "tm_torch/_models/bert/bert/tokenizer.json" in names
    )
    torch_version = torch_models["torch"].split("+", 1)[0]
    major = int(torch_models["transformers"].split(".")[0])
    minor = int(torch_version.split(".")[1])
    assert requires_dist(wheel_metadata(wheel)) == sorted(
        [
            "numpy",
            "safetensors",
            "torch>=1.13",
            f"torch<2.{minor + 1},>={torch_version}",
            f"transformers<{major + 1},>={torch_models['transformers']}",
        ]
    )
    torch_venv.pip("install", "--no-deps", "--force-reinstall", str(wheel))
    torch_venv.pip("check")
    script = tmp_path / "check.py"
    script.write_text(CHECK_MODELS)
    got = json.loads(run([str(torch_venv.python), str(script), str(src)]).stdout.strip().splitlines()[-1])
    assert got["imported"] == []
    assert sorted(got["models"]) == ["bert", "exported", "scripted", "sharded", "state", "weights"]
    assert got["state_equal"] and got["safetensors_equal"] and got["safetensors_pt"] and got["sharded_equal"]
    assert flat(got["scripted"]) == pytest.approx(flat(torch_models["pred"]), abs=1e-6)
    assert flat(got["exported"]) == pytest.approx(flat(torch_models["pred"]), abs=1e-6)
    assert got["ids"] == torch_models["ids"]
    assert flat(got["logits"]) == pytest.approx(flat(torch_models["logits"]), abs=1e-6)
    assert got["bert_class"] == "BertForSequenceClassification"
    meta = got["meta"]
    assert meta["state"]["details"]["tensors"]["fc.weight"] == {"dtype": "float32", "shape": [3, 4], "numel": 12}
    assert meta["state"]["details"]["total_parameters"] == 12 + 3 + 3 + 3 + 3 + 3 + 1
    assert meta["scripted"]["details"]["methods"] == ["forward"]
    assert meta["exported"]["frameworks"] == {"torch": torch_version}
    assert meta["exported"]["details"]["programs"]["model"]["torch_version"] == torch_models["torch"]
    assert meta["weights"]["details"]["metadata"] == {"format": "np", "note": "tiny"}
    assert meta["sharded"]["details"]["tensor_count"] == 3
    assert meta["bert"]["frameworks"] == {"transformers": torch_models["transformers"]}
    assert meta["bert"]["details"]["architectures"] == ["BertForSequenceClassification"]
    # The manifest entries the report quotes.
    (tmp_path.parent / "torch-manifest-entries.json").write_text(json.dumps(meta, indent=1))
    # A tampered artifact is refused before torch reads a byte of it.
    target = torch_venv.site_packages() / "tm_torch" / "_models" / "state" / "state.pt"
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    got = torch_venv.json(
        """
        import json, sys, torch, tm_torch
        read = []  # torch is imported while the hash runs (issue 16); torch.load must never see the bytes
        real = torch.load
        torch.load = lambda *a, **k: read.append(str(a[0])) or real(*a, **k)
        try:
            tm_torch.load()
            outcome = "loaded"
        except tm_torch.IntegrityError as exc:
            outcome = "IntegrityError"
        print(json.dumps([outcome, read]))
        """
    )
    assert got == ["IntegrityError", []]
