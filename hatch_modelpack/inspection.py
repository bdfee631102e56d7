"""The library behind ``modelpack``: find a model package, read its manifest, verify and compare it.

Everything here reads manifests and hashes bytes; nothing is imported from a model package and
nothing is unpickled, so it is safe to point at a wheel from anywhere. Standard library only, and it
runs on Python 3.8+, so ``modelpack --python`` can run it unchanged inside another environment (a
service's venv or image) where hatch-modelpack itself is not installed.
"""

from __future__ import annotations

import base64
import email.parser
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import Any

from hatch_modelpack.contract import ENTRY_POINT_GROUP, MANIFEST_NAME
from hatch_modelpack.hashing import hash_stream

PROG = "modelpack"


class CLIError(Exception):
    """A problem the user can fix; printed as one line on stderr with a non-zero exit."""


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


def _canon(name: str) -> str:
    """The distribution-name comparison key of PEP 503 (the stdlib has none; packaging may be absent)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def model_size(entry: dict[str, Any]) -> int:
    return sum(int(f.get("size", 0)) for f in entry.get("files", []))


# -- where a manifest comes from --------------------------------------------------------------------


class Source:
    """One model package: its manifest, its core metadata, and how to read its artifact bytes."""

    kind = ""

    def __init__(self, label: str, manifest: dict[str, Any], meta: dict[str, Any]) -> None:
        self.label = label
        self.manifest = manifest
        self.meta = meta  # name, version, summary, requires_dist

    def open_artifact_file(self, model: dict[str, Any], rel: str) -> Any:
        raise NotImplementedError

    def artifact_location(self, model: dict[str, Any], rel: str) -> str:
        raise NotImplementedError

    def as_json(self) -> dict[str, Any]:
        return {"origin": self.kind, "location": self.label, "metadata": self.meta, "manifest": self.manifest}


def _parse_core_metadata(text: str) -> dict[str, Any]:
    msg = email.parser.Parser().parsestr(text, headersonly=True)
    return {
        "name": msg.get("Name", ""),
        "version": msg.get("Version", ""),
        "summary": msg.get("Summary", "") or "",
        "requires_python": msg.get("Requires-Python", "") or "",
        "requires_dist": list(msg.get_all("Requires-Dist") or []),
    }


def _load_manifest_json(text: str, where: str) -> dict[str, Any]:
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{where}: the model manifest is not valid JSON ({exc}); rebuild the package") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise CLIError(f"{where}: is not a hatch-modelpack manifest (no `models` table); rebuild the package")
    return manifest


class WheelSource(Source):
    kind = "wheel"

    def __init__(self, path: Path) -> None:
        try:
            self.zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise CLIError(f"{path}: cannot be opened as a wheel ({exc})") from None
        names = self.zf.namelist()
        manifests = [n for n in names if len(PurePosixPath(n).parts) == 2 and PurePosixPath(n).name == MANIFEST_NAME]
        if not manifests:
            raise CLIError(
                f"{path}: holds no <package>/{MANIFEST_NAME}, so it is not a model package built by hatch-modelpack"
            )
        if len(manifests) > 1:
            raise CLIError(
                f"{path}: holds several model manifests ({', '.join(manifests)}); inspect one package at a time"
            )
        self.manifest_name = manifests[0]
        self.package_dir = PurePosixPath(manifests[0]).parent
        metas = [n for n in names if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        meta = _parse_core_metadata(self.zf.read(metas[0]).decode("utf-8")) if metas else {}
        manifest = _load_manifest_json(self.zf.read(self.manifest_name).decode("utf-8"), f"{path}!{self.manifest_name}")
        super().__init__(str(path), manifest, meta)

    def _member(self, model: dict[str, Any], rel: str) -> str:
        parent = PurePosixPath(model["path"]).parent
        return str(self.package_dir / parent / rel)

    def open_artifact_file(self, model: dict[str, Any], rel: str) -> Any:
        return self.zf.open(self._member(model, rel))

    def artifact_location(self, model: dict[str, Any], rel: str) -> str:
        return f"{self.label}!{self._member(model, rel)}"


def _dist_entry_points(dist: importlib_metadata.Distribution) -> list[importlib_metadata.EntryPoint]:
    return [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]


def _dist_manifest_path(dist: importlib_metadata.Distribution, package: str | None) -> Path | None:
    """Where an installed distribution's manifest is, found from its files, never by importing it."""
    candidates = []
    if package:
        candidates.append(f"{package}/{MANIFEST_NAME}")
    for ep in _dist_entry_points(dist):
        candidates.append(f"{ep.value.split(':')[0].split('.')[0]}/{MANIFEST_NAME}")
    for rel in candidates:
        located = Path(str(dist.locate_file(rel)))
        if located.is_file():
            return located
    for f in dist.files or []:
        parts = PurePosixPath(str(f)).parts
        if len(parts) == 2 and parts[1] == MANIFEST_NAME and (package is None or parts[0] == package):
            located = Path(str(dist.locate_file(f)))
            if located.is_file():
                return located
    return None


