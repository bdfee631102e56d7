"""The metadata hook: the models' requirements as the project's dynamic ``dependencies``.

A build hook's ``build_data["dependencies"]`` reaches the wheel's METADATA but not
``prepare_metadata_for_build_wheel``, which pip and uv use to resolve a source tree before building
it. Setting ``dependencies`` from a metadata hook puts the same list everywhere: PKG-INFO, METADATA
and prepared metadata. The user's own requirements move into this hook's ``dependencies`` key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

from hatch_modelpack.analysis import analysis_of
from hatch_modelpack.config import load_config, read_pyproject_table
from hatch_modelpack.config_values import Ctx, check_keys, requirements_list
from hatch_modelpack.errors import ConfigError, ModelpackError
from hatch_modelpack.requirements import merge

METADATA_TABLE = "tool.hatch.metadata.hooks.modelpack"


class ModelpackMetadataHook(MetadataHookInterface):
    PLUGIN_NAME = "modelpack"

    def update(self, metadata: dict[str, Any]) -> None:
        try:
            metadata["dependencies"] = self._dependencies(metadata)
        except ModelpackError as exc:
            # Hatchling gives metadata hooks no app to abort with; exit as app.abort does, without a traceback.
            print(f"hatch-modelpack: {exc}", file=sys.stderr)
            sys.exit(1)

    def _dependencies(self, metadata: dict[str, Any]) -> list[str]:
        ctx = Ctx(Path(self.root), METADATA_TABLE)
        check_keys(ctx, "", self.config, frozenset({"dependencies"}))
        if "dependencies" not in metadata.get("dynamic", []):
            raise ConfigError(
                f"{ctx.file}: [{METADATA_TABLE}] sets the project's dependencies, but `dependencies` is not "
                'listed in [project].dynamic. Add dynamic = ["dependencies"] to [project] and move any '
                f"dependencies from [project] into [{METADATA_TABLE}] dependencies = [...]."
            )
        own = requirements_list(ctx, "dependencies", self.config.get("dependencies", []))
        table, location, _ = read_pyproject_table(self.root)
        pack = load_config(self.root, table, metadata["name"], location)
        return merge([*own, *analysis_of(pack).requirements])
