"""Keys, certificates and the Sigstore bundle a signature is written as (``cryptography``, imported lazily).

``cryptography`` is what model-signing brings; it is imported inside the functions that need it, so
importing this module costs nothing and works where only the standard library is (``modelpack
--python`` reaches :mod:`hatch_modelpack.signatures`, which reads fingerprints through here).

The bytes are what model_signing writes, in a fixed key order (model_signing's own order varies per
process: protobuf Struct and a frozenset), and ECDSA is deterministic (RFC 6979), so signing the same
wheel with the same key gives the same wheel.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_modelpack.signing_statement import BUNDLE_MEDIA_TYPE, INSTALL_HINT, PAYLOAD_TYPE, SigningError, pae


@dataclass(frozen=True)
class Signer:
    """The private key a bundle is signed with, and in certificate mode the certificates it carries."""

    private_key: Any
    certificates: tuple[Any, ...] = ()  # the signing certificate first, then the chain

    def describe(self) -> dict[str, Any]:
        """What the manifest records about who signed (display only: trust comes from the verifier's key)."""
        if self.certificates:
            return certificate_info(self.certificates[0])
        return {"method": "key", "key": key_fingerprint(self.private_key.public_key())}


def crypto() -> Any:
    """(hashes, serialization, ec) of ``cryptography``, imported on first use, or a SigningError naming the install."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise SigningError(f"signing needs the `cryptography` package: {INSTALL_HINT}") from None
    return hashes, serialization, ec


def key_fingerprint(public_key: Any) -> str:
    """sha256 of the PEM public key: the `hint` model_signing puts into key-mode bundles."""
    _, serialization, _ = crypto()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def certificate_info(cert: Any) -> dict[str, Any]:
    """Who a certificate names (its first e-mail, URI or DNS name), as the manifest and `inspect` show it."""
    from cryptography import x509

    emails: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        emails += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        emails += [str(v) for v in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    _, serialization, _ = crypto()
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
    _, serialization, ec = crypto()
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
    hashes, serialization, ec = crypto()
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
