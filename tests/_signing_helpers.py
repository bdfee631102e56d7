"""Keys, certificates and signed package directories for the signing tests (made with cryptography)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from hatch_modelpack import signing_keys, signing_statement
from hatch_modelpack.manifest import MANIFEST_NAME, dumps


def make_key(directory: Path, name: str = "key", curve: str = "P-256") -> tuple[Path, Path]:
    """An EC key pair as PEM files: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1() if curve == "P-384" else ec.SECP256R1())
    priv, pub = directory / f"{name}.pem", directory / f"{name}.pub"
    priv.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return priv, pub


def make_certificates(directory: Path, key: Path) -> tuple[Path, Path]:
    """A CA and a code-signing leaf certificate for ``key`` (email SAN ci@example.com): (leaf, ca)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = serialization.load_pem_private_key(key.read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=30)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model signer")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("ci@example.com")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_path, ca_path = directory / "leaf.crt", directory / "ca.crt"
    leaf_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return leaf_path, ca_path


def sign_package_dir(
    pkg: Path, private_key: Path, certificate: Path | None = None, chain: tuple[Path, ...] = ()
) -> None:
    """Sign every model of an installed-like package directory as `modelpack sign` signs a wheel."""
    manifest_path = pkg / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    signer = signing_keys.load_signer(private_key, certificate, chain)
    for name, entry in manifest["models"].items():
        (pkg / "_models" / f"{name}.sig").write_bytes(
            signing_keys.sign_payload(signing_statement.payload_bytes(signing_statement.statement(entry)), signer)
        )
        entry["signature"] = {"path": f"_models/{name}.sig", **signer.describe()}
    manifest_path.write_text(dumps(manifest))
