"""What the ``modelpack`` commands print: plain text tables and one-line messages, for a terminal and a CI log.

:mod:`hatch_modelpack.cli` parses the arguments and calls the library (:mod:`hatch_modelpack.sources`,
:mod:`hatch_modelpack.inspection`); the text it prints is made here, from the library's rows (``--json``
prints those rows themselves). Standard library only, and Python 3.8+, like the rest of the CLI
(``modelpack --python``).
"""

from __future__ import annotations

import json
from typing import Any

from hatch_modelpack.inspection import MISSING, comparable, signed_by
from hatch_modelpack.sources import InstalledSource, Source, model_size


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
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(digest: str) -> str:
    return digest[:12] if digest else "-"


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
        rows.append(
            [
                name + (" *" if name == m.get("default") else ""),
                e.get("format", "?"),
                human_size(model_size(e)),
                str(len(e.get("files", []))),
                ", ".join(e.get("requires", [])) or "-",
                frameworks,
            ]
        )
    out += [
        "",
        table(rows, ["MODEL", "FORMAT", "SIZE", "FILES", "REQUIRES", "RECORDED VERSIONS"]),
        "(* = default model)",
    ]
    out += ["", table([[n, signed_by(e.get("signature"))] for n, e in m["models"].items()], ["MODEL", "SIGNED BY"])]
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


def render_signed(done: list[Any]) -> str:
    """``modelpack sign``: one row per model signed (``signing.Signed``)."""
    return table([[d.model, d.arcname, signed_by(d.signer)] for d in done], ["MODEL", "SIGNATURE", "SIGNED BY"])


def render_verify(results: list[dict[str, Any]], versions: list[dict[str, Any]]) -> str:
    """``modelpack verify``: one row per file (and signature), then the models load() would refuse here."""
    rows = [[r["model"], r["status"].upper(), r["file"]] for r in results + versions]
    lines = [table(rows, ["MODEL", "STATUS", "FILE"])]
    lines += [f"model {v['model']!r}: load() will refuse it here: {v['detail']}" for v in versions]
    return "\n".join(lines)


def verify_failure(src: Source, bad: list[dict[str, Any]]) -> str:
    """The one stderr line of a failed ``verify``: the first problem, how many more, and the fix for this kind of source."""
    first = bad[0]
    how = (
        "install the versions the model records (pip install the requirements named above)"
        if first["status"] == "versions"
        else "run `pip install -e .` again in the project (the artifact changed since the editable install)"
        if src.manifest.get("editable_root")
        else f"reinstall it (pip install --force-reinstall --no-deps {src.meta.get('name') or ''}=={src.meta.get('version') or ''})"
        if isinstance(src, InstalledSource)
        else "rebuild or re-download the wheel"
    )
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"verify failed: {first['file']}: {first['status']}: {first['detail']}{more}; {how}"


def verify_summary(src: Source, results: list[dict[str, Any]], versions: list[dict[str, Any]]) -> str:
    """The closing line of a passing ``verify``."""
    note = (
        f"; {len(versions)} model(s) with framework versions load() refuses (--strict fails on them)"
        if versions
        else ""
    )
    return f"{len(results)} file(s) match the manifest of {src.meta.get('name')} {src.meta.get('version')}{note}"


def render_list(items: list[dict[str, Any]]) -> str:
    """``modelpack list``: one row per model of every installed model package (``sources.list_installed``)."""
    rows = []
    for i in items:
        loc = i.get("location", i.get("error", "")) + ("  (editable)" if i.get("editable") else "")
        if not i["models"]:
            rows.append([i["distribution"], i["version"], i["package"], "-", "-", "-", loc])
        for mdl in i["models"]:
            rows.append(
                [
                    i["distribution"],
                    i["version"],
                    i["package"],
                    mdl["name"] + (" *" if mdl["default"] else ""),
                    mdl["format"],
                    human_size(mdl["size"]),
                    loc,
                ]
            )
    return table(rows, ["DISTRIBUTION", "VERSION", "PACKAGE", "MODEL", "FORMAT", "SIZE", "LOCATION"])


def _fmt_value(v: Any, key: str) -> str:
    if v is MISSING or v is None:
        return "-"
    if isinstance(v, str) and key.endswith("sha256"):
        return _short(v)
    if isinstance(v, int) and not isinstance(v, bool) and key.endswith("size"):
        return f"{human_size(v)} ({v} B)"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def render_diff(old: Source, new: Source, changes: list[dict[str, Any]]) -> str:
    o, n = comparable(old), comparable(new)
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
            rows.append(
                [
                    c["path"],
                    c["change"],
                    _fmt_value(c.get("old", MISSING), c["path"]),
                    _fmt_value(c.get("new", MISSING), c["path"]),
                ]
            )
    return head + "\n\n" + table(rows, ["WHAT", "CHANGE", "OLD", "NEW"])
