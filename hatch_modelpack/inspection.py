"""The library behind ``modelpack verify`` and ``modelpack diff``: re-hash a package, compare two.

Everything here reads manifests (found by :mod:`hatch_modelpack.sources`) and hashes bytes; nothing is
imported from a model package and nothing is unpickled, so it is safe to point at a wheel from
anywhere. Standard library only, and it runs on Python 3.8+, so ``modelpack --python`` can run it
unchanged inside another environment (a service's venv or image) where hatch-modelpack itself is not
installed.
"""

from __future__ import annotations

import base64
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from hatch_modelpack.hashing import hash_stream
from hatch_modelpack.sources import InstalledSource, Source, model_size

#: Printed by `modelpack init`; the README's "Install" section says the same at length.
INSTALL_HINT = (
    "the build installs hatch-modelpack into its isolated environment, so your front end must find it: "
    "upload its wheel to your private index, or build it once (`python -m pip wheel --no-deps --wheel-dir "
    "~/wheels PATH/TO/hatch-modelpack`) and export PIP_FIND_LINKS=~/wheels UV_FIND_LINKS=~/wheels"
)


def signed_by(signer: dict[str, Any] | None) -> str:
    """Who the manifest says signed a model (``modelpack verify --public-key`` proves it)."""
    if not signer:
        return "unsigned"
    if signer.get("method") == "key":
        return f"key sha256:{signer.get('key', '')[:16]}"
    if signer.get("method") == "certificate":
        return f"certificate {signer.get('identity') or signer.get('subject')} (sha256:{signer.get('certificate_sha256', '')[:16]})"
    return str(signer.get("method"))


def _record_hash(dist: importlib_metadata.Distribution, manifest_path: Path) -> str | None:
    """The sha256 (hex) that the installer's RECORD lists for the manifest, if any."""
    for f in dist.files or []:
        if f.hash is not None and f.hash.mode == "sha256" and Path(str(dist.locate_file(f))) == manifest_path:
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


# -- verify ---------------------------------------------------------------------------------------


def verify_source(src: Source) -> list[dict[str, Any]]:
    results = []
    for name, e in src.manifest["models"].items():
        for f in e.get("files", []):
            where = src.artifact_location(e, f["path"])
            try:
                with src.open_artifact_file(e, f["path"]) as fh:
                    size, digest = hash_stream(fh)
            except (OSError, KeyError) as exc:
                results.append(
                    {
                        "model": name,
                        "file": where,
                        "status": "missing",
                        "detail": str(getattr(exc, "strerror", None) or exc),
                    }
                )
                continue
            ok = size == f["size"] and digest == f["sha256"]
            detail = "" if ok else f"sha256 {digest} ({size} bytes), manifest says {f['sha256']} ({f['size']} bytes)"
            results.append(
                {
                    "model": name,
                    "file": where,
                    "status": "ok" if ok else "mismatch",
                    "size": size,
                    "sha256": digest,
                    "detail": detail,
                }
            )
    if isinstance(src, InstalledSource):
        recorded = _record_hash(src.dist, src.manifest_path)
        if recorded is not None:
            with open(src.manifest_path, "rb") as fh:
                size, digest = hash_stream(fh)
            results.append(
                {
                    "model": "(manifest)",
                    "file": str(src.manifest_path),
                    "status": "ok" if digest == recorded else "mismatch",
                    "size": size,
                    "sha256": digest,
                    "detail": "" if digest == recorded else f"sha256 {digest}, the installer's RECORD says {recorded}",
                }
            )
    return results


# -- diff -----------------------------------------------------------------------------------------


def comparable(src: Source) -> dict[str, Any]:
    """The facts a reviewer compares, keyed so that a flat walk yields readable paths."""
    m = src.manifest
    models = {}
    for name, e in m["models"].items():
        models[name] = {
            "format": e.get("format"),
            "default": name == m.get("default"),
            "files": {f["path"]: {"size": f.get("size"), "sha256": f.get("sha256")} for f in e.get("files", [])},
            "size": model_size(e),
            "requires": sorted(e.get("requires", [])),
            "frameworks": dict(e.get("frameworks", {})),
            "description": e.get("description", ""),
            "metadata": dict(e.get("metadata") or {}),
            "pickle_globals": sorted(e.get("globals", [])) if "globals" in e else None,
            "signature": signed_by(e.get("signature")),
            "details": dict(e.get("details") or {}),
        }
    return {
        "version": src.meta.get("version") or m.get("version"),
        "distribution": src.meta.get("name") or m.get("distribution"),
        "package": m.get("package"),
        "summary": src.meta.get("summary", ""),
        "requires_python": src.meta.get("requires_python", ""),
        "requires_dist": sorted(src.meta.get("requires_dist", [])),
        "generator": m.get("generator"),
        "source": m.get("source"),
        "build_time": m.get("build_time"),
        "models": models,
    }


#: Stands for a key one side of a diff does not have.
MISSING = object()


def _walk(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _walk(old.get(key, MISSING), new.get(key, MISSING), f"{path}.{key}" if path else str(key), out)
        return
    if old == new:
        return
    change: dict[str, Any] = {"path": path}
    if old is MISSING:
        change.update(change="added", new=new)
    elif new is MISSING:
        change.update(change="removed", old=old)
    else:
        change.update(change="changed", old=old, new=new)
        if isinstance(old, list) and isinstance(new, list):
            change["added"] = [x for x in new if x not in old]
            change["removed"] = [x for x in old if x not in new]
    out.append(change)


def diff_sources(old: Source, new: Source) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    _walk(comparable(old), comparable(new), "", changes)
    return changes


def version_findings(src: Source) -> list[dict[str, Any]]:
    """Installed framework versions that load() would refuse (only an installed package has an environment)."""
    if not isinstance(src, InstalledSource):
        return []
    from hatch_modelpack.runtime.loader import version_problems

    return [
        {"model": name, "file": str(src.manifest_path), "status": "versions", "detail": "; ".join(problems)}
        for name, entry in src.manifest["models"].items()
        if (problems := version_problems(entry))
    ]
