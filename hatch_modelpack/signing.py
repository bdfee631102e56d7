"""OpenSSF model signing (model-signing v1.0 format) for model packages, from the manifest's digests.

A signature is a Sigstore bundle (v0.3 JSON) holding a DSSE envelope whose payload is an in-toto
statement: one subject (the model's name and a sha256 over all resource digests) and a predicate
listing every file of the model with its sha256, serialised by file ("files", sha256: model_signing's
default). Those per-file digests are exactly the sha256 values the manifest already holds, so signing
reads no artifact byte: signing a 5 GB model costs the same as a 5 KB one.

The statement covers what model_signing hashes for ``path(name)`` of the installed package: for a
file model the file itself (one resource named "."), for a directory model the directory (resources
named relative to it). The signature sits beside that path, at ``<package>/_models/<name>.sig``, so it
is never inside what it signs.

The bytes are what model_signing writes, in a fixed key order (model_signing's own order varies per
process: protobuf Struct and a frozenset), and ECDSA is deterministic (RFC 6979), so signing the same
wheel with the same key gives the same wheel. ``model_signing verify`` accepts them, and this module
reads model_signing's signatures (``signature = "PATH"`` in a model's table).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hatch_modelpack import zipstream
from hatch_modelpack.errors import ModelpackError

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: What model_signing ignores by default inside a model directory (and records in the statement).
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
MANIFEST_NAME = "_modelpack.json"
DATA_DIR = "_models"
INSTALL_HINT = "pip install 'hatch-modelpack[sign]' (model-signing and pyopenssl)"


class SigningError(ModelpackError):
    """A signature cannot be made, read, or does not cover the model."""


# -- the statement ---------------------------------------------------------------------------------


def signature_arcname(package: str, name: str) -> str:
    return f"{package}/{DATA_DIR}/{name}.sig"


def resources(entry: dict[str, Any]) -> dict[str, str]:
    """model_signing's resource name -> sha256 for one manifest entry, as it would hash ``path(name)``.

    Manifest paths are relative to the artifact's parent (``churn.joblib``, ``embedder/variables/x``);
    model_signing names a lone file "." and a directory's files relative to the directory.
    """
    base = PurePosixPath(entry["path"]).name
    out: dict[str, str] = {}
    for f in entry["files"]:
        rel = str(f["path"])
        if rel == base and entry.get("kind") != "directory":
            out["."] = str(f["sha256"])
        elif rel.startswith(base + "/"):
            out[rel[len(base) + 1 :]] = str(f["sha256"])
        else:  # pragma: no cover - the build never writes such a manifest
            raise SigningError(f"manifest entry of model {entry['name']!r}: file {rel!r} is not inside {base!r}")
    return out


def statement(entry: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement model_signing builds for this model, computed from the manifest alone."""
    items = sorted(resources(entry).items())
    if entry.get("kind") == "directory":
        clash = [n for n, _ in items if n.split("/", 1)[0] in GIT_PATHS]
        if clash:
            raise SigningError(
                f"model {entry['name']!r}: {clash[0]} is a file model_signing leaves out of every signature by default "
                "(git metadata), so a signature over it would not verify; remove it from the artifact directory and rebuild"
            )
    root = hashlib.sha256(b"".join(bytes.fromhex(d) for _, d in items)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": PurePosixPath(entry["path"]).name, "digest": {"sha256": root}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": list(GIT_PATHS),
            },
            "resources": [{"name": n, "algorithm": "sha256", "digest": d} for n, d in items],
        },
    }


def payload_bytes(stmt: dict[str, Any]) -> bytes:
    """The statement as model_signing serialises it (protobuf's MessageToJson: indent 2, UTF-8)."""
    return json.dumps(stmt, indent=2, ensure_ascii=False).encode("utf-8")


