"""Keras and TensorFlow models: read without TensorFlow at build time, loaded by real TensorFlow after install.

The fast tests check the protobuf and HDF5 readers and format sniffing on hand-made and h5py-made
files. The slow ones train a small Keras model (seeded, synthetic data), save it four ways (``.keras``,
legacy ``.h5``, ``model.export`` and ``tf.saved_model.save``), build wheels with a real front end,
install them into one TensorFlow virtual environment per session, and compare predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import zipfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import UV, Project, Venv, requires_dist, run, tamper, wheel_metadata, wheel_names

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats.keras import KerasFormat, read_h5_root_attributes
from hatch_modelpack.formats.registry import detect
from hatch_modelpack.protobuf import Message, read_saved_model, read_saved_model_file

slow_tf = [pytest.mark.slow, pytest.mark.tensorflow]
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}

# -- protobuf wire format: a tiny encoder for hand-made SavedModels -----------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fld(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def saved_model_bytes(version: str = "2.99.1", graph: bytes = b"\x0a\x03abc") -> bytes:
    shape = fld(2, fld(1, -1)) + fld(2, fld(1, 4))
    tensor = fld(1, "serving_default_x:0") + fld(2, 1) + fld(3, shape)
    signature = (
        fld(1, fld(1, "x") + fld(2, tensor))
        + fld(2, fld(1, "y") + fld(2, fld(2, 9)))
        + fld(3, "tensorflow/serving/predict")
    )
    meta_info = fld(1, "") + fld(4, "serve") + fld(5, version) + fld(6, f"v{version}-0-gabc")
    meta_graph = (
        fld(1, meta_info)
        + fld(2, graph)
        + fld(5, fld(1, "serving_default") + fld(2, signature))
        + fld(5, fld(1, "__saved_model_init_op") + fld(2, b""))
    )
    return fld(1, 1) + fld(2, meta_graph)


def test_protobuf_reader_reads_versions_and_signatures():
    info = read_saved_model(Message.from_bytes(saved_model_bytes(), "t"))
    assert info.schema_version == 1
    (mg,) = info.meta_graphs
    assert (mg.tags, mg.tensorflow_version, mg.tensorflow_git_version) == (["serve"], "2.99.1", "v2.99.1-0-gabc")
    sig = mg.signatures["serving_default"]
    assert sig["inputs"] == {"x": {"dtype": "float32", "shape": [None, 4]}}
    assert sig["outputs"] == {"y": {"dtype": "int64"}}
    assert sig["method_name"] == "tensorflow/serving/predict"


def test_protobuf_reader_refuses_every_truncation_and_garbage():
    data = saved_model_bytes()
    for cut in range(len(data)):
        with pytest.raises(ArtifactError):
            info = read_saved_model(Message.from_bytes(data[:cut], "t"))
            if not info.meta_graphs:  # an empty prefix is an empty message: the file-level reader refuses it
                raise ArtifactError("no meta graph")
    rng = random.Random(3)
    for _ in range(300):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        with contextlib.suppress(ArtifactError):  # anything else (IndexError, MemoryError...) fails the test
            read_saved_model(Message.from_bytes(junk, "t"))
    with pytest.raises(ArtifactError, match="wire type"):
        read_saved_model(Message.from_bytes(b"\x13", "t"))  # a group start: not in TensorFlow's protos
    with pytest.raises(ArtifactError, match="varint"):
        read_saved_model(Message.from_bytes(b"\x08" + b"\xff" * 12, "t"))


def test_protobuf_reader_seeks_past_a_huge_graph(tmp_path: Path):
    """A 3 GiB graph_def (a sparse file) is skipped, not read: the reader streams and stays bounded."""
    big = 3 << 30
    meta_info = fld(4, "serve") + fld(5, "2.20.0")
    tail = fld(5, fld(1, "serving_default") + fld(2, fld(3, "m")))
    graph_head = varint(2 << 3 | 2) + varint(big)
    meta_graph_len = len(fld(1, meta_info)) + len(graph_head) + big + len(tail)
    pb = tmp_path / "saved_model.pb"
    with open(pb, "wb") as f:
        f.write(fld(1, 1) + varint(2 << 3 | 2) + varint(meta_graph_len) + fld(1, meta_info) + graph_head)
        f.seek(big, os.SEEK_CUR)
        f.write(tail)
    info = read_saved_model_file(pb, "t")
    assert info.meta_graphs[0].tensorflow_version == "2.20.0"
    assert list(info.meta_graphs[0].signatures) == ["serving_default"]


def test_saved_model_pb_of_garbage_is_a_clear_error(tmp_path: Path):
    sm = tmp_path / "exported"
    (sm / "variables").mkdir(parents=True)
    (sm / "saved_model.pb").write_bytes(b"this is not a protobuf, just text pretending\n")
    fmt = detect(sm, None, "exported (models.m)", "models.m")
    with pytest.raises(ArtifactError, match=r"exported \(models.m\).*(protobuf|MetaGraph)"):
        fmt.inspect(sm, "exported (models.m)")


# -- HDF5 and .keras: format sniffing and static reading -----------------------------------------


def make_h5(path: Path, libver: str = "earliest", **attrs: Any) -> Path:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w", libver=libver) as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f.create_group("model_weights").create_dataset("w", data=[1.0, 2.0])
    return path


@pytest.mark.parametrize("libver", ["earliest", "latest"])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_h5_root_attributes_without_h5py(tmp_path: Path, libver: str, as_bytes: bool):
    enc = (lambda s: s.encode()) if as_bytes else (lambda s: s)  # bytes: fixed-length; str: global heap
    config = json.dumps(
        {
            "class_name": "Sequential",
            "config": {"layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 3]}}]},
        }
    )
    h5 = make_h5(tmp_path / "m.h5", libver, keras_version=enc("3.4.1"), backend=enc("jax"), model_config=enc(config))
    assert read_h5_root_attributes(h5) == {"keras_version": "3.4.1", "backend": "jax", "model_config": config}
    fmt = detect(h5, None, "m.h5", "models.m")
    assert fmt.name == "keras"
    got = fmt.inspect(h5, "m.h5")
    assert (got.requires, got.frameworks) == (["keras", "jax"], {"keras": "3.4.1"})
    assert got.details == {
        "container": "h5",
        "keras_version": "3.4.1",
        "backend": "jax",
        "input_shapes": [[None, 3]],
        "input_schema": {"inputs": [{"shape": [None, 3]}]},
    }


def test_h5_from_keras_2_admits_keras_3(tmp_path: Path):
    h5 = make_h5(tmp_path / "old.h5", keras_version=b"2.15.0", backend=b"tensorflow", model_config=b"{}")
    got = KerasFormat().inspect(h5, "old.h5")
    assert got.requires == ["keras>=2.15.0", "tensorflow"]


def test_h5_dense_attributes_fall_back_to_unversioned(tmp_path: Path):
    attrs = {f"extra{i}": "x" for i in range(12)}  # more than 8 attributes: h5py stores them densely (libver latest)
    h5 = make_h5(tmp_path / "dense.h5", "latest", keras_version="3.4.1", model_config="{}", **attrs)
    got = KerasFormat().inspect(h5, "dense.h5")
    assert (got.requires, got.frameworks) == (["keras", "tensorflow"], {})
    assert "dense attribute storage" in got.details["unread"]


def test_h5_weights_only_and_damaged_files_are_refused(tmp_path: Path):
    weights = make_h5(tmp_path / "w.h5")
    with pytest.raises(ArtifactError, match=r"model_config.*model\.save"):
        KerasFormat().inspect(weights, "w.h5 (models.m)")
    good = make_h5(tmp_path / "g.h5", keras_version="3.4.1", model_config="{}").read_bytes()
    damaged = tmp_path / "d.h5"
    damaged.write_bytes(good[:200])
    with pytest.raises(ArtifactError, match="damaged HDF5"):
        KerasFormat().inspect(damaged, "d.h5")
    rng = random.Random(5)
    for i in range(200):  # garbage after a valid signature never crashes the build with a traceback
        junk = tmp_path / f"j{i}.h5"
        data = bytearray(good)
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        junk.write_bytes(bytes(data))
        with contextlib.suppress(ArtifactError):
            KerasFormat().inspect(junk, "j.h5")


def test_keras_zip_sniffing(tmp_path: Path):
    good = tmp_path / "m.keras"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.10.0", "date_saved": "x"}))
        zf.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"layers": []}}))
        zf.writestr("model.weights.h5", b"")
    got = detect(good, None, "m.keras", "models.m").inspect(good, "m.keras")
    assert (got.requires, got.frameworks) == (["keras", "tensorflow"], {"keras": "3.10.0"})
    assert got.details == {
        "container": "keras",
        "keras_version": "3.10.0",
        "weights": ["model.weights.h5"],
        "class_name": "Functional",
    }

    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("data.txt", "hello")
    with pytest.raises(ArtifactError, match=r"\.keras suffix.*zip archive"):
        detect(other, None, "other.keras", "models.m")
    text = tmp_path / "t.h5"
    text.write_text("not hdf5")
    with pytest.raises(ArtifactError, match=r"\.h5 suffix"):
        detect(text, None, "t.h5", "models.m")
    no_version = tmp_path / "nv.keras"
    with zipfile.ZipFile(no_version, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{}")
    with pytest.raises(ArtifactError, match="keras_version"):
        KerasFormat().inspect(no_version, "nv.keras")
    half = tmp_path / "vars_only"
    (half / "variables").mkdir(parents=True)
    with pytest.raises(ArtifactError, match=r"saved_model\.pb"):
        detect(half, None, "vars_only", "models.m")


# -- real TensorFlow ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small trained Keras model saved four ways, test inputs, and its predictions."""
    pytest.importorskip("tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf

    out = tmp_path_factory.mktemp("tf_models")
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(256, 4)).astype("float32")
    y = (X[:, 0] - 0.5 * X[:, 2] + rng.normal(scale=0.2, size=256) > 0).astype("float32")
    inputs = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    X_test = X[:32]
    np.save(out / "X.npy", X_test)
    model.save(out / "model.keras")
    model.save(out / "model.h5")
    model.export(str(out / "exported"), verbose=False)
    tf.saved_model.save(model, str(out / "tfsaved"))
    return {
        "dir": out,
        "X": out / "X.npy",
        "pred": model.predict(X_test, verbose=0).ravel().tolist(),
        "keras": importlib_metadata.version("keras"),
        "tensorflow": tf.__version__,
    }


