"""The ``modelpack`` command: inspect, verify, list, diff and start model packages.

Everything here reads manifests and hashes bytes; nothing is imported from a model package and
nothing is unpickled, so it is safe to point at a wheel from anywhere. Apart from ``init`` (which
uses the build-time analysis), this module uses only the standard library and runs on Python 3.8+,
so ``--python`` can run it unchanged inside another environment (a service's venv or image) where
hatch-modelpack itself is not installed.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_NAME = "_modelpack.json"
ENTRY_POINT_GROUP = "modelpack.models"
HASH_CHUNK = 1 << 20
PROG = "modelpack"


class CLIError(Exception):
    """A problem the user can fix; printed as one line on stderr with a non-zero exit."""


# -- small helpers --------------------------------------------------------------------------------


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain left-aligned text table, readable in a terminal and in a CI log."""
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]  # noqa: B905 - runs on 3.8
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _sha256_stream(chunks: Iterable[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _read_chunks(f: Any) -> Iterator[bytes]:
    while True:
        chunk = f.read(HASH_CHUNK)
        if not chunk:
            return
        yield chunk


def _model_size(entry: dict[str, Any]) -> int:
    return sum(int(f.get("size", 0)) for f in entry.get("files", []))


def _short(digest: str) -> str:
    return digest[:12] if digest else "-"


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
            raise CLIError(f"{path}: holds no <package>/{MANIFEST_NAME}, so it is not a model package built by hatch-modelpack")
        if len(manifests) > 1:
            raise CLIError(f"{path}: holds several model manifests ({', '.join(manifests)}); inspect one package at a time")
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
            import base64

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
            raise CLIError(f"{manifest_path}: cannot be read ({exc.strerror}); reinstall {dist.metadata['Name']}") from None
        manifest = _load_manifest_json(text, str(manifest_path))
        meta = _parse_core_metadata(str(dist.metadata)) if dist.metadata is not None else {}
        super().__init__(str(manifest_path.parent), manifest, meta)

    def base(self) -> Path:
        root = self.manifest.get("editable_root")
        return Path(root) if root else self.manifest_path.parent

    def file_path(self, model: dict[str, Any], rel: str) -> Path:
        return (self.base() / model["path"]).parent / rel

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
        raise CLIError(f"{dist_name} is installed ({dist.locate_file('')}) but holds no model manifest, so it is not a model package")
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


# -- inspect --------------------------------------------------------------------------------------


def _provenance(manifest: dict[str, Any]) -> str:
    parts = []
    source = manifest.get("source")
    if isinstance(source, dict) and source.get("commit"):
        parts.append(f"commit {source['commit']}" + (" (dirty)" if source.get("dirty") else ""))
    if manifest.get("build_time"):
        parts.append(f"built {manifest['build_time']}")
    return ", ".join(parts) or "not recorded (build from a git checkout, set SOURCE_DATE_EPOCH for a build time)"


def render_inspect(src: Source) -> str:
    m = src.manifest
    meta = src.meta
    out = [
        f"{meta.get('name') or m.get('distribution')} {meta.get('version') or m.get('version')}  ({src.kind}: {src.label})",
        f"package:     {m.get('package')}  (import {m.get('package')}; {m.get('package')}.load())",
        f"generator:   {m.get('generator', '-')}",
        f"provenance:  {_provenance(m)}",
    ]
    if m.get("editable_root"):
        out.append(f"editable:    artifacts are read from {m['editable_root']}")
    if meta.get("summary"):
        out.append(f"summary:     {meta['summary']}")
    reqs = meta.get("requires_dist")
    out.append(f"requires:    {', '.join(reqs) if reqs else '(none)'}")
    rows = []
    for name, e in m["models"].items():
        frameworks = ", ".join(f"{k} {v}" for k, v in sorted(e.get("frameworks", {}).items())) or "-"
        rows.append([
            name + (" *" if name == m.get("default") else ""),
            e.get("format", "?"),
            human_size(_model_size(e)),
            str(len(e.get("files", []))),
            ", ".join(e.get("requires", [])) or "-",
            frameworks,
        ])
    out += ["", table(rows, ["MODEL", "FORMAT", "SIZE", "FILES", "REQUIRES", "RECORDED VERSIONS"]), "(* = default model)"]
    files = []
    for name, e in m["models"].items():
        for f in e.get("files", []):
            files.append([name, f["path"], human_size(f.get("size")), f.get("sha256", "")])
    out += ["", table(files, ["MODEL", "FILE", "SIZE", "SHA256"])]
    for name, e in m["models"].items():
        if e.get("description") or e.get("metadata"):
            out += ["", f"{name}: {e.get('description') or ''}".rstrip()]
            for k, v in sorted((e.get("metadata") or {}).items()):
                out.append(f"  {k}: {json.dumps(v) if not isinstance(v, str) else v}")
    return "\n".join(out)


def cmd_inspect(args: argparse.Namespace) -> int:
    src = open_target(args.target)
    if args.json:
        print(json.dumps(src.as_json(), indent=2, sort_keys=True))
    else:
        print(render_inspect(src))
    return 0


# -- verify ---------------------------------------------------------------------------------------


def verify_source(src: Source) -> list[dict[str, Any]]:
    results = []
    for name, e in src.manifest["models"].items():
        for f in e.get("files", []):
            where = src.artifact_location(e, f["path"])
            try:
                with src.open_artifact_file(e, f["path"]) as fh:
                    size, digest = _sha256_stream(_read_chunks(fh))
            except (OSError, KeyError) as exc:
                results.append({"model": name, "file": where, "status": "missing", "detail": str(getattr(exc, "strerror", None) or exc)})
                continue
            ok = size == f["size"] and digest == f["sha256"]
            detail = "" if ok else f"sha256 {digest} ({size} bytes), manifest says {f['sha256']} ({f['size']} bytes)"
            results.append({"model": name, "file": where, "status": "ok" if ok else "mismatch", "size": size, "sha256": digest, "detail": detail})
    if isinstance(src, InstalledSource):
        recorded = _record_hash(src.dist, src.manifest_path)
        if recorded is not None:
            with open(src.manifest_path, "rb") as fh:
                size, digest = _sha256_stream(_read_chunks(fh))
            results.append({
                "model": "(manifest)",
                "file": str(src.manifest_path),
                "status": "ok" if digest == recorded else "mismatch",
                "size": size,
                "sha256": digest,
                "detail": "" if digest == recorded else f"sha256 {digest}, the installer's RECORD says {recorded}",
            })
    return results


def cmd_verify(args: argparse.Namespace) -> int:
    src = open_target(args.target)
    results = verify_source(src)
    bad = [r for r in results if r["status"] != "ok"]
    if args.json:
        print(json.dumps({"location": src.label, "ok": not bad, "files": results}, indent=2, sort_keys=True))
    else:
        print(table([[r["model"], r["status"].upper(), r["file"]] for r in results], ["MODEL", "STATUS", "FILE"]))
    if bad:
        first = bad[0]
        how = (
            "run `pip install -e .` again in the project (the artifact changed since the editable install)"
            if src.manifest.get("editable_root")
            else f"reinstall it (pip install --force-reinstall --no-deps {src.meta.get('name') or ''}=={src.meta.get('version') or ''})"
            if isinstance(src, InstalledSource)
            else "rebuild or re-download the wheel"
        )
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        print(f"{PROG}: verify failed: {first['file']}: {first['status']}: {first['detail']}{more}; {how}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"{len(results)} file(s) match the manifest of {src.meta.get('name')} {src.meta.get('version')}")
    return 0


# -- list -----------------------------------------------------------------------------------------


def list_installed() -> list[dict[str, Any]]:
    out = []
    for dist, eps in _model_distributions():
        for ep in eps:
            package = ep.name
            path = _dist_manifest_path(dist, package)
            item: dict[str, Any] = {"distribution": dist.metadata["Name"], "version": dist.version, "package": package, "entry_point": ep.value}
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
                        {"name": n, "format": e.get("format"), "size": _model_size(e), "default": n == manifest.get("default"), "description": e.get("description", "")}
                        for n, e in manifest["models"].items()
                    ]
            out.append(item)
    return sorted(out, key=lambda i: (_canon(i["distribution"]), i["package"]))


def cmd_list(args: argparse.Namespace) -> int:
    items = list_installed()
    if args.json:
        print(json.dumps(items, indent=2, sort_keys=True))
        return 0
    if not items:
        print(f"no model packages installed in {sys.prefix}")
        return 0
    rows = []
    for i in items:
        loc = i.get("location", i.get("error", "")) + ("  (editable)" if i.get("editable") else "")
        if not i["models"]:
            rows.append([i["distribution"], i["version"], i["package"], "-", "-", "-", loc])
        for mdl in i["models"]:
            rows.append([i["distribution"], i["version"], i["package"], mdl["name"] + (" *" if mdl["default"] else ""), mdl["format"], human_size(mdl["size"]), loc])
    print(table(rows, ["DISTRIBUTION", "VERSION", "PACKAGE", "MODEL", "FORMAT", "SIZE", "LOCATION"]))
    return 0


# -- diff -----------------------------------------------------------------------------------------


def _comparable(src: Source) -> dict[str, Any]:
    """The facts a reviewer compares, keyed so that a flat walk yields readable paths."""
    m = src.manifest
    models = {}
    for name, e in m["models"].items():
        models[name] = {
            "format": e.get("format"),
            "default": name == m.get("default"),
            "files": {f["path"]: {"size": f.get("size"), "sha256": f.get("sha256")} for f in e.get("files", [])},
            "size": _model_size(e),
            "requires": sorted(e.get("requires", [])),
            "frameworks": dict(e.get("frameworks", {})),
            "description": e.get("description", ""),
            "metadata": dict(e.get("metadata") or {}),
            "pickle_globals": sorted(e.get("globals", [])) if "globals" in e else None,
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


_MISSING = object()


def _walk(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _walk(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}" if path else str(key), out)
        return
    if old == new:
        return
    change: dict[str, Any] = {"path": path}
    if old is _MISSING:
        change.update(change="added", new=new)
    elif new is _MISSING:
        change.update(change="removed", old=old)
    else:
        change.update(change="changed", old=old, new=new)
        if isinstance(old, list) and isinstance(new, list):
            change["added"] = [x for x in new if x not in old]
            change["removed"] = [x for x in old if x not in new]
    out.append(change)


def diff_sources(old: Source, new: Source) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    _walk(_comparable(old), _comparable(new), "", changes)
    return changes


def _fmt_value(v: Any, key: str) -> str:
    if v is _MISSING or v is None:
        return "-"
    if isinstance(v, str) and key.endswith("sha256"):
        return _short(v)
    if isinstance(v, int) and not isinstance(v, bool) and key.endswith("size"):
        return f"{human_size(v)} ({v} B)"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def render_diff(old: Source, new: Source, changes: list[dict[str, Any]]) -> str:
    o, n = _comparable(old), _comparable(new)
    head = f"{o['distribution']} {o['version']} -> {n['distribution']} {n['version']}"
    if not changes:
        return head + "\nno differences in artifacts, requirements, recorded versions or metadata"
    rows = []
    for c in changes:
        if c["change"] == "changed" and ("added" in c or "removed" in c):
            # One row per list item, so long names (requirements, pickle globals) stay readable.
            rows += [[c["path"], "removed", _fmt_value(x, ""), "-"] for x in c["removed"]]
            rows += [[c["path"], "added", "-", _fmt_value(x, "")] for x in c["added"]]
            if not c["added"] and not c["removed"]:
                rows.append([c["path"], "reordered", "", ""])
        else:
            rows.append([c["path"], c["change"], _fmt_value(c.get("old", _MISSING), c["path"]), _fmt_value(c.get("new", _MISSING), c["path"])])
    return head + "\n\n" + table(rows, ["WHAT", "CHANGE", "OLD", "NEW"])


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = open_target(args.old), open_target(args.new)
    changes = diff_sources(old, new)
    if args.json:

        def default(v: Any) -> Any:
            return None if v is _MISSING else str(v)

        doc = {
            "old": {"location": old.label, "distribution": old.meta.get("name"), "version": old.meta.get("version")},
            "new": {"location": new.label, "distribution": new.meta.get("name"), "version": new.meta.get("version")},
            "changes": changes,
        }
        print(json.dumps(doc, indent=2, sort_keys=True, default=default))
    else:
        print(render_diff(old, new, changes))
    return 1 if (args.exit_code and changes) else 0


# -- init -----------------------------------------------------------------------------------------

_PROJECT_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def _model_name_from(path: Path) -> str:
    stem = path.name.split(".")[0] if path.is_file() else path.name
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"model_{name}" if name else "model"
    return name


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def render_pyproject(name: str, version: str, model: str, rel: str, fmt: str, requires: list[str], description: str, python: str) -> str:
    from hatch_modelpack import __version__

    inferred = "\n".join(f"#   {r}" for r in requires) or "#   (none)"
    desc_line = f"description = {_toml_str(description)}\n" if description else ""
    return f"""[build-system]
requires = ["hatchling>=1.27", "hatch-modelpack>={__version__}"]
build-backend = "hatchling.build"

[project]
name = {_toml_str(name)}
version = {_toml_str(version)}
description = {_toml_str(description or f"The {model} model, packaged with hatch-modelpack")}
readme = "README.md"
requires-python = {_toml_str(python)}
# The models' run-time requirements are inferred from the artifact at build time by
# hatch-modelpack's metadata hook, so pip and uv see them before building. Inferred now:
{inferred}
dynamic = ["dependencies"]

[tool.hatch.metadata.hooks.modelpack]
# Requirements of your own code go here, next to the inferred ones, e.g. dependencies = ["pandas"].
dependencies = []

[tool.hatch.build.hooks.modelpack]
# package = "{name.replace('-', '_').replace('.', '_').lower()}"    # the default: the project name, normalised

[tool.hatch.build.hooks.modelpack.models.{model}]
path = {_toml_str(rel)}
format = {_toml_str(fmt)}    # inferred from the file name and its bytes
{desc_line}# metadata = {{ auc = 0.91, training-data = "s3://bucket/path" }}
"""


def render_readme(name: str, package: str, version: str, model: str, rel: str, fmt: str, requires: list[str], frameworks: dict[str, str]) -> str:
    reqs = "\n".join(f"- `{r}`" for r in requires) or "- (none inferred)"
    recorded = ", ".join(f"{k} {v}" for k, v in sorted(frameworks.items())) or "none recorded"
    return f"""# {name}

The `{model}` model (`{rel}`, {fmt} format), packaged as a Python wheel with
[hatch-modelpack](https://pypi.org/project/hatch-modelpack/). The model version is the package
version ({version}).

Run-time requirements inferred from the artifact (recorded framework versions: {recorded}):

{reqs}

## Build and publish

```console
python -m build                       # dist/{package}-{version}-py3-none-any.whl and the sdist
modelpack inspect dist/{package}-{version}-py3-none-any.whl
twine upload --repository-url https://your-index.example/ dist/*
```

## Use

```console
pip install {name}=={version}
```

```python
from {package} import load, metadata, verify, __version__

model = load()          # checks the artifact's sha256, then loads it
metadata()              # format, files and hashes, requirements, recorded versions
```
"""


def cmd_init(args: argparse.Namespace) -> int:
    from hatch_modelpack.config import FORMATS, load_config, normalize_package_name
    from hatch_modelpack.errors import ModelpackError
    from hatch_modelpack.manifest import analyse

    name = args.name
    if not _PROJECT_NAME_RE.match(name):
        raise CLIError(f"{name!r} is not a valid project name; use letters, digits, '-', '_' and '.', e.g. churn-model")
    root = Path(args.dir or ".").resolve()
    model_path = Path(args.model).expanduser()
    if not model_path.exists():
        raise CLIError(f"{args.model}: no such file or directory; pass --model the path of the trained artifact")
    targets = [root / "pyproject.toml", root / "README.md"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        raise CLIError(f"{', '.join(existing)} already exist(s); pass --force to overwrite, or --dir to write a new project elsewhere")
    if args.format and args.format not in FORMATS:
        raise CLIError(f"--format {args.format!r} is not a format hatch-modelpack knows; use one of: {', '.join(FORMATS)}, or leave it out to infer it")
    model_real = model_path.resolve()
    inside = root == model_real or root in model_real.parents
    model = args.model_name or _model_name_from(model_real)
    spec: dict[str, Any] = {"path": model_real.relative_to(root).as_posix() if inside else model_real.name}
    if args.format:
        spec["format"] = args.format
    analysis_root = root if inside else model_real.parent
    try:  # Analyse where the artifact is now, so a bad artifact is refused before anything is written.
        pack = load_config(analysis_root, {"models": {model: spec}}, name)
        packed = analyse(pack, hash_files=False)[0]
    except ModelpackError as exc:
        # The pyproject.toml these messages name does not exist yet: point at the artifact instead.
        raise CLIError(f"cannot package {args.model}: " + str(exc).replace(f"{analysis_root / 'pyproject.toml'}: ", "")) from None
    root.mkdir(parents=True, exist_ok=True)
    copied = None
    if not inside:
        # Artifacts ship in the sdist, so they must live inside the project.
        dest = root / "artifacts" / model_real.name
        if dest.exists() and not args.force:
            raise CLIError(f"{dest} already exists; pass --force to overwrite it with {model_real}, or point --model at it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if model_real.is_dir():
            shutil.copytree(model_real, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(model_real, dest)
        copied = dest
    rel = (copied or model_real).relative_to(root).as_posix()
    fmt = packed.format.name
    python = f">={sys.version_info[0]}.{sys.version_info[1]}"
    targets[0].write_text(render_pyproject(name, args.version, model, rel, fmt, packed.requires, args.description or "", python), encoding="utf-8")
    targets[1].write_text(render_readme(name, normalize_package_name(name), args.version, model, rel, fmt, packed.requires, packed.inspection.frameworks), encoding="utf-8")
    if copied is not None:
        print(f"copied {args.model} -> {copied}")
    print(f"wrote {targets[0]} and {targets[1]}")
    print(table([[model, fmt, rel, ", ".join(packed.requires) or "-"]], ["MODEL", "FORMAT", "PATH", "INFERRED REQUIREMENTS"]))
    print(f"next: cd {root} && python -m build && {PROG} inspect dist/*.whl")
    return 0


# -- entry point ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Inspect, verify, list, compare and start model packages built by hatch-modelpack.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_python(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--python", metavar="PATH", help="look in the environment of this interpreter (e.g. .venv/bin/python) instead of this one")

    sp = sub.add_parser("inspect", help="models, formats, sizes, hashes, requirements and versions of a wheel or installed package")
    sp.add_argument("target", metavar="WHEEL_OR_PACKAGE")
    sp.add_argument("--json", action="store_true", help="print the manifest and core metadata as JSON")
    with_python(sp)
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("verify", help="re-hash an installed package's (or a wheel's) artifacts against its manifest")
    sp.add_argument("target", metavar="PACKAGE")
    sp.add_argument("--json", action="store_true")
    with_python(sp)
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("list", help="installed model packages and their models")
    sp.add_argument("--json", action="store_true")
    with_python(sp)
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("diff", help="what changed between two versions of a model package")
    sp.add_argument("old", metavar="OLD")
    sp.add_argument("new", metavar="NEW")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--exit-code", action="store_true", help="exit with 1 when there are differences (like git diff)")
    with_python(sp)
    sp.set_defaults(func=cmd_diff)

    sp = sub.add_parser("init", help="write pyproject.toml and README.md that package an existing model artifact")
    sp.add_argument("name", metavar="NAME", help="the project (distribution) name, e.g. churn-model")
    sp.add_argument("--model", required=True, metavar="PATH", help="the trained artifact (copied into artifacts/ when outside the project)")
    sp.add_argument("--dir", metavar="DIR", help="the project directory (default: the current directory)")
    sp.add_argument("--model-name", metavar="NAME", help="the model's name in load(NAME) (default: from the file name)")
    sp.add_argument("--format", help="the artifact format, checked against its bytes (default: inferred)")
    sp.add_argument("--version", default="0.1.0", help="the package version (default: 0.1.0)")
    sp.add_argument("--description", default="", help="one line describing what the model predicts")
    sp.add_argument("--force", action="store_true", help="overwrite existing pyproject.toml / README.md")
    sp.set_defaults(func=cmd_init)

    sp = sub.add_parser("serve", help="serve every model of an installed package with MLServer (V2 protocol); needs hatch-modelpack[serve]")
    sp.add_argument("package", metavar="PACKAGE")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8080, help="HTTP port (default: 8080)")
    sp.add_argument("--grpc-port", type=int, default=8081, help="gRPC port (default: 8081)")
    sp.add_argument("--metrics-port", type=int, default=8082, help="Prometheus metrics port (default: 8082)")
    sp.add_argument("--settings-only", metavar="DIR", help="write MLServer settings to DIR for `mlserver start DIR` instead of serving")
    sp.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    from hatch_modelpack.serve import ServeError, serve, write_settings

    try:
        if args.settings_only:
            for path in write_settings(args.package, Path(args.settings_only)):
                print(path)
            return 0
        return serve(args.package, args.host, args.port, args.grpc_port, args.metrics_port)
    except ServeError as exc:
        raise CLIError(str(exc)) from None


def _strip_python(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--python":
            skip = True
        elif not a.startswith("--python="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if getattr(args, "python", None):
        python = shutil.which(args.python) or args.python
        if not os.path.exists(python):
            print(f"{PROG}: --python {args.python}: no such interpreter", file=sys.stderr)
            return 2
        # This file is stdlib-only: run it as a script inside the other environment.
        return subprocess.call([python, "-I", str(Path(__file__).resolve()), *_strip_python(argv)])
    try:
        return int(args.func(args))
    except CLIError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `modelpack list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
