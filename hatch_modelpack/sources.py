"""Where a model package is: a wheel file or an installed distribution, and its manifest and metadata.

The ``modelpack`` commands start here (:func:`open_target`, :func:`list_installed`); what they then
check and compare is :mod:`hatch_modelpack.inspection`. Installed packages are found through their
``modelpack.models`` entry point and their files, never by importing them, and nothing is unpickled.
Standard library only, and Python 3.8+, so ``modelpack --python`` runs it unchanged inside another
environment (a service's venv or image) where hatch-modelpack itself is not installed.
"""

from __future__ import annotations

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

PROG = "modelpack"


class CLIError(Exception):
    """A problem the user can fix; printed as one line on stderr with a non-zero exit."""


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
