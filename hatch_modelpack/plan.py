"""The build plan: what a wheel gets, decided once from an :class:`~hatch_modelpack.analysis.Analysis`.

The build hook only carries the plan out: it writes the generated files for hatchling to include and
hands the artifacts to :mod:`hatch_modelpack.wheel_writer` in ``finalize``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from hatch_modelpack.analysis import Analysis
from hatch_modelpack.contract import DATA_DIR, EDITABLE_PREFIX, LOADER_FILES, MANIFEST_NAME
from hatch_modelpack.manifest import build_manifest, check_archive_paths, dumps
from hatch_modelpack.signing import ship_signatures
from hatch_modelpack.wheel_writer import Artifact, choose_compression


@dataclass(frozen=True)
class GeneratedFile:
    """A file the build writes (never into the source tree) and the wheel ships at ``arcname``."""

    arcname: str
    content: bytes


@dataclass(frozen=True)
class BuildPlan:
    manifest: dict[str, Any]
    generated: tuple[GeneratedFile, ...]
    #: Project files that ship as they are (the smoke checks' examples): source -> archive path.
    included: dict[str, str]
    #: What the wheel writer adds to the finished wheel; empty for editable wheels, which point at the sources.
    artifacts: tuple[Artifact, ...]


def runtime_file(name: str) -> bytes:
    """One of the files in :mod:`hatch_modelpack.runtime`, as it ships in model wheels."""
    return files("hatch_modelpack.runtime").joinpath(name).read_bytes()


def plan_wheel(
    analysis: Analysis,
    *,
    distribution: str,
    version: str,
    editable_root: Path | None,
    user_package: bool,
) -> BuildPlan:
    """The wheel's plan. ``editable_root``: the project root for ``pip install -e`` (the manifest points
    there); ``user_package``: the project has its own ``<package>/__init__.py`` (none is generated)."""
    pack = analysis.pack
    package = pack.package
    manifest = build_manifest(
        pack, analysis.hash_files().models, distribution=distribution, version=version, editable_root=editable_root
    )
    # Shipped signatures are checked against the manifest's digests and recorded in it before it is written.
    signatures = ship_signatures(pack, manifest, editable=editable_root is not None)
    generated = [
        GeneratedFile(f"{package}/{shipped}", runtime_file(source)) for shipped, source in LOADER_FILES.items()
    ]
    generated.append(GeneratedFile(f"{package}/{MANIFEST_NAME}", dumps(manifest).encode()))
    if not user_package:
        generated.append(GeneratedFile(f"{package}/__init__.py", runtime_file("package_init.py")))
    if editable_root is not None:
        if user_package:
            # The source package shadows site-packages; an import hook serves the loader's modules.
            finder = f"{EDITABLE_PREFIX}{package}"
            generated.append(GeneratedFile(f"{finder}.py", runtime_file("editable.py")))
            generated.append(GeneratedFile(f"{finder}.pth", f"import {finder}\n".encode()))
        return BuildPlan(manifest, tuple(generated), {}, ())
    artifacts = []
    included: dict[str, str] = dict(signatures)
    for packed in analysis.models:
        mode = packed.config.compression or pack.compression
        for f in packed.files:
            arcname = f"{package}/{DATA_DIR}/{packed.name}/{f.path}"
            artifacts.append(Artifact(arcname, f.source, choose_compression(f.source, mode), f.sha256, f.fingerprint))
        check = packed.config.check
        if check is not None:
            paths = check_archive_paths(packed.config)
            included.update({str(src): f"{package}/{paths[role]}" for role, src in check.files().items()})
    return BuildPlan(manifest, tuple(generated), included, tuple(artifacts))


def sdist_includes(analysis: Analysis) -> dict[str, str]:
    """Artifacts and check examples mapped onto their own paths, so git-ignored ones travel in the sdist.

    Hatchling skips project files at reserved paths, so they do not ship twice.
    """
    root = os.path.realpath(analysis.pack.root)
    out = {}
    for m in analysis.pack.models:
        sources = [m.source, *(m.check.files().values() if m.check is not None else ())]
        if m.signature is not None:
            sources.append(m.signature)
        out.update({str(src): src.relative_to(root).as_posix() for src in sources})
    return out
