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
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from packaging.requirements import Requirement

from hatch_modelpack.analysis import Analysis, analysis_of
from hatch_modelpack.config import PackConfig, applicable_table, load_config
from hatch_modelpack.contract import DATA_DIR, ENTRY_POINT_GROUP, LOADER_FILES, MANIFEST_NAME, SOURCE_RECORD
from hatch_modelpack.errors import ModelpackError
from hatch_modelpack.manifest import dumps, source_info
from hatch_modelpack.plan import plan_wheel, sdist_includes
from hatch_modelpack.smoke import build_requirements, run_checks
from hatch_modelpack.wheel_writer import Artifact, add_artifacts


class ModelpackBuildHook(BuildHookInterface[BuilderConfig]):
    PLUGIN_NAME = "modelpack"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tmp: str | None = None
        # Artifacts written into the finished wheel by finalize() (the build plan's).
        self._pending: tuple[Artifact, ...] = ()

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

        Hatchling calls this before initialize(), with directory="". A config error here is left for
        initialize() to report with its full message.
        """
        if self.target_name != "wheel":
            return []
        try:
            return build_requirements(analysis_of(self._pack()))
        except ModelpackError:
            return []

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        try:
            if self._pending:
                add_artifacts(Path(artifact_path), self._pending)
        except (ModelpackError, OSError) as exc:
            Path(artifact_path).unlink(missing_ok=True)  # a wheel without its artifacts must not remain
            self.app.abort(f"hatch-modelpack: {exc}")
        finally:
            self._pending = ()
            self._cleanup()

    # -- steps -----------------------------------------------------------------------------------

    def _pack(self) -> PackConfig:
        own = self.build_config.target_config.get("hooks", {}).get("modelpack")
        table = applicable_table(self.target_name, own is not None)
        return load_config(self.root, dict(self.config), self.metadata.name, table)

    def _user_package(self, pack: PackConfig) -> Path | None:
        for base in (Path(self.root), Path(self.root) / "src"):
            pkg = base / pack.package
            if (pkg / "__init__.py").is_file():
                for generated in (*LOADER_FILES, MANIFEST_NAME, DATA_DIR):
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
        build_data["force_include"].update(sdist_includes(analysis_of(pack)))
        source = source_info(Path(self.root))
        if source and not (Path(self.root) / SOURCE_RECORD).is_file():
            record = Path(self._make_tmp()) / SOURCE_RECORD
            record.write_text(dumps(source))
            build_data["force_include"][str(record)] = SOURCE_RECORD

    def _wheel(self, pack: PackConfig, version: str, build_data: dict[str, Any]) -> None:
        user_pkg = self._user_package(pack)
        analysis = analysis_of(pack)
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
        run_checks(analysis, self.app.display_info)
        self._add_dependencies(analysis, build_data)
        # Hatchling has no build-data key for entry points; the wheel's entry_points.txt is written from
        # this (cached) mapping, and entry points play no part in dependency resolution.
        self.metadata.core.entry_points.setdefault(ENTRY_POINT_GROUP, {})[pack.package] = f"{pack.package}._modelpack"
        editable = version == "editable"
        plan = plan_wheel(
            analysis,
            distribution=self.metadata.name,
            version=self.metadata.version,
            editable_root=Path(self.root) if editable else None,
            user_package=user_pkg is not None,
        )
        tmp = Path(self._make_tmp())
        mapping = {}
        for i, generated in enumerate(plan.generated):
            path = tmp / str(i) / Path(generated.arcname).name
            path.parent.mkdir()
            path.write_bytes(generated.content)
            mapping[str(path)] = generated.arcname
        if editable:
            build_data["force_include_editable"].update(mapping)
            # Hatchling's file-selection heuristic only counts force_include; without it a project
            # that has no package directory of its own would be refused before the map is used.
            build_data["force_include"].update(mapping)
            return
        # The artifacts stay out of hatchling's file list: it would deflate every byte at level 6 on one
        # core. finalize() adds them to the finished wheel, stored or deflated on all cores, per file.
        self._pending = plan.artifacts
        build_data["force_include"].update({**mapping, **plan.included})

    def _add_dependencies(self, analysis: Analysis, build_data: dict[str, Any]) -> None:
        """Without the metadata hook, the requirements go to METADATA through build data (with a warning).

        With it, they are already the project's dependencies (set from this same analysis); a wheel built
        from an sdist reads them from PKG-INFO, where they are declared and so not missing.
        """
        if "modelpack" in self.metadata.hatch.metadata.hook_config and "dependencies" in self.metadata.dynamic:
            return
        declared = {str(Requirement(d)) for d in self.metadata.core.dependencies}
        missing = [r for r in analysis.requirements if r not in declared]
        if not missing:
            return
        build_data["dependencies"].extend(missing)
        self.app.display_warning(
            _missing_metadata_hook(missing, self.metadata.dynamic, self.metadata.hatch.metadata.hook_config)
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


def _missing_metadata_hook(missing: list[str], dynamic: list[str], hook_config: dict[str, Any]) -> str:
    """What breaks without the metadata hook (checked with each tool), and only the steps still missing."""
    steps = []
    if "dependencies" not in dynamic:
        steps.append(
            'add `dynamic = ["dependencies"]` to [project] (moving your own dependencies into the table below)'
        )
    if "modelpack" not in hook_config:
        steps.append("add an empty [tool.hatch.metadata.hooks.modelpack] table")
    return (
        "hatch-modelpack: the models' requirements ("
        + ", ".join(missing)
        + ") are written to the wheel's METADATA only. Installing the built wheel, and pip or pip-tools "
        "installing this project from source, see them; uv (pip install, pip compile, lock, sync), PDM and "
        "Poetry do not when they install or lock this project from its directory, a path dependency or its "
        "sdist, because they read the static [project] table, prepare_metadata_for_build_wheel or PKG-INFO, "
        "none of which carries them. To fix it, " + " and ".join(steps) + " in pyproject.toml."
    )
