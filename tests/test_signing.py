"""OpenSSF model signing: `modelpack sign`, `signature = "PATH"`, and verification before loading.

Every signature made here is checked with the `model_signing` tool itself, and signatures made by
`model_signing` are checked by hatch-modelpack, so the two agree on the bytes both ways.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _signing_helpers import make_certificates, make_key, sign_package_dir
from conftest import REPO, SCRIPTS, Project, make_pipeline, pyproject, run, save_model, tamper
from test_load_trust import evil_bytes, make_pack

from hatch_modelpack import signatures, signing_keys, signing_statement
from hatch_modelpack.config import load_config
from hatch_modelpack.manifest import MANIFEST_NAME, analyse, build_manifest
from hatch_modelpack.runtime import _modelpack_signature, loader

pytest.importorskip("model_signing")

MODEL_SIGNING = (
    str(SCRIPTS / "model_signing")
    if (SCRIPTS / "model_signing").exists()
    else (shutil.which("model_signing") or "model_signing")
)


def model_signing(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([MODEL_SIGNING, *map(str, args)], check=check, timeout=300)


def modelpack(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(env or os.environ, PYTHONPATH=str(REPO))
    return run([sys.executable, "-m", "hatch_modelpack", *map(str, args)], check=check, env=env)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def rewrite_with_manifest(pkg: Path, name: str, data: bytes) -> Path:
    """What an attacker with write access does: replace the artifact and fix its manifest entry to match."""
    manifest_path = pkg / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["models"][name]
    artifact = pkg / entry["path"]
    tamper(artifact, data)
    (f,) = entry["files"]
    f.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    f.pop("chunks", None)
    tamper(manifest_path, json.dumps(manifest).encode())
    return artifact


# -- fast: the statement, the loader, and model_signing on a package directory -----------------------


def directory_model(tmp_path: Path) -> tuple[dict, Path]:
    root = tmp_path / "project"
    (root / "artifacts" / "vocab" / "sub").mkdir(parents=True)
    (root / "artifacts" / "vocab" / "words.txt").write_text("a\nb\n")
    (root / "artifacts" / "vocab" / "sub" / "extra.bin").write_bytes(os.urandom(5000))
    (root / "artifacts" / "one.bin").write_bytes(os.urandom(3000))
    pack = load_config(
        root,
        {
            "models": {
                "vocab": {"path": "artifacts/vocab", "format": "raw", "default": True},
                "one": {"path": "artifacts/one.bin", "format": "raw"},
            }
        },
        "demo",
    )
    return build_manifest(pack, analyse(pack), distribution="demo", version="1.0"), root


def test_statement_is_what_model_signing_builds(tmp_path):
    """The same statement model_signing hashes and builds for the file and the directory (its key order varies)."""
    from google.protobuf import json_format
    from model_signing import hashing
    from model_signing._signing import signing as ms_signing

    manifest, root = directory_model(tmp_path)
    for name, path in (("vocab", root / "artifacts" / "vocab"), ("one", root / "artifacts" / "one.bin")):
        theirs = json.loads(json_format.MessageToJson(ms_signing.Payload(hashing.Config().hash(path)).statement.pb))
        ours = json.loads(signing_statement.payload_bytes(signing_statement.statement(manifest["models"][name])))
        for doc in (theirs, ours):
            doc["predicate"]["serialization"]["ignore_paths"].sort()
        assert ours == theirs, name
    assert [r["name"] for r in signing_statement.statement(manifest["models"]["vocab"])["predicate"]["resources"]] == [
        "sub/extra.bin",
        "words.txt",
    ]
    assert [r["name"] for r in signing_statement.statement(manifest["models"]["one"])["predicate"]["resources"]] == [
        "."
    ]


def test_model_signing_and_modelpack_accept_each_others_signatures(tmp_path):
    manifest, root = directory_model(tmp_path)
    priv, pub = make_key(tmp_path, curve="P-384")
    leaf, ca = make_certificates(tmp_path, priv)
    key_signer = signing_keys.load_signer(priv)
    cert_signer = signing_keys.load_signer(priv, leaf, [ca])
    for name, path in (("vocab", root / "artifacts" / "vocab"), ("one", root / "artifacts" / "one.bin")):
        entry = manifest["models"][name]
        payload = signing_statement.payload_bytes(signing_statement.statement(entry))
        ours = tmp_path / f"{name}.sig"
        ours.write_bytes(signing_keys.sign_payload(payload, key_signer))
        assert signing_keys.sign_payload(payload, key_signer) == ours.read_bytes()  # deterministic ECDSA
        model_signing("verify", "key", path, "--signature", ours, "--public_key", pub)
        ours_cert = tmp_path / f"{name}-cert.sig"
        ours_cert.write_bytes(signing_keys.sign_payload(payload, cert_signer))
        model_signing("verify", "certificate", path, "--signature", ours_cert, "--certificate_chain", ca)
        theirs = tmp_path / f"{name}-theirs.sig"
        model_signing("sign", "key", path, "--private_key", priv, "--signature", theirs)
        assert signatures.check_signature(theirs.read_bytes(), str(theirs), entry, pub, ()) == {
            "method": "key",
            "key": signing_keys.key_fingerprint(key_signer.private_key.public_key()),
        }
        info = signatures.check_signature(ours_cert.read_bytes(), "x", entry, None, [ca])
        assert info["identity"] == "ci@example.com" and info["subject"] == "CN=model signer"
    # A file signature does not fit the folder, nor the reverse (what NOTES.md warns about).
    bad = model_signing(
        "verify",
        "key",
        root / "artifacts" / "vocab",
        "--signature",
        tmp_path / "one.sig",
        "--public_key",
        pub,
        check=False,
    )
    assert bad.returncode != 0
    stmt, _ = signatures.read_bundle((tmp_path / "one.sig").read_bytes(), "one.sig")
    assert "does not cover sub/extra.bin, words.txt" in signatures.coverage_problem(stmt, manifest["models"]["vocab"])


def test_signed_load_verifies_then_remembers(tmp_path, monkeypatch):
    pack, model, X = make_pack(tmp_path)
    priv, pub = make_key(tmp_path)
    sign_package_dir(pack.directory, priv)
    pack._manifest = None
    calls = []
    real = _modelpack_signature._check_signature
    monkeypatch.setattr(_modelpack_signature, "_check_signature", lambda *a: calls.append(a) or real(*a))
    trust = loader._trust(pub, None)
    assert (pack.load(None, None, {}, trust).predict(X) == model.predict(X)).all()
    pack.load(None, None, {}, trust)
    assert len(calls) == 1  # remembered, like a verified hash
    pack.verify(None, force=True, trust=trust)
    assert len(calls) == 2  # verify() always checks again
    meta = pack.entry(None)["signature"]
    assert meta["method"] == "key" and meta["key"] == hashlib.sha256(pub.read_bytes()).hexdigest()


def test_rewritten_artifact_and_manifest_entry_is_refused_unpickled_never(tmp_path):
    pack, _, _ = make_pack(tmp_path)
    priv, pub = make_key(tmp_path)
    sign_package_dir(pack.directory, priv)
    marker = tmp_path / "payload-ran"
    artifact = rewrite_with_manifest(pack.directory, "churn", evil_bytes(marker))
    pack._manifest = None
    pack.verify(None)  # the hash check alone passes: the manifest was rewritten too
    with pytest.raises(loader.IntegrityError) as err:
        pack.load(None, None, {}, loader._trust(pub, None))
    assert not marker.exists()
    msg = str(err.value)
    assert "churn.sig" in msg and "does not cover the model's files" in msg and "first difference: churn.joblib" in msg
    assert "nothing was loaded" in msg
    with open(artifact, "rb") as f:  # control: the replacement is a live payload
        __import__("pickle").load(f)
    assert marker.exists()


def test_each_bad_signature_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    pack, _, _ = make_pack(tmp_path / "a")
    other, _, _ = make_pack(tmp_path / "b")
    priv, pub = make_key(tmp_path)
    _, stranger = make_key(tmp_path, "stranger")
    sig = pack.directory / "_models" / "churn.sig"
    good = None

    def refused(trust: tuple, *needles: str) -> None:
        pack._manifest = None
        pack._signed.clear()
        with pytest.raises(loader.IntegrityError) as err:
            pack.load(None, None, {}, trust)
        assert all(n in str(err.value) for n in needles), str(err.value)
        assert "Traceback" not in str(err.value) and str(sig) in str(err.value)

    # No signature at all, with MODELPACK_PUBLIC_KEY set: every load() requires one.
    monkeypatch.setenv(loader.PUBLIC_KEY_ENV, str(pub))
    refused(loader._trust(None, None), "carries no signature", str(pub), "modelpack sign")
    with pytest.raises(loader.IntegrityError):
        pack.verify(None, trust=loader._trust(None, None))
    monkeypatch.delenv(loader.PUBLIC_KEY_ENV)
    sign_package_dir(pack.directory, priv)
    good = sig.read_bytes()
    # The wrong key.
    refused(loader._trust(stranger, None), "signed by another key", str(stranger))
    # The signature of another model (same name, other bytes).
    rewrite_with_manifest(other.directory, "churn", b"another model's bytes")
    sign_package_dir(other.directory, priv)
    shutil.copy(other.directory / "_models" / "churn.sig", sig)
    refused(loader._trust(pub, None), "does not cover the model's files")
    # A truncated bundle.
    sig.write_bytes(good[: len(good) // 2])
    refused(loader._trust(pub, None), "damaged or not a model_signing bundle")
    # A statement edited after signing (the envelope's signature no longer matches).
    bundle = json.loads(good)
    stmt = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    stmt["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    sig.write_text(json.dumps(bundle))
    refused(loader._trust(pub, None), "does not verify with", str(pub))
    sig.write_bytes(good)
    pack._signed.clear()
    pack.load(None, None, {}, loader._trust(pub, None))


def test_certificate_chain_in_the_loader(tmp_path):
    pack, _, _ = make_pack(tmp_path)
    priv, _ = make_key(tmp_path)
    leaf, ca = make_certificates(tmp_path, priv)
    sign_package_dir(pack.directory, priv, leaf, (ca,))
    pack._manifest = None
    pack.load(None, None, {}, loader._trust(None, [ca]))
    assert pack.entry(None)["signature"]["identity"] == "ci@example.com"
    (tmp_path / "other").mkdir()
    _, other_ca = make_certificates(tmp_path / "other", priv)
    pack._signed.clear()
    with pytest.raises(loader.IntegrityError, match="does not verify with the chain"):
        pack.load(None, None, {}, loader._trust(None, [other_ca]))


# -- slow: real wheels, real installers, the model_signing CLI on the installed package --------------


VOCAB = '[tool.hatch.build.hooks.modelpack.models.vocab]\npath = "artifacts/vocab"\nformat = "raw"\n'


def make_project(
    root: Path, extra: str = "", churn: str = 'path = "artifacts/churn.joblib"\ndefault = true\n'
) -> Project:
    root.mkdir(parents=True)
    p = Project(root, "churn-model")
    p.write(
        "pyproject.toml",
        pyproject(models="", extra=f"[tool.hatch.build.hooks.modelpack.models.churn]\n{churn}\n{VOCAB}{extra}"),
    )
    p.write("README.md", "# churn-model\n")
    model, _ = make_pipeline(seed=3)
    save_model(model, root / "artifacts" / "churn.joblib")
    (root / "artifacts" / "vocab" / "sub").mkdir(parents=True)
    (root / "artifacts" / "vocab" / "words.txt").write_text("a\nb\n")
    (root / "artifacts" / "vocab" / "sub" / "ids.bin").write_bytes(bytes(range(256)) * 40)
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory, build_env) -> dict[str, Path]:
    """An unsigned wheel of two models (a joblib file, a raw directory) and a key pair."""
    tmp = tmp_path_factory.mktemp("signing")
    p = make_project(tmp / "churn-model")
    p.build(build_env, "--wheel")
    priv, pub = make_key(tmp)
    return {"wheel": p.wheel(), "priv": priv, "pub": pub, "tmp": tmp}


@pytest.mark.slow
def test_sign_wheel_is_reproducible_valid_and_verifies(built, venv):
    tmp, unsigned = built["tmp"], built["wheel"]
    a, b = tmp / "a" / unsigned.name, tmp / "b" / unsigned.name
    for out in (a, b):
        out.parent.mkdir()
        modelpack("sign", unsigned, "--private-key", built["priv"], "--output", out)
    assert a.read_bytes() == b.read_bytes()  # same wheel, same key: same bytes
    with zipfile.ZipFile(a) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert {"churn_model/_models/churn.sig", "churn_model/_models/vocab.sig"} <= set(names)
        record = zf.read(next(n for n in names if n.endswith("RECORD"))).decode()
        for n in ("churn_model/_models/churn.sig", "churn_model/_modelpack.json"):
            digest = base64.urlsafe_b64encode(hashlib.sha256(zf.read(n)).digest()).decode().rstrip("=")
            assert f"{n},sha256={digest},{len(zf.read(n))}" in record
        with zipfile.ZipFile(unsigned) as old:  # artifacts copied byte for byte, times kept
            for info in old.infolist():
                if not info.filename.endswith(("RECORD", MANIFEST_NAME)):
                    assert zf.getinfo(info.filename).date_time == info.date_time
                    assert zf.read(info.filename) == old.read(info.filename)
    tools = venv(seed_pip=True)
    tools.install("check-wheel-contents")
    run([str(tools.path / "bin" / "check-wheel-contents"), str(a)])
    fp = hashlib.sha256(built["pub"].read_bytes()).hexdigest()
    text = modelpack("inspect", a).stdout
    assert f"key sha256:{fp[:16]}" in text
    diff = modelpack("diff", unsigned, a).stdout
    assert "models.churn.signature" in diff and "unsigned" in diff and f"key sha256:{fp[:16]}" in diff
    ok = json.loads(modelpack("verify", "--json", a, "--public-key", built["pub"]).stdout)
    assert ok["ok"] and sorted(r["model"] for r in ok["files"] if r["file"].endswith(".sig")) == ["churn", "vocab"]
    # An unsigned wheel, a wrong key: exit 1 naming the signature file and the reason.
    err = one_line_error(modelpack("verify", unsigned, "--public-key", built["pub"], check=False))
    assert "_models/churn.sig: unsigned" in err
    _, stranger = make_key(tmp, "stranger")
    err = one_line_error(modelpack("verify", a, "--public-key", stranger, check=False))
    assert "churn_model/_models/churn.sig: invalid: was signed by another key" in err
    # Certificate mode, offline.
    leaf, ca = make_certificates(tmp, built["priv"])
    c = tmp / "c" / unsigned.name
    c.parent.mkdir()
    modelpack(
        "sign",
        unsigned,
        "--private-key",
        built["priv"],
        "--signing-certificate",
        leaf,
        "--certificate-chain",
        ca,
        "-o",
        c,
    )
    assert "certificate ci@example.com" in modelpack("inspect", c).stdout
    modelpack("verify", c, "--certificate-chain", ca)


@pytest.mark.slow
def test_signed_wheel_installs_and_is_verified_before_loading(built, venv, wheelhouse):
    tmp = built["tmp"]
    signed = tmp / "installed" / built["wheel"].name
    signed.parent.mkdir()
    modelpack("sign", built["wheel"], "--private-key", built["priv"], "-o", signed)
    pub = built["pub"]
    by_pip = venv(seed_pip=True)
    by_pip.pip("install", "--no-deps", "--no-index", str(signed))
    by_installer = venv()
    by_installer.install("installer")
    run([str(by_installer.python), "-m", "installer", "--validate-record", "all", str(signed)])
    env = venv()
    env.install(str(signed), "cryptography", str(next(wheelhouse.glob("hatch_modelpack-*.whl"))))
    for e in (by_pip, by_installer, env):
        paths = e.json("import json, churn_model as m; print(json.dumps([str(m.path('churn')), str(m.path('vocab'))]))")
        for path, name in zip(paths, ("churn", "vocab"), strict=True):
            sig = Path(path).parent.parent / f"{name}.sig"
            model_signing("verify", "key", path, "--signature", sig, "--public_key", pub)
    out = env.json(f"""
        import json, os, churn_model as m
        m.verify(public_key={str(pub)!r})
        model = m.load(public_key={str(pub)!r})
        os.environ["MODELPACK_PUBLIC_KEY"] = {str(pub)!r}
        m.load("vocab")
        print(json.dumps([type(model).__name__, m.metadata()["signature"], m.metadata("vocab")["signature"]["path"]]))
    """)
    assert (
        out[0] == "Pipeline"
        and out[1]["key"] == hashlib.sha256(pub.read_bytes()).hexdigest()
        and out[2] == "_models/vocab.sig"
    )
    mp = [str(env.path / "bin" / "modelpack")]
    run([*mp, "verify", "churn-model", "--public-key", str(pub)])
    # An attacker rewrites the artifact and its manifest entry: the hash check passes, the signature does not.
    pkg = env.site_packages() / "churn_model"
    marker = tmp / "payload-ran"
    rewrite_with_manifest(pkg, "churn", evil_bytes(marker))
    env.py("import churn_model as m; m.verify()")  # hash check alone: passes
    proc = env.py(f"import churn_model as m; m.load(public_key={str(pub)!r})", check=False)
    assert (
        proc.returncode != 0 and "IntegrityError" in proc.stderr and "does not cover the model's files" in proc.stderr
    )
    proc = env.py("import churn_model as m; m.load()", check=False, env=dict(os.environ, MODELPACK_PUBLIC_KEY=str(pub)))
    assert proc.returncode != 0 and "IntegrityError" in proc.stderr
    assert not marker.exists()
    err = one_line_error(run([*mp, "verify", "churn-model", "--public-key", str(pub)], check=False))
    assert "verify failed" in err
    doc = json.loads(run([*mp, "verify", "--json", "churn-model", "--public-key", str(pub)], check=False).stdout)
    bad = {r["file"]: r for r in doc["files"] if r["status"] != "ok"}
    assert bad[str(pkg / "_models" / "churn.sig")]["status"] == "invalid"
    # The signature removed, with MODELPACK_PUBLIC_KEY set: refused.
    (pkg / "_models" / "vocab.sig").unlink()
    proc = env.py(
        "import churn_model as m; m.load('vocab')", check=False, env=dict(os.environ, MODELPACK_PUBLIC_KEY=str(pub))
    )
    assert "carries no signature" in proc.stderr


@pytest.mark.slow
def test_signature_path_ships_a_model_signing_signature(tmp_path, build_env, venv):
    root = tmp_path / "churn-model"
    p = make_project(
        root, churn='path = "artifacts/churn.joblib"\ndefault = true\nsignature = "signatures/churn.sig"\n'
    )
    priv, pub = make_key(tmp_path)
    (root / "signatures").mkdir()
    model_signing(
        "sign",
        "key",
        root / "artifacts" / "churn.joblib",
        "--private_key",
        priv,
        "--signature",
        root / "signatures" / "churn.sig",
    )
    p.build(build_env)  # sdist, then the wheel from it: the signature travels in the sdist
    wheel = p.wheel()
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("churn_model/_models/churn.sig") == (root / "signatures" / "churn.sig").read_bytes()
        assert "churn_model/_models/vocab.sig" not in zf.namelist()
    modelpack("verify", wheel, "--public-key", pub, check=False)  # vocab is unsigned
    doc = json.loads(modelpack("verify", "--json", wheel, "--public-key", pub, check=False).stdout)
    assert {r["model"]: r["status"] for r in doc["files"] if r["file"].endswith(".sig")} == {
        "churn": "ok",
        "vocab": "unsigned",
    }
    env = venv()
    env.install("--no-deps", str(wheel))
    env.install("cryptography")
    path = Path(env.py("import churn_model as m; print(m.path('churn'))").stdout.strip())
    model_signing("verify", "key", path, "--signature", path.parent.parent / "churn.sig", "--public_key", pub)
    env.py(f"import churn_model as m; m.verify('churn', public_key={str(pub)!r})")
    # A signature of something else (the directory model) fails the build, with one paragraph and no wheel.
    model_signing(
        "sign",
        "key",
        root / "artifacts" / "vocab",
        "--private_key",
        priv,
        "--signature",
        root / "signatures" / "churn.sig",
    )
    shutil.rmtree(root / "dist")
    proc = p.build(build_env, "--wheel", check=False)
    assert proc.returncode != 0 and not list((root / "dist").glob("*.whl"))
    msg = proc.stdout + proc.stderr
    assert "signatures/churn.sig: the signature named by `models.churn.signature`" in msg
    assert (
        "does not cover churn.joblib; covers sub/ids.bin, words.txt, which the model does not have" in msg
        and "model_signing sign key artifacts/churn.joblib" in msg
    )


def test_missing_cryptography_says_what_to_install(tmp_path, monkeypatch):
    pack, _, _ = make_pack(tmp_path)
    priv, pub = make_key(tmp_path)
    sign_package_dir(pack.directory, priv)
    pack._manifest = None
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)  # as if not installed
    with pytest.raises(loader.ModelpackLoadError, match=r"needs model-signing .*pip install model-signing pyopenssl"):
        pack.load(None, None, {}, loader._trust(pub, None))
