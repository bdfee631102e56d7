"""Reading and verifying model_signing signatures: what a bundle claims, and whether it covers the model.

Three callers, one check: the build checks a shipped ``signature = "PATH"`` (:func:`ship_signatures`),
``modelpack verify --public-key`` checks an installed package or a wheel (:func:`signature_results`),
and both compare the statement with the manifest entry (:func:`coverage_problem`). This module reads
model_signing's own signatures as well as ours.

Standard library at import time (``cryptography`` and ``model_signing`` only inside the checks that
need them): ``modelpack --python`` imports it from this package's directory inside another
environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from hatch_modelpack.signing_keys import certificate_info, crypto, key_fingerprint
from hatch_modelpack.signing_statement import (
    BUNDLE_MEDIA_TYPE,
    DATA_DIR,
    INSTALL_HINT,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    SigningError,
    pae,
    resources,
)

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
    hashes, serialization, ec = crypto()
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
