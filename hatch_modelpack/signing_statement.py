"""What an OpenSSF model signature (model-signing v1.0) signs, computed from the manifest alone.

A signature is a Sigstore bundle (v0.3 JSON) holding a DSSE envelope whose payload is an in-toto
statement: one subject (the model's name and a sha256 over all resource digests) and a predicate
listing every file of the model with its sha256, serialised by file ("files", sha256: model_signing's
default). Those per-file digests are exactly the sha256 values the manifest already holds, so signing
reads no artifact byte: signing a 5 GB model costs the same as a 5 KB one.

The statement covers what model_signing hashes for ``path(name)`` of the installed package: for a
file model the file itself (one resource named "."), for a directory model the directory (resources
named relative to it). The signature sits beside that path, at ``<package>/_models/<name>.sig``, so it
is never inside what it signs.

The bottom layer of signing: standard library only, imported by :mod:`hatch_modelpack.signing_keys`
(making a bundle), :mod:`hatch_modelpack.signatures` (reading one) and :mod:`hatch_modelpack.signing`
(writing them into a wheel).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from typing import Any

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
