"""MLServer settings for an installed model package, and ``modelpack serve``.

One model-settings file per model of the package: name = the model's name, version = the package's
version (in ``versions[]``, which ``GET /v2/models/NAME`` lists, and ``parameters.version``, which
``/versions/V/infer`` matches), implementation = the runtime in ``hatch_modelpack.serve.runtime``.
The written ``settings.json`` sets ``parallel_workers: 0``: with uvloop >= 0.22 MLServer's parallel
workers die before loading ("no current event loop"), and the runtime loads in a thread anyway so the
health endpoints answer during a slow load. Host and ports are written only for ``modelpack serve``;
``--settings-only`` leaves them to the environment (``MLSERVER_HTTP_PORT`` ..., as KServe sets them),
because values in settings.json would override those variables.

Finding the package reads files only (importlib.metadata and the manifest); it imports nothing from
it, so this module needs neither MLServer nor the model's framework.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

MANIFEST_NAME = "_modelpack.json"
RUNTIME = "hatch_modelpack.serve.runtime.ModelpackRuntime"


class ServeError(Exception):
    """A problem the user can fix (unknown package, MLServer missing); printed as one paragraph."""


def _manifest_in(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ServeError(f"{path}: the model manifest cannot be read ({exc}); reinstall the package") from None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("models"), dict) else None


def find_package(name: str) -> tuple[str, dict[str, Any]]:
    """(import name, manifest) of an installed model package given its import or distribution name."""
    candidates = [name, re.sub(r"[-.]+", "_", name).lower()]
    try:
        dist = importlib_metadata.distribution(name)
    except importlib_metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or []:
            parts = Path(str(f)).parts
            if len(parts) == 2 and parts[1] == MANIFEST_NAME:
                candidates.insert(0, parts[0])
    for candidate in candidates:
        if not candidate.isidentifier():
            continue
        try:
            spec = importlib.util.find_spec(candidate)  # a top-level package: found, not executed
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            manifest = _manifest_in(Path(location))
            if manifest is not None:
                return candidate, manifest
    raise ServeError(
        f"no installed model package named {name!r} in this environment; install the model wheel beside "
        "hatch-modelpack[serve] and pass its distribution or import name (e.g. churn-model or churn_model)"
    )


def model_settings(package: str) -> list[dict[str, Any]]:
    """The model-settings.json content of every model of an installed package."""
    import_name, manifest = find_package(package)
    version = str(manifest.get("version"))
    out = []
    for name, entry in manifest["models"].items():
        out.append(
            {
                "name": name,
                "implementation": RUNTIME,
                "platform": entry.get("format", ""),
                "versions": [version],
                "parameters": {
                    "version": version,
                    "extra": {"package": import_name, "model": name, "distribution": manifest.get("distribution")},
                },
            }
        )
    return out


def write_settings(package: str, directory: Path, server: dict[str, Any] | None = None) -> list[Path]:
    """Write settings.json and one <model>/model-settings.json per model; return the files written."""
    models = model_settings(package)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    settings: dict[str, Any] = {"parallel_workers": 0, **(server or {})}
    path = directory / "settings.json"
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    for m in models:
        model_dir = directory / m["name"]
        model_dir.mkdir(exist_ok=True)
        path = model_dir / "model-settings.json"
        path.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def serve(
    package: str, host: str = "127.0.0.1", port: int = 8080, grpc_port: int = 8081, metrics_port: int = 8082
) -> int:
    """Start MLServer in this process with every model of the package; returns when it stops (SIGTERM)."""
    try:
        from mlserver import MLServer  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from mlserver.cli.serve import load_settings  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from mlserver.logging import configure_logger  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise ServeError('MLServer is not installed here; pip install "hatch-modelpack[serve]"') from None
    find_package(package)  # fail before starting anything
    directory = Path(tempfile.mkdtemp(prefix="modelpack-serve-"))
    try:
        write_settings(
            package, directory, {"host": host, "http_port": port, "grpc_port": grpc_port, "metrics_port": metrics_port}
        )

        async def start() -> None:
            settings, models = await load_settings(str(directory))
            server = MLServer(settings)  # installs SIGINT/SIGTERM handlers that stop it gracefully
            await server.start(models)

        configure_logger()
        asyncio.run(start())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0
