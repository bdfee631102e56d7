"""The build hook: models in, artifacts + manifest + loader into the wheel, requirements into METADATA.

For the sdist it only makes sure the artifacts travel (even when git-ignored), after checking
everything the wheel build will check, so a bad model fails before any archive is written. For the
wheel it writes the generated files to a temporary directory (never into the source tree) and maps
them into the package with ``force_include``; the artifacts stay out of hatchling's file list and
``finalize`` writes them into the finished wheel (stored or deflated on all cores, per file, see
``wheel_writer``). Editable wheels get the loader and a manifest that points at the source tree.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from packaging.requirements import Requirement

from hatch_modelpack.config import BUILD_TABLE, PackConfig, load_config
from hatch_modelpack.errors import ModelpackError
from hatch_modelpack.manifest import (
    DATA_DIR,
    LOADER_NAME,
    MANIFEST_NAME,
    SOURCE_RECORD,
    PackedModel,
    analyse,
    build_manifest,
    dumps,
    requirements,
    source_info,
)
from hatch_modelpack.smoke import check_files, run_checks

#: Installed model packages are discoverable through this entry-point group without importing them.
ENTRY_POINT_GROUP = "modelpack.models"

EDITABLE_PREFIX = "_modelpack_editable_"


def _template(name: str) -> bytes:
    return files("hatch_modelpack").joinpath(name).read_bytes()


class ModelpackBuildHook(BuildHookInterface):
    PLUGIN_NAME = "modelpack"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tmp: str | None = None
        # Artifacts written into the finished wheel by finalize(): (archive path, source, "store"|"deflate").
        self._pending: list[tuple[str, Path, str]] = []
        # Archive path -> (sha256 from the manifest, stat fingerprint when it was hashed).
        self._known: dict[str, tuple[str, tuple[int, ...]]] = {}

    # -- hatchling entry points ------------------------------------------------------------------

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        try:
            pack = self._pack()
            if self.target_name == "sdist":
                self._sdist(pack, build_data)
            elif self.target_name == "wheel":
                self._wheel(pack, version, build_data)
            else:
                self.app.display_warning(f"hatch-modelpack: nothing to do for the `{self.target_name}` target")
        except ModelpackError as exc:
            self._cleanup()
            self.app.abort(f"hatch-modelpack: {exc}")

    def dependencies(self) -> list[str]:
        """The checked models' requirements, so the smoke check can load them in the build environment.

        Hatchling calls this before initialize(), with directory="", and skips the hook on ImportError:
        imports stay lazy. A config error here is left for initialize() to report with its full message.
        """
        if self.target_name != "wheel":
            return []
        try:
            from hatch_modelpack.smoke import build_requirements

            return build_requirements(self._pack())
        except ModelpackError:
            return []

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        try:
            if self._pending:
                from hatch_modelpack.wheel_writer import add_artifacts

                expected = {arcname: sha for arcname, (sha, _) in self._known.items()}
                add_artifacts(Path(artifact_path), self._pending, expected_sha256=expected, known=self._known)
        except ModelpackError as exc:
            Path(artifact_path).unlink(missing_ok=True)  # a wheel without its artifacts must not remain
            self.app.abort(f"hatch-modelpack: {exc}")
        finally:
            self._pending, self._known = [], {}
            self._cleanup()

    # -- steps -----------------------------------------------------------------------------------

    def _pack(self) -> PackConfig:
        target_table = f"tool.hatch.build.targets.{self.target_name}.hooks.modelpack"
        own = self.build_config.target_config.get("hooks", {}).get("modelpack")
        table = target_table if own is not None else BUILD_TABLE
        return load_config(self.root, dict(self.config), self.metadata.name, table)

    def _user_package(self, pack: PackConfig) -> Path | None:
        for base in (Path(self.root), Path(self.root) / "src"):
            pkg = base / pack.package
            if (pkg / "__init__.py").is_file():
                for generated in (LOADER_NAME, MANIFEST_NAME, DATA_DIR):
                    if (pkg / generated).exists():
                        raise ModelpackError(
                            f"{pkg / generated}: hatch-modelpack generates this name inside the package "
                            f"`{pack.package}` at build time. Rename or delete your file (imports should use "
                            f"`from {pack.package}._modelpack import load` or the names re-exported by the package)."
                        )
                return pkg
        return None

    def _sdist(self, pack: PackConfig, build_data: dict[str, Any]) -> None:
        # Everything the wheel build will refuse is refused here, before the sdist exists.
        analyse(pack, hash_files=False)
        for m in pack.models:
            # Mapping a file onto its own path keeps git-ignored artifacts in the sdist without
            # shipping them twice: hatchling skips project files at reserved paths.
            build_data["force_include"][str(m.source)] = m.source.relative_to(os.path.realpath(self.root)).as_posix()
            if m.signature is not None:
                build_data["force_include"][str(m.signature)] = m.signature.relative_to(os.path.realpath(self.root)).as_posix()
            if m.check is not None:
                for src in m.check.files().values():
                    build_data["force_include"][str(src)] = src.relative_to(os.path.realpath(self.root)).as_posix()
        source = source_info(Path(self.root))
        if source and not (Path(self.root) / SOURCE_RECORD).is_file():
            record = Path(self._make_tmp()) / SOURCE_RECORD
            record.write_text(dumps(source))
            build_data["force_include"][str(record)] = SOURCE_RECORD

    def _wheel(self, pack: PackConfig, version: str, build_data: dict[str, Any]) -> None:
        user_pkg = self._user_package(pack)
        models = analyse(pack, hash_files=True)
        if user_pkg is not None:
            pkg_real = Path(os.path.realpath(user_pkg))
            inside = [m.path for m in pack.models if pkg_real in m.source.parents]
            if inside:
                self.app.display_warning(
                    f"hatch-modelpack: {', '.join(inside)} lies inside the package directory {user_pkg.name}/, so "
                    f"the wheel carries it twice (as a package file and under {pack.package}/{DATA_DIR}/). Move "
                    "artifacts to a folder outside the package, such as artifacts/."
                )
        # Only now, with the static scan passed, may a check deserialise an artifact (in a subprocess).
        run_checks(pack, models, self.app.display_info)
        self._add_dependencies(models, build_data)
        # Hatchling has no build-data key for entry points; the wheel's entry_points.txt is written from
        # this (cached) mapping, and entry points play no part in dependency resolution.
        self.metadata.core.entry_points.setdefault(ENTRY_POINT_GROUP, {})[pack.package] = f"{pack.package}._modelpack"
        tmp = Path(self._make_tmp())
        editable = version == "editable"
        manifest = build_manifest(
            pack,
            models,
            distribution=self.metadata.name,
            version=self.metadata.version,
            editable_root=Path(self.root) if editable else None,
        )
        shipped: dict[str, str] = {}
        if any(m.signature for m in pack.models):
            from hatch_modelpack.signing import ship_signatures

            shipped = ship_signatures(pack, manifest, editable=editable)
        generated = {LOADER_NAME: _template("loader.py"), MANIFEST_NAME: dumps(manifest).encode()}
        if user_pkg is None:
            generated["__init__.py"] = _template("package_init.py")
        mapping = {}
        for name, content in generated.items():
            (tmp / name).write_bytes(content)
            mapping[str(tmp / name)] = f"{pack.package}/{name}"
        if editable:
            if user_pkg is not None:
                # The source package shadows site-packages; an import hook serves the loader.
                finder = f"{EDITABLE_PREFIX}{pack.package}"
                (tmp / f"{finder}.py").write_bytes(_template("editable.py"))
                (tmp / f"{finder}.pth").write_text(f"import {finder}\n")
                mapping[str(tmp / f"{finder}.py")] = f"{finder}.py"
                mapping[str(tmp / f"{finder}.pth")] = f"{finder}.pth"
            build_data["force_include_editable"].update(mapping)
            # Hatchling's file-selection heuristic only counts force_include; without it a project
            # that has no package directory of its own would be refused before the map is used.
            build_data["force_include"].update(mapping)
            return
        # The artifacts stay out of hatchling's file list: it would deflate every byte at level 6 on one
        # core. finalize() adds them to the finished wheel, stored or deflated on all cores, per file.
        from hatch_modelpack.wheel_writer import choose_compression

        self._pending, self._known = [], {}
        for packed in models:
            mode = packed.config.compression or pack.compression
            for f in packed.files:
                arcname = f"{pack.package}/{DATA_DIR}/{packed.name}/{f.path}"
                self._pending.append((arcname, f.source, choose_compression(f.source, mode)))
                self._known[arcname] = (f.sha256, f.fingerprint)
            mapping.update(check_files(pack.package, packed.config))
        mapping.update(shipped)
        build_data["force_include"].update(mapping)

    def _add_dependencies(self, models: list[PackedModel], build_data: dict[str, Any]) -> None:
        declared = {str(Requirement(d)) for d in self.metadata.core.dependencies}
        missing = [r for r in requirements(models) if r not in declared]
        if not missing:
            return
        build_data["dependencies"].extend(missing)
        self.app.display_warning(
            "hatch-modelpack: the models' requirements ("
            + ", ".join(missing)
            + ") are written to the wheel's METADATA, but tools that read a project's metadata before "
            "building it (pip install ./project, uv pip install ./project) will not see them. Add "
            '`dynamic = ["dependencies"]` to [project] and an empty [tool.hatch.metadata.hooks.modelpack] '
            "table to pyproject.toml (move your own dependencies into that table's `dependencies`)."
        )

    # -- temporary files -------------------------------------------------------------------------

    def _make_tmp(self) -> str:
        self._cleanup()
        self._tmp = tempfile.mkdtemp(prefix="hatch-modelpack-")
        atexit.register(shutil.rmtree, self._tmp, ignore_errors=True)
        return self._tmp

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
