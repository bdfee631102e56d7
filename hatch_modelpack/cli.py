"""The ``modelpack`` command: argument parsing and rendering over :mod:`hatch_modelpack.inspection`.

Standard library only (``init`` imports the build-time :mod:`hatch_modelpack.scaffold` when it runs),
and Python 3.8+, so ``--python`` runs this very command inside another environment (a service's venv
or image) where hatch-modelpack itself is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatch_modelpack.inspection import (
    INSTALL_HINT,
    MISSING,
    PROG,
    CLIError,
    InstalledSource,
    Source,
    comparable,
    diff_sources,
    list_installed,
    model_size,
    open_target,
    signed_by,
    verify_source,
    version_findings,
)

# -- small helpers --------------------------------------------------------------------------------


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


def cmd_inspect(args: argparse.Namespace) -> int:
    src = open_target(args.target)
    if args.json:
        print(json.dumps(src.as_json(), indent=2, sort_keys=True))
    else:
        print(render_inspect(src))
    return 0


# -- verify ---------------------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace) -> int:
    from hatch_modelpack.signing import sign_wheel
    from hatch_modelpack.signing_keys import load_signer
    from hatch_modelpack.signing_statement import SigningError

    try:
        signer = load_signer(
            Path(args.private_key),
            Path(args.signing_certificate) if args.signing_certificate else None,
            [Path(c) for c in args.certificate_chain or []],
        )
        done = sign_wheel(Path(args.wheel), signer, Path(args.output) if args.output else None)
    except SigningError as exc:
        raise CLIError(str(exc)) from None
    rows = [[d.model, d.arcname, signed_by(d.signer)] for d in done]
    print(table(rows, ["MODEL", "SIGNATURE", "SIGNED BY"]))
    print(f"signed {len(done)} model(s) in {args.output or args.wheel}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    src = open_target(args.target)
    results = verify_source(src)
    if args.public_key or args.certificate_chain:
        try:
            from hatch_modelpack.signatures import signature_results
        except ImportError:
            raise CLIError(
                f"checking signatures needs hatch-modelpack itself in {sys.prefix}: pip install 'hatch-modelpack[sign]' there"
            ) from None
        results += signature_results(src, args.public_key, args.certificate_chain or [])
    versions = version_findings(src)
    bad = [r for r in results if r["status"] != "ok"] + (versions if args.strict else [])
    if args.json:
        print(
            json.dumps(
                {"location": src.label, "ok": not bad, "files": results, "versions": versions}, indent=2, sort_keys=True
            )
        )
    else:
        print(
            table(
                [[r["model"], r["status"].upper(), r["file"]] for r in results + versions], ["MODEL", "STATUS", "FILE"]
            )
        )
        for v in versions:
            print(f"model {v['model']!r}: load() will refuse it here: {v['detail']}")
    if bad:
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
        print(
            f"{PROG}: verify failed: {first['file']}: {first['status']}: {first['detail']}{more}; {how}",
            file=sys.stderr,
        )
        return 1
    if not args.json:
        note = (
            f"; {len(versions)} model(s) with framework versions load() refuses (--strict fails on them)"
            if versions
            else ""
        )
        print(f"{len(results)} file(s) match the manifest of {src.meta.get('name')} {src.meta.get('version')}{note}")
    return 0


# -- list -----------------------------------------------------------------------------------------


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
    print(table(rows, ["DISTRIBUTION", "VERSION", "PACKAGE", "MODEL", "FORMAT", "SIZE", "LOCATION"]))
    return 0


# -- diff -----------------------------------------------------------------------------------------


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


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = open_target(args.old), open_target(args.new)
    changes = diff_sources(old, new)
    if args.json:

        def default(v: Any) -> Any:
            return None if v is MISSING else str(v)

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


def cmd_init(args: argparse.Namespace) -> int:
    # Build-time code (the config loader and the analysis): imported only by the command that needs it,
    # so the other commands keep running where only the standard library is (see --python).
    from hatch_modelpack.scaffold import InitRequest, init_project

    req = InitRequest(
        args.name, args.model, args.dir, args.model_name, args.format, args.version, args.description or "", args.force
    )
    done = init_project(req)
    if done.copied is not None:
        print(f"copied {args.model} -> {done.copied}")
    print(f"wrote {done.pyproject} and {done.readme}")
    row = [done.model, done.packed.format.name, done.path, ", ".join(done.packed.requires) or "-"]
    print(table([row], ["MODEL", "FORMAT", "PATH", "INFERRED REQUIREMENTS"]))
    print(f"next: cd {done.pyproject.parent} && python -m build && {PROG} inspect dist/*.whl")
    print(INSTALL_HINT)
    return 0


# -- entry point ----------------------------------------------------------------------------------


def _with_python(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--python",
        metavar="PATH",
        help="look in the environment of this interpreter (e.g. .venv/bin/python) instead of this one",
    )


def _reading_commands(sub: Any) -> None:
    """inspect, verify, list, diff: standard library only, so they also run inside other environments."""
    sp = sub.add_parser(
        "inspect", help="models, formats, sizes, hashes, requirements and versions of a wheel or installed package"
    )
    sp.add_argument("target", metavar="WHEEL_OR_PACKAGE")
    sp.add_argument("--json", action="store_true", help="print the manifest and core metadata as JSON")
    _with_python(sp)
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("verify", help="re-hash an installed package's (or a wheel's) artifacts against its manifest")
    sp.add_argument("target", metavar="PACKAGE")
    sp.add_argument("--json", action="store_true")
    sp.add_argument(
        "--strict",
        action="store_true",
        help="also fail when installed framework versions differ from the recorded ones (load() refuses them)",
    )
    sp.add_argument("--public-key", metavar="PUB.pem", help="also require each model's signature by this key")
    sp.add_argument(
        "--certificate-chain",
        metavar="PEM",
        action="append",
        help="also require a certificate signature chaining to these (repeatable)",
    )
    _with_python(sp)
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("list", help="installed model packages and their models")
    sp.add_argument("--json", action="store_true")
    _with_python(sp)
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("diff", help="what changed between two versions of a model package")
    sp.add_argument("old", metavar="OLD")
    sp.add_argument("new", metavar="NEW")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--exit-code", action="store_true", help="exit with 1 when there are differences (like git diff)")
    _with_python(sp)
    sp.set_defaults(func=cmd_diff)


def _signing_commands(sub: Any) -> None:
    sp = sub.add_parser("sign", help="add an OpenSSF model signature for every model to a wheel (rewrites it)")
    sp.add_argument("wheel", metavar="WHEEL")
    sp.add_argument("--private-key", required=True, metavar="KEY.pem", help="EC private key (P-256/P-384) in PEM")
    sp.add_argument("--signing-certificate", metavar="CERT.pem", help="certificate mode: the key's certificate")
    sp.add_argument(
        "--certificate-chain", metavar="PEM", action="append", help="certificate mode: intermediates/root (repeatable)"
    )
    sp.add_argument("-o", "--output", metavar="PATH", help="write the signed wheel here instead of in place")
    sp.set_defaults(func=cmd_sign)


def _project_commands(sub: Any) -> None:
    """init and serve: they need the build side (init) or MLServer (serve), imported inside each command."""
    sp = sub.add_parser("init", help="write pyproject.toml and README.md that package an existing model artifact")
    sp.add_argument("name", metavar="NAME", help="the project (distribution) name, e.g. churn-model")
    sp.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help="the trained artifact (copied into artifacts/ when outside the project)",
    )
    sp.add_argument("--dir", metavar="DIR", help="the project directory (default: the current directory)")
    sp.add_argument("--model-name", metavar="NAME", help="the model's name in load(NAME) (default: from the file name)")
    sp.add_argument("--format", help="the artifact format, checked against its bytes (default: inferred)")
    sp.add_argument("--version", default="0.1.0", help="the package version (default: 0.1.0)")
    sp.add_argument("--description", default="", help="one line describing what the model predicts")
    sp.add_argument("--force", action="store_true", help="overwrite existing pyproject.toml / README.md")
    sp.set_defaults(func=cmd_init)

    sp = sub.add_parser(
        "serve",
        help="serve every model of an installed package with MLServer (V2 protocol); needs hatch-modelpack[serve]",
    )
    sp.add_argument("package", metavar="PACKAGE")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8080, help="HTTP port (default: 8080)")
    sp.add_argument("--grpc-port", type=int, default=8081, help="gRPC port (default: 8081)")
    sp.add_argument("--metrics-port", type=int, default=8082, help="Prometheus metrics port (default: 8082)")
    sp.add_argument(
        "--settings-only",
        metavar="DIR",
        help="write MLServer settings to DIR for `mlserver start DIR` instead of serving",
    )
    sp.set_defaults(func=cmd_serve)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Inspect, verify, list, compare and start model packages built by hatch-modelpack."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _reading_commands(sub)
    _signing_commands(sub)
    _project_commands(sub)
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


# Imports hatch_modelpack's stdlib-only modules from their directory alone: not the rest of the
# environment this one runs in, which belongs to another interpreter.
_BOOTSTRAP = (
    "import sys, types; pkg = types.ModuleType('hatch_modelpack'); pkg.__path__ = [sys.argv.pop(1)]; "
    "sys.modules['hatch_modelpack'] = pkg; from hatch_modelpack.cli import main; sys.exit(main(sys.argv[1:]))"
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if getattr(args, "python", None):
        python = shutil.which(args.python) or args.python
        if not os.path.exists(python):
            print(f"{PROG}: --python {args.python}: no such interpreter", file=sys.stderr)
            return 2
        # This command is stdlib-only: run it inside the other environment, from this checkout's files.
        here = str(Path(__file__).resolve().parent)
        return subprocess.call([python, "-I", "-c", _BOOTSTRAP, here, *_strip_python(argv)])
    try:
        return int(args.func(args))
    except CLIError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `modelpack list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
