"""The ``modelpack`` command: argument parsing over :mod:`hatch_modelpack.sources` and
:mod:`hatch_modelpack.inspection`, printing what :mod:`hatch_modelpack.cli_render` makes of their rows.

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

from hatch_modelpack.cli_render import (
    render_diff,
    render_inspect,
    render_list,
    render_signed,
    render_verify,
    table,
    verify_failure,
    verify_summary,
)
from hatch_modelpack.inspection import INSTALL_HINT, MISSING, diff_sources, verify_source, version_findings
from hatch_modelpack.sources import PROG, CLIError, list_installed, open_target

# -- reading commands ------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    src = open_target(args.target)
    if args.json:
        print(json.dumps(src.as_json(), indent=2, sort_keys=True))
    else:
        print(render_inspect(src))
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
        print(render_verify(results, versions))
    if bad:
        print(f"{PROG}: {verify_failure(src, bad)}", file=sys.stderr)
        return 1
    if not args.json:
        print(verify_summary(src, results, versions))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    items = list_installed()
    if args.json:
        print(json.dumps(items, indent=2, sort_keys=True))
    elif not items:
        print(f"no model packages installed in {sys.prefix}")
    else:
        print(render_list(items))
    return 0


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


# -- sign: needs cryptography, imported only here ---------------------------------------------------


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
    print(render_signed(done))
    print(f"signed {len(done)} model(s) in {args.output or args.wheel}")
    return 0


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