def _record_hash(dist: importlib_metadata.Distribution, manifest_path: Path) -> str | None:
    """The sha256 (hex) that the installer's RECORD lists for the manifest, if any."""
    for f in dist.files or []:
        if f.hash is not None and f.hash.mode == "sha256" and Path(str(dist.locate_file(f))) == manifest_path:
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


class InstalledSource(Source):
    kind = "installed"

    def __init__(self, dist: importlib_metadata.Distribution, manifest_path: Path) -> None:
        self.dist = dist
        self.manifest_path = manifest_path
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CLIError(
                f"{manifest_path}: cannot be read ({exc.strerror}); reinstall {dist.metadata['Name']}"
            ) from None
        manifest = _load_manifest_json(text, str(manifest_path))
        meta = _parse_core_metadata(str(dist.metadata)) if dist.metadata is not None else {}
        super().__init__(str(manifest_path.parent), manifest, meta)

    def base(self) -> Path:
        root = self.manifest.get("editable_root")
        return Path(str(root)) if root else self.manifest_path.parent

    def file_path(self, model: dict[str, Any], rel: str) -> Path:
        return (self.base() / str(model["path"])).parent / rel

    def open_artifact_file(self, model: dict[str, Any], rel: str) -> Any:
        return open(self.file_path(model, rel), "rb")

    def artifact_location(self, model: dict[str, Any], rel: str) -> str:
        return str(self.file_path(model, rel))


def _model_distributions() -> Iterator[tuple[importlib_metadata.Distribution, list[importlib_metadata.EntryPoint]]]:
    """Installed distributions that register a ``modelpack.models`` entry point, first on sys.path wins."""
    seen = set()
    for dist in importlib_metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:  # a broken .dist-info must not hide the others
            continue
        if not name or _canon(name) in seen:
            continue
        seen.add(_canon(name))
        eps = _dist_entry_points(dist)
        if eps:
            yield dist, eps


def find_installed(name: str) -> InstalledSource:
    """An installed model package by distribution name (churn-model) or import name (churn_model)."""
    for dist, eps in _model_distributions():
        packages = [ep.name for ep in eps]
        if _canon(dist.metadata["Name"]) == _canon(name) or name in packages:
            package = name if name in packages else (packages[0] if len(packages) == 1 else None)
            manifest = _dist_manifest_path(dist, package)
            if manifest is not None:
                return InstalledSource(dist, manifest)
    # Packages built before the entry point existed: look the name up as a distribution or a package.
    candidates: list[tuple[str, str | None]] = [(name, None)]
    try:
        for dist_name in importlib_metadata.packages_distributions().get(name, []):
            candidates.append((dist_name, name))
    except AttributeError:  # Python < 3.10
        pass
    for dist_name, package in candidates:
        try:
            dist = importlib_metadata.distribution(dist_name)
        except importlib_metadata.PackageNotFoundError:
            continue
        manifest = _dist_manifest_path(dist, package)
        if manifest is not None:
            return InstalledSource(dist, manifest)
        raise CLIError(
            f"{dist_name} is installed ({dist.locate_file('')}) but holds no model manifest, so it is not a model package"
        )
    raise CLIError(
        f"no installed model package named {name!r} in {sys.prefix} (python {sys.executable}); "
        f"pass a distribution or import name from `{PROG} list`, a .whl path, or --python for another environment"
    )


def open_target(target: str) -> Source:
    if target.endswith(".whl") or os.path.isfile(target):
        path = Path(target)
        if not path.is_file():
            raise CLIError(f"{target}: no such wheel file")
        return WheelSource(path)
    return find_installed(target)


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


# -- list -----------------------------------------------------------------------------------------


def list_installed() -> list[dict[str, Any]]:
    out = []
    for dist, eps in _model_distributions():
        for ep in eps:
            package = ep.name
            path = _dist_manifest_path(dist, package)
            item: dict[str, Any] = {
                "distribution": dist.metadata["Name"],
                "version": dist.version,
                "package": package,
                "entry_point": ep.value,
            }
            if path is None:
                item.update(error=f"no {package}/{MANIFEST_NAME} in the installed files; reinstall it", models=[])
            else:
                try:
                    manifest = _load_manifest_json(path.read_text(encoding="utf-8"), str(path))
                except (OSError, CLIError) as exc:
                    item.update(error=str(exc), models=[])
                else:
                    item["location"] = str(path.parent)
                    item["editable"] = bool(manifest.get("editable_root"))
                    item["models"] = [
                        {
                            "name": n,
                            "format": e.get("format"),
                            "size": model_size(e),
                            "default": n == manifest.get("default"),
                            "description": e.get("description", ""),
                        }
                        for n, e in manifest["models"].items()
                    ]
            out.append(item)
    return sorted(out, key=lambda i: (_canon(i["distribution"]), i["package"]))


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