@pytest.fixture(scope="session")
def tf_venv(tmp_path_factory: pytest.TempPathFactory, tf_models: dict[str, Any]) -> Venv:
    """One virtual environment with the `tensorflow` distribution the wheels require, made once per session."""
    path = tmp_path_factory.mktemp("tf_venv") / "venv"
    run([UV, "venv", "--quiet", "--python", sys.executable, str(path)])
    env = Venv(path)
    env.install(f"tensorflow=={tf_models['tensorflow']}", f"keras=={tf_models['keras']}")
    return env


ARTIFACTS = {  # kind -> (path in the project, path in tf_models)
    "keras": ("artifacts/model.keras", "model.keras"),
    "h5": ("artifacts/model.h5", "model.h5"),
    "export": ("artifacts/exported", "exported"),
    "tfsave": ("artifacts/tfsaved", "tfsaved"),
}


def tf_project(
    tmp_path: Path, name: str, tf_models: dict[str, Any], models: dict[str, str], extra: str = ""
) -> Project:
    """A model project whose artifacts are copies of the session's saved models."""
    import shutil

    root = tmp_path / name
    p = Project(root, name)
    lines = []
    for model_name, kind in models.items():
        rel, src = ARTIFACTS[kind]
        source = tf_models["dir"] / src
        if source.is_dir():
            shutil.copytree(source, root / rel)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / rel)
        lines.append(f'{model_name} = "{rel}"')
    p.write(
        "pyproject.toml",
        '[build-system]\nrequires = ["hatchling", "hatch-modelpack"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.3.0"\nrequires-python = ">=3.10"\ndynamic = ["dependencies"]\n\n'
        "[tool.hatch.metadata.hooks.modelpack]\n\n[tool.hatch.build.hooks.modelpack]\n\n"
        "[tool.hatch.build.hooks.modelpack.models]\n" + "\n".join(lines) + "\n\n" + extra,
    )
    return p


