"""OpenSSF model signatures: a model's signature must verify with the trusted key and cover its files.

Part of the loader that ships in every model package beside ``_modelpack.py``: standard library
only, Python 3.8 syntax. cryptography (or model_signing, for certificates) is imported only when a
caller gives a key or a chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ._modelpack_errors import IntegrityError, ModelpackLoadError
from ._modelpack_integrity import _fingerprint

#: A PEM public key: when set, every load() and verify() requires a valid signature by that key.
PUBLIC_KEY_ENV = "MODELPACK_PUBLIC_KEY"
_INSTALL_SIGNING = "pip install model-signing pyopenssl"


def _trust(public_key: Any, certificate_chain: Any) -> Optional[Tuple[Any, ...]]:
    """What the caller trusts, with the files' fingerprints (a replaced key file is read again)."""
    if certificate_chain:
        paths = (certificate_chain,) if isinstance(certificate_chain, (str, os.PathLike)) else tuple(certificate_chain)
        return ("chain", tuple(str(p) for p in paths), tuple(_fingerprint(Path(p)) for p in paths))
    key = public_key or os.environ.get(PUBLIC_KEY_ENV)
    return ("key", (str(key),), (_fingerprint(Path(key)),)) if key else None


def _check_signature(sig_path: Path, trust: Tuple[Any, ...], entry: Dict[str, Any], manifest: Dict[str, Any]) -> None:
    """Verify the model's signature with the trusted key and that it signs exactly the manifest's files and digests.

    The files themselves are hashed against the manifest afterwards, so the bytes, the manifest and the
    signature must all agree: rewriting an artifact together with its manifest entry fails here.
    """
    import base64

    label = f"model {entry['name']!r} of {manifest.get('distribution')} {manifest.get('version')}"
    trusted = ", ".join(trust[1])
    nothing = "nothing was loaded"
    try:
        with open(sig_path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise IntegrityError(
            f"{sig_path}: {label} carries no signature ({exc.strerror}), but one by {trusted} is required; {nothing}. "
            "Install a package signed with `modelpack sign WHEEL --private-key KEY.pem`."
        ) from None
    try:
        bundle = json.loads(data)
        envelope = bundle["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        raw_sig = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
        statement = json.loads(payload)
        if bundle["mediaType"] != _BUNDLE_TYPE or envelope["payloadType"] != _PAYLOAD_TYPE:
            raise ValueError(f"media type {bundle['mediaType']!r}")
        predicate = statement["predicate"]
        ser = predicate["serialization"]
        resources = [(r["name"], r["digest"], r["algorithm"]) for r in predicate["resources"]]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise IntegrityError(
            f"{sig_path}: the signature of {label} is damaged or not a model_signing bundle ({exc}); {nothing}"
        ) from None
    pae = b"DSSEv1 %d %s %d %s" % (len(_PAYLOAD_TYPE), _PAYLOAD_TYPE.encode(), len(payload), payload)
    if trust[0] == "key":
        _verify_with_key(sig_path, Path(trust[1][0]), bundle, pae, raw_sig, label)
    else:
        try:
            from model_signing._signing import sign_certificate, sign_sigstore_pb
        except ImportError:
            raise ModelpackLoadError(
                f"verifying {label} with a certificate chain needs model-signing: {_INSTALL_SIGNING}"
            ) from None
        try:
            sign_certificate.Verifier([Path(p) for p in trust[1]]).verify(sign_sigstore_pb.Signature.read(sig_path))
        except Exception as exc:
            raise IntegrityError(
                f"{sig_path}: the signature of {label} does not verify with the chain {trusted} ({exc}); {nothing}"
            ) from None
    if statement.get("predicateType") != _PREDICATE_TYPE or (ser.get("method"), ser.get("hash_type")) != (
        "files",
        "sha256",
    ):
        raise IntegrityError(
            f"{sig_path}: the signature of {label} is not a per-file sha256 model_signing v1.0 signature; {nothing}"
        )
    signed = {n: d for n, d, algorithm in resources if algorithm == "sha256"}
    base = entry["path"].rsplit("/", 1)[-1]
    want = {("." if f["path"] == base else f["path"][len(base) + 1 :]): f["sha256"] for f in entry["files"]}
    if signed != want or len(resources) != len(want):
        odd = (
            sorted(set(want) ^ set(signed))
            or sorted(n for n in want if want[n] != signed.get(n))
            or ["(duplicate resources)"]
        )
        raise IntegrityError(
            f"{sig_path}: the signature of {label} does not cover the model's files as the manifest lists them "
            f"(first difference: {base if odd[0] == '.' else odd[0]}); {nothing}. The artifact or the manifest was changed after signing, or the "
            "signature belongs to another model: reinstall the package from your index."
        )


def _verify_with_key(
    sig_path: Path, key_path: Path, bundle: Dict[str, Any], pae: bytes, raw_sig: bytes, label: str
) -> None:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise ModelpackLoadError(
            f"verifying the signature of {label} needs model-signing (and its cryptography): {_INSTALL_SIGNING}"
        ) from None
    try:
        key = serialization.load_pem_public_key(key_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelpackLoadError(
            f"{key_path}: cannot be read as a PEM public key ({exc}); set {PUBLIC_KEY_ENV} / public_key= to the signer's public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.key_size not in (256, 384, 521):
        raise ModelpackLoadError(
            f"{key_path}: is not an elliptic-curve P-256/P-384/P-521 public key, which model signing uses"
        )
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = hashlib.sha256(pem).hexdigest()
    hint = ((bundle.get("verificationMaterial") or {}).get("publicKey") or {}).get("hint")
    if hint and hint != mine:
        raise IntegrityError(
            f"{sig_path}: {label} was signed by another key (fingerprint {hint[:16]}...), not by {key_path} "
            f"({mine[:16]}...); nothing was loaded. Install a package signed by the trusted key, or trust the key that signed it."
        )
    algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
    try:
        key.verify(raw_sig, pae, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError):
        raise IntegrityError(
            f"{sig_path}: the signature of {label} does not verify with {key_path} (wrong key, or the signature or "
            "its statement was altered); nothing was loaded. Reinstall the package from your index."
        ) from None


_BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