def pae(payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature is computed over."""
    return b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)


# -- keys and certificates (cryptography: what model-signing brings) ---------------------------------


@dataclass(frozen=True)
class Signer:
    private_key: Any
    certificates: tuple[Any, ...] = ()  # the signing certificate first, then the chain

    def describe(self) -> dict[str, Any]:
        """What the manifest records about who signed (display only: trust comes from the verifier's key)."""
        if self.certificates:
            return certificate_info(self.certificates[0])
        return {"method": "key", "key": key_fingerprint(self.private_key.public_key())}


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise SigningError(f"signing needs the `cryptography` package: {INSTALL_HINT}") from None
    return hashes, serialization, ec


def key_fingerprint(public_key: Any) -> str:
    """sha256 of the PEM public key: the `hint` model_signing puts into key-mode bundles."""
    _, serialization, _ = _crypto()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def certificate_info(cert: Any) -> dict[str, Any]:
    from cryptography import x509

    emails: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        emails += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        emails += [str(v) for v in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    _, serialization, _ = _crypto()
    return {
        "method": "certificate",
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "identity": emails[0] if emails else cert.subject.rfc4514_string(),
        "certificate_sha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    }


def load_signer(
    private_key: Path, signing_certificate: Path | None = None, chain: Sequence[Path] = (), password: str | None = None
) -> Signer:
    """An EC P-256/P-384/P-521 key (and certificate mode's certificates), as model_signing accepts them."""
    _, serialization, ec = _crypto()
    try:
        key = serialization.load_pem_private_key(
            Path(private_key).read_bytes(), password.encode() if password else None
        )
    except OSError as exc:
        raise SigningError(
            f"{private_key}: cannot be read ({exc.strerror}); pass --private-key the PEM file of the signing key"
        ) from None
    except (ValueError, TypeError) as exc:
        raise SigningError(
            f"{private_key}: is not a PEM private key this tool can use ({exc}); pass an EC key in PEM form"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise SigningError(
            f"{private_key}: model signing takes an elliptic-curve key on P-256, P-384 or P-521 "
            "(openssl ecparam -name prime256v1 -genkey -noout -out key.pem)"
        )
    if signing_certificate is None:
        if chain:
            raise SigningError("--certificate-chain needs --signing-certificate (the certificate of --private-key)")
        return Signer(key)
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificate(Path(signing_certificate).read_bytes())
        others = x509.load_pem_x509_certificates(b"".join(Path(p).read_bytes() for p in chain)) if chain else []
    except OSError as exc:
        raise SigningError(f"{exc.filename}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise SigningError(f"a certificate file is not PEM ({exc}); pass PEM certificates") from None
    if leaf.public_key() != key.public_key():
        raise SigningError(f"{signing_certificate}: is not the certificate of {private_key} (their public keys differ)")
    return Signer(key, (leaf, *others))


def sign_payload(payload: bytes, signer: Signer) -> bytes:
    """The Sigstore bundle (JSON bytes) model_signing writes for a key or certificate signature."""
    hashes, serialization, ec = _crypto()
    key = signer.private_key
    algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
    try:
        sig = key.sign(pae(payload), ec.ECDSA(algorithm, deterministic_signing=True))
    except Exception:  # an OpenSSL without RFC 6979: still valid, only not reproducible
        sig = key.sign(pae(payload), ec.ECDSA(algorithm))
    material: dict[str, Any]
    if signer.certificates:
        ders = [c.public_bytes(serialization.Encoding.DER) for c in signer.certificates]
        material = {
            "x509CertificateChain": {"certificates": [{"rawBytes": base64.b64encode(d).decode()} for d in ders]}
        }
    else:
        material = {"publicKey": {"hint": key_fingerprint(key.public_key())}}
    material["tlogEntries"] = []
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode("utf-8")


# -- reading a signature (no key needed: what it claims, checked against the manifest) -------------


def read_bundle(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statement, signer description) of a bundle; SigningError when it is not a model_signing v1.0 one."""
    try:
        bundle = json.loads(data)
        envelope = bundle["dsseEnvelope"]
        if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE or envelope.get("payloadType") != PAYLOAD_TYPE:
            raise ValueError(f"media type {bundle.get('mediaType')!r}, payload type {envelope.get('payloadType')!r}")
        stmt = json.loads(base64.b64decode(envelope["payload"], validate=True))
        if not envelope.get("signatures"):
            raise ValueError("no signature in the envelope")
        material = bundle["verificationMaterial"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SigningError(
            f"{where}: is not a model_signing signature (a Sigstore bundle with an in-toto statement): {exc}"
        ) from None
    if not isinstance(stmt, dict) or stmt.get("predicateType") != PREDICATE_TYPE:
        got = stmt.get("predicateType") if isinstance(stmt, dict) else None
        raise SigningError(
            f"{where}: has predicate type {got!r}, not {PREDICATE_TYPE!r}; sign the model again with model-signing 1.x"
        )
    signer: dict[str, Any]
    if "x509CertificateChain" in material:
        der = base64.b64decode(material["x509CertificateChain"]["certificates"][0]["rawBytes"])
        try:
            from cryptography import x509

            signer = certificate_info(x509.load_der_x509_certificate(der))
        except ImportError:
            signer = {"method": "certificate", "certificate_sha256": hashlib.sha256(der).hexdigest()}
    elif "publicKey" in material:
        signer = {"method": "key", "key": (material["publicKey"] or {}).get("hint") or ""}
    else:
        signer = {"method": "sigstore"}
    return stmt, signer


def coverage_problem(stmt: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """Why a statement does not cover exactly this model's files with the manifest's digests, or None."""
    predicate = stmt.get("predicate") or {}
    ser = predicate.get("serialization") or {}
    if ser.get("method") != "files" or ser.get("hash_type") != "sha256":
        return (
            f"it was made with serialization {ser.get('method')!r}/{ser.get('hash_type')!r}; hatch-modelpack checks "
            "per-file sha256 signatures (model_signing's default: sign without --use-shards or another hash)"
        )
    signed: dict[str, str] = {}
    root_hash = hashlib.sha256()
    for r in predicate.get("resources") or []:
        if r.get("algorithm") != "sha256":
            return f"resource {r.get('name')!r} has algorithm {r.get('algorithm')!r}, not sha256"
        try:
            root_hash.update(bytes.fromhex(str(r.get("digest"))))
        except ValueError:
            return f"resource {r.get('name')!r} has a digest that is not hexadecimal"
        signed[str(r.get("name"))] = str(r.get("digest"))
    root = root_hash.hexdigest()
    subjects = stmt.get("subject") or [{}]
    if len(subjects) != 1 or (subjects[0].get("digest") or {}).get("sha256") != root:
        return "its subject digest does not match its resources (the statement is inconsistent)"
    want = resources(entry)
    missing = sorted(set(want) - set(signed))
    extra = sorted(set(signed) - set(want))
    changed = sorted(n for n in set(want) & set(signed) if want[n] != signed[n])
    if missing or extra or changed:
        base = PurePosixPath(entry["path"]).name
        first = changed[0] if changed else ""
        missing, changed = ([base if n == "." else n for n in names] for names in (missing, changed))
        extra = ["a lone file (it is the signature of a file)" if n == "." else n for n in extra]
        parts = []
        if missing:
            parts.append(f"does not cover {', '.join(missing)}")
        if extra:
            parts.append(f"covers {', '.join(extra)}, which the model does not have")
        if changed:
            parts.append(
                f"has other sha256 digests for {', '.join(changed)} (signed {signed[first][:12]}, artifact {want[first][:12]})"
            )
        kind = "file" if entry.get("kind") != "directory" else "directory"
        return (
            "it "
            + "; ".join(parts)
            + f" (it must be a signature of the model's {kind} itself, as `model_signing sign` makes it for {PurePosixPath(entry['path']).name})"
        )
    return None


# -- signing a wheel ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    model: str
    arcname: str
    signer: dict[str, Any]


def sign_wheel(wheel: Path, signer: Signer, output: Path | None = None) -> list[Signed]:
    """Add ``<package>/_models/<name>.sig`` for every model and record the signer in the manifest.

    Reads no artifact: the statement comes from the manifest, whose digests are first checked against
    the wheel's RECORD (a manifest that disagrees with the wheel is not signed). Every other entry is
    copied byte for byte; timestamps and attributes follow the manifest entry's (hatchling's fixed
    ones), so the result is reproducible.
    """
    from hatch_modelpack import wheel_writer as ww
    from hatch_modelpack.manifest import dumps

    wheel = Path(wheel)
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SigningError(f"{wheel}: cannot be opened as a wheel ({exc})") from None
    with zf:
        infos = zf.infolist()
        manifests = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/" + MANIFEST_NAME)]
        records = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/RECORD")]
        if len(manifests) != 1 or len(records) != 1:
            raise SigningError(
                f"{wheel}: is not a model package built by hatch-modelpack (no single <package>/{MANIFEST_NAME} and RECORD)"
            )
        minfo, rinfo = manifests[0], records[0]
        package = minfo.filename.split("/")[0]
        dist_info = rinfo.filename.split("/")[0]
        manifest = json.loads(zf.read(minfo))
        rows = list(csv.reader(io.StringIO(zf.read(rinfo).decode("utf-8"))))
    if manifest.get("editable_root"):
        raise SigningError(f"{wheel}: is an editable wheel; sign the wheel `python -m build` makes")
    record = {r[0]: r[1] for r in rows if len(r) >= 2}
    sigs: dict[str, bytes] = {}
    done: list[Signed] = []
    for name, entry in manifest["models"].items():
        parent = PurePosixPath(package) / PurePosixPath(entry["path"]).parent
        for f in entry["files"]:
            arc = str(parent / f["path"])
            want = "sha256=" + base64.urlsafe_b64encode(bytes.fromhex(f["sha256"])).decode().rstrip("=")
            if record.get(arc) != want:
                raise SigningError(
                    f"{wheel}: {arc} is listed in RECORD as {record.get(arc)!r}, but the model manifest says sha256 "
                    f"{f['sha256']}; the wheel was altered after it was built. Rebuild it, then sign."
                )
        arcname = signature_arcname(package, name)
        sigs[arcname] = sign_payload(payload_bytes(statement(entry)), signer)
        entry["signature"] = {"path": f"{DATA_DIR}/{name}.sig", **signer.describe()}
        done.append(Signed(name, arcname, entry["signature"]))
    manifest_bytes = dumps(manifest).encode("utf-8")

    out_path = Path(output) if output else wheel
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as raw, open(wheel, "rb") as src:
            out = zipstream.ZipOut(raw)
            for info in infos:
                if info is rinfo or info.filename in sigs:
                    continue
                if info is minfo:
                    _write_new(out, info, minfo.filename, manifest_bytes)
                    for arcname, data in sigs.items():
                        _write_new(out, info, arcname, data)
                else:
                    zipstream.copy_entry(src, info, out)
            new_rows = []
            for r in rows:
                if not r or r[0] in sigs or r[0] == rinfo.filename:
                    continue
                if r[0] == minfo.filename:
                    new_rows.append([r[0], _record_hash(manifest_bytes), str(len(manifest_bytes))])
                    new_rows += [[a, _record_hash(d), str(len(d))] for a, d in sigs.items()]
                else:
                    new_rows.append(r)
            ww._write_record(out, rinfo, new_rows, dist_info, [])
            out.close()
        os.chmod(tmp, stat.S_IMODE(os.stat(wheel).st_mode))  # mkstemp's 0600 is not the wheel's mode
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return done


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def _write_new(out: Any, like: zipfile.ZipInfo, arcname: str, data: bytes) -> None:
    """A deflated entry with ``like``'s time and attributes (level 6, by the wheel writer's deflate backend)."""
    from hatch_modelpack import wheel_writer as ww

    payload = ww._deflate_block(data, None, True, ww.DEFLATE_LEVEL)
    e = zipstream.entry_like(
        like,
        name=arcname.encode("utf-8"),
        flags=0,
        method=zipfile.ZIP_DEFLATED,
        crc=zlib.crc32(data),
        compressed_size=len(payload),
        size=len(data),
    )
    out.begin(e)
    out.fh.write(payload)
    out.finish(e)


# -- verifying (CLI side: the same check the generated loader makes) ---------------------------------


def check_signature(
    data: bytes, where: str, entry: dict[str, Any], public_key: Path | None, chain: Sequence[Path]
) -> dict[str, Any]:
    """Verify a bundle with a trusted key or chain and that it covers exactly the manifest entry.

    Returns the signer description; raises SigningError naming the reason. The files' own bytes are
    hashed against the manifest separately (the caller), so signature + manifest + bytes all agree.
    """
    stmt, signer = read_bundle(data, where)
    if public_key is not None:
        _verify_key(data, where, public_key)
    else:
        _verify_chain(data, where, chain)
    problem = coverage_problem(stmt, entry)
    if problem:
        raise SigningError(f"{where}: the signature verifies, but {problem}")
    return signer


def _verify_key(data: bytes, where: str, public_key: Path) -> None:
    hashes, serialization, ec = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        key = serialization.load_pem_public_key(Path(public_key).read_bytes())
    except OSError as exc:
        raise SigningError(f"{public_key}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise SigningError(f"{public_key}: is not a PEM public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningError(f"{public_key}: is not an elliptic-curve public key")
    bundle = json.loads(data)
    hint = ((bundle["verificationMaterial"].get("publicKey") or {}).get("hint")) or ""
    mine = key_fingerprint(key)
    if hint and hint != mine:
        raise SigningError(
            f"{where}: was signed by another key (fingerprint {hint[:16]}...), not by {public_key} ({mine[:16]}...)"
        )
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
    try:
        key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae(payload), ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError):
        raise SigningError(
            f"{where}: the signature does not verify with {public_key} (wrong key, or the signature was altered)"
        ) from None


def _verify_chain(data: bytes, where: str, chain: Sequence[Path]) -> None:
    try:
        from model_signing._signing import sign_certificate, sign_sigstore_pb
    except ImportError:
        raise SigningError(f"verifying a certificate signature needs model-signing: {INSTALL_HINT}") from None
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "model.sig"
        p.write_bytes(data)
        try:
            sign_certificate.Verifier([Path(c) for c in chain]).verify(sign_sigstore_pb.Signature.read(p))
        except Exception as exc:
            raise SigningError(
                f"{where}: the certificate signature does not verify with {', '.join(map(str, chain))}: {exc}"
            ) from None


# -- the CLI's side (cli.py stays a thin shell) -------------------------------------------------------


def signature_results(src: Any, public_key: str | None, chain: Sequence[str]) -> list[dict[str, Any]]:
    """One verify row per model of a wheel or installed package (``cli.Source``): ok, unsigned or invalid."""
    rows = []
    for name, entry in src.manifest["models"].items():
        rel = (entry.get("signature") or {}).get("path") or f"{DATA_DIR}/{name}.sig"
        if hasattr(src, "zf"):
            member = str(src.package_dir / rel)
            where = f"{src.label}!{member}"
            try:
                data: bytes | None = src.zf.read(member)
            except KeyError:
                data = None
        else:
            path = (src.base() if entry.get("signature") else src.manifest_path.parent) / rel
            where = str(path)
            try:
                data = path.read_bytes()
            except OSError:
                data = None
        row: dict[str, Any] = {"model": name, "file": where}
        if data is None:
            row.update(
                status="unsigned",
                detail=f"model {name!r} carries no signature; sign the wheel with `modelpack sign WHEEL --private-key KEY.pem`",
            )
        else:
            try:
                signer = check_signature(
                    data, where, entry, Path(public_key) if public_key else None, [Path(c) for c in chain]
                )
                row.update(status="ok", detail="", signer=signer)
            except SigningError as exc:
                row.update(status="invalid", detail=str(exc).replace(f"{where}: ", "", 1))
        rows.append(row)
    return rows


def ship_signatures(pack: Any, manifest: dict[str, Any], *, editable: bool) -> dict[str, str]:
    """Check each ``signature = "PATH"`` against its model's manifest entry and record it.

    Returns the force-include mapping (source -> archive path) for a wheel. A signature that does not
    cover exactly the model's files and digests fails the build: shipping it would make every service
    that requires signatures refuse the model at load time instead.
    """
    mapping: dict[str, str] = {}
    for m in pack.models:
        if m.signature is None:
            continue
        entry = manifest["models"][m.name]
        key = f"`models.{m.name}.signature` in [{pack.table}]"
        fix = (
            f"Sign the artifact itself again and point {key} at the result, e.g. "
            f"`model_signing sign key {m.path} --private_key KEY.pem --signature {m.signature.relative_to(os.path.realpath(pack.root)).as_posix()}`."
        )
        try:
            stmt, signer = read_bundle(m.signature.read_bytes(), str(m.signature))
        except OSError as exc:
            raise SigningError(f"{m.signature}: {key} cannot be read ({exc.strerror}). {fix}") from None
        except SigningError as exc:
            raise SigningError(f"{exc} ({key}). {fix}") from None
        problem = coverage_problem(stmt, entry)
        if problem:
            raise SigningError(
                f"{m.signature}: the signature named by {key} does not match the artifact {m.path}: {problem}. {fix}"
            )
        if editable:
            rel = m.signature.relative_to(os.path.realpath(pack.root)).as_posix()
        else:
            rel = f"{DATA_DIR}/{m.name}.sig"
            mapping[str(m.signature)] = signature_arcname(pack.package, m.name)
        entry["signature"] = {"path": rel, **signer}
    return mapping