PREDICT = {
    "keras": "m = pkg.load({name!r}); pred = m.predict(X, verbose=0)",
    "h5": "m = pkg.load({name!r}, compile=False); pred = m(X)",
    "export": "m = pkg.load({name!r}); pred = m.serve(X)",
    "tfsave": "m = pkg.load({name!r}); pred = m.signatures['serving_default'](inputs=tf.constant(X))['output_0']",
}


def predict_in(env: Venv, package: str, X: Path, names: dict[str, str], layer: bool = False) -> dict[str, Any]:
    """Import the package (recording what that imported), then load and predict with every named model."""
    body = "\n".join(f"{PREDICT[kind].format(name=n)}; preds[{n!r}] = pred" for n, kind in names.items())
    code = f"""
import json, sys
import {package} as pkg
imported = sorted(m for m in ("tensorflow", "keras", "h5py", "numpy") if m in sys.modules)
import numpy as np, tensorflow as tf
X = np.load({str(X)!r})
preds = {{}}
{body}
layers = {{}}
if {layer!r}:
    for n, kind in {names!r}.items():
        if kind in ("export", "tfsave"):
            out = pkg.load(n, as_layer=True)(X)
            out = out if not isinstance(out, dict) else next(iter(out.values()))
            layers[n] = np.asarray(out).ravel().tolist()
print(json.dumps({{"imported": imported, "models": list(pkg.models()),
    "preds": {{k: np.asarray(v).ravel().tolist() for k, v in preds.items()}}, "layers": layers,
    "meta": {{n: pkg.metadata(n) for n in pkg.models()}}}}))
"""
    return env.json(code, env=TF_ENV)


def expected_requires(kind: str, tf_models: dict[str, Any]) -> list[str]:
    major = int(tf_models["keras"].split(".")[0])
    if kind in ("keras", "h5"):
        return [f"keras<{major + 1},>={tf_models['keras']}", "tensorflow"]
    return [f"tensorflow>={tf_models['tensorflow']}"]


@pytest.mark.parametrize("kind", list(ARTIFACTS))
@pytest.mark.slow
@pytest.mark.tensorflow
def test_each_format_builds_installs_and_predicts(kind, tmp_path, build_env, tf_models, tf_venv):
    name = f"tfmodel-{kind}"
    p = tf_project(tmp_path, name, tf_models, {"clf": kind})
    p.build(build_env)
    wheel = p.wheel()
    names = set(wheel_names(wheel))
    package = name.replace("-", "_")
    if kind in ("export", "tfsave"):
        src = tf_models["dir"] / ARTIFACTS[kind][1]
        shipped = {
            f"{package}/_models/clf/{src.name}/{f.relative_to(src).as_posix()}" for f in src.rglob("*") if f.is_file()
        }
        assert shipped <= names and any("variables/variables.data-" in n for n in shipped)
    reqs = requires_dist(wheel_metadata(wheel))
    assert reqs == expected_requires(kind, tf_models)

    # Installed with its dependencies: the venv's TensorFlow and Keras must satisfy Requires-Dist as they are.
    tf_venv.install(str(wheel))
    got = predict_in(tf_venv, package, tf_models["X"], {"clf": kind}, layer=True)
    assert got["imported"] == []
    assert got["models"] == ["clf"]
    assert got["preds"]["clf"] == pytest.approx(tf_models["pred"], abs=1e-5)
    details = got["meta"]["clf"]["details"]
    if kind in ("export", "tfsave"):
        assert got["layers"]["clf"] == pytest.approx(tf_models["pred"], abs=1e-5)
        assert details["tensorflow_version"] == tf_models["tensorflow"]
        assert details["call_endpoint"] == ("serve" if kind == "export" else "serving_default")
        assert got["meta"]["clf"]["frameworks"] == {"tensorflow": tf_models["tensorflow"]}
    else:
        assert details["keras_version"] == tf_models["keras"]
        assert details["input_shapes"] == [[None, 4]]
        assert got["meta"]["clf"]["frameworks"] == {"keras": tf_models["keras"]}


@pytest.mark.slow
@pytest.mark.tensorflow
def test_all_formats_in_one_wheel(tmp_path, build_env, tf_models, tf_venv):
    kinds = {"as_keras": "keras", "as_h5": "h5", "as_export": "export", "as_tfsave": "tfsave"}
    p = tf_project(
        tmp_path,
        "tfmodel-all",
        tf_models,
        kinds,
        extra="[tool.hatch.build.hooks.modelpack.models.as_keras]\ndefault = true\n",
    )
    # The long-form table for as_keras would clash with the short form; rewrite it as one table.
    text = (p.root / "pyproject.toml").read_text().replace('as_keras = "artifacts/model.keras"\n', "")
    text = text.replace("default = true\n", 'path = "artifacts/model.keras"\ndefault = true\n')
    (p.root / "pyproject.toml").write_text(text)
    p.build(build_env)
    wheel = p.wheel()
    assert requires_dist(wheel_metadata(wheel)) == [
        f"keras<{int(tf_models['keras'].split('.')[0]) + 1},>={tf_models['keras']}",
        f"tensorflow>={tf_models['tensorflow']}",
    ]
    tf_venv.install(str(wheel))
    got = predict_in(tf_venv, "tfmodel_all", tf_models["X"], kinds)
    assert got["imported"] == []
    assert sorted(got["models"]) == sorted(kinds)
    for n in kinds:
        assert got["preds"][n] == pytest.approx(tf_models["pred"], abs=1e-5), n
    default = tf_venv.json("import json, tfmodel_all as p; print(json.dumps(p.metadata()['name']))", env=TF_ENV)
    assert default == "as_keras"


@pytest.mark.slow
@pytest.mark.tensorflow
def test_tampered_savedmodel_variables_are_refused_before_tensorflow_reads_them(
    tmp_path, build_env, tf_models, tf_venv
):
    p = tf_project(tmp_path, "tfmodel-tamper", tf_models, {"clf": "export"})
    p.build(build_env)
    tf_venv.install(str(p.wheel()))
    site = tf_venv.site_packages()
    (data,) = (site / "tfmodel_tamper" / "_models" / "clf" / "exported" / "variables").glob("variables.data-*")
    original = data.read_bytes()
    tamper(data, original[:-4] + bytes(b ^ 0xFF for b in original[-4:]))
    got = tf_venv.json(
        """
        import json, sys
        import tensorflow as tf
        import tfmodel_tamper as pkg
        read = []  # TensorFlow is imported while the hash runs (issue 16); it must never be handed the files
        real = tf.saved_model.load
        tf.saved_model.load = lambda *a, **k: read.append(str(a[0])) or real(*a, **k)
        try:
            pkg.load()
            outcome = "loaded"
        except pkg.IntegrityError as exc:
            outcome = "IntegrityError: " + str(exc)
        print(json.dumps({"outcome": outcome, "read": read}))
        """,
        env=TF_ENV,
    )
    assert got["outcome"].startswith("IntegrityError") and "variables.data-" in got["outcome"]
    assert got == {"outcome": got["outcome"], "read": []}
    # uv's cache (hardlinked into other venvs) is untouched: the source artifact still matches.
    assert (tf_models["dir"] / "exported" / "variables" / data.name).read_bytes() == original


@pytest.mark.slow
@pytest.mark.tensorflow
def test_requires_override_for_tensorflow_cpu(tmp_path, build_env, tf_models):
    """`requires` replaces the inferred list, e.g. to depend on tensorflow-cpu on Linux servers."""
    override = f'requires = ["tensorflow-cpu>={tf_models["tensorflow"]}"]\n'
    p = tf_project(
        tmp_path,
        "tfmodel-cpu",
        tf_models,
        {},
        extra=f'[tool.hatch.build.hooks.modelpack.models.clf]\npath = "artifacts/exported"\n{override}',
    )
    import shutil

    shutil.copytree(tf_models["dir"] / "exported", p.root / "artifacts" / "exported")
    p.build(build_env)
    wheel = p.wheel()
    assert requires_dist(wheel_metadata(wheel)) == [f"tensorflow-cpu>={tf_models['tensorflow']}"]
    with zipfile.ZipFile(wheel) as zf:
        entry = json.loads(zf.read("tfmodel_cpu/_modelpack.json"))["models"]["clf"]
    assert entry["frameworks"] == {"tensorflow": tf_models["tensorflow"]}
    assert entry["version_checks"] == []  # nothing asks for the `tensorflow` distribution at load time
