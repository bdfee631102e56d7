"""The ``[tool.hatch.build.hooks.modelpack]`` table, validated into typed settings.

Every mistake is reported with the file, the exact key and what to write instead, before any byte of
an artifact is read. The shared validators live in :mod:`hatch_modelpack.config_values`, the smoke
check's table in :mod:`hatch_modelpack.config_check`; :class:`CheckConfig` is importable from here too,
beside the :class:`PackConfig` and :class:`ModelConfig` that hold it.
"""

from __future__ import annotations

import difflib
import json
import keyword
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_modelpack.config_check import CheckConfig, check_config
from hatch_modelpack.config_values import (
    Ctx,
    allow_globals,
    check_keys,
    compression,
    flag,
    pin_policy,
    requirements_list,
    resolve_path,
    type_name,
)
from hatch_modelpack.contract import FORMAT_NAMES
from hatch_modelpack.errors import ConfigError

__all__ = [  # CheckConfig is re-exported: it is part of ModelConfig, and callers import both from here
    "BUILD_TABLE",
    "FORMATS",
    "HATCHLING_KEYS",
    "MODEL_KEYS",
    "NAME_RE",
    "TOP_KEYS",
    "WHEEL_TABLE",
    "CheckConfig",
    "ModelConfig",
    "PackConfig",
    "applicable_table",
    "load_config",
    "normalize_package_name",
    "read_pyproject_table",
    "target_table",
]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FORMATS = FORMAT_NAMES  # the names live in hatch_modelpack.contract, shared with the loader
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

#: Keys hatchling itself reads from every build hook's table; they are not ours to validate.
HATCHLING_KEYS = frozenset(
    {"dependencies", "require-runtime-dependencies", "require-runtime-features", "enable-by-default"}
)
TOP_KEYS = frozenset({"package", "models", "pin", "allow-globals", "compression"})
MODEL_KEYS = frozenset(
    {
        "path",
        "format",
        "default",
        "requires",
        "description",
        "metadata",
        "pin",
        "allow-globals",
        "check",
        "compression",
        "trust-remote-code",
        "signature",
    }
)

BUILD_TABLE = "tool.hatch.build.hooks.modelpack"


def target_table(target: str) -> str:
    return f"tool.hatch.build.targets.{target}.hooks.modelpack"


WHEEL_TABLE = target_table("wheel")


def applicable_table(target: str, target_has_own: bool) -> str:
    """The table a target's build hook reads: its own replaces the global one (hatchling does not merge them)."""
    return target_table(target) if target_has_own else BUILD_TABLE


@dataclass(frozen=True)
class ModelConfig:
    name: str
    path: str  # as written, relative to the project root
    source: Path  # resolved absolute path inside the root
    format: str | None
    default: bool
    requires: tuple[str, ...] | None
    description: str
    metadata: dict[str, Any]
    pin: str | None
    allow_globals: tuple[str, ...]
    check: CheckConfig | None = None  # the opt-in build-time smoke check
    compression: str | None = None  # how the artifact is stored in the wheel; None: the package's setting
    trust_remote_code: bool = False  # transformers: ship and run the directory's own modelling code
    signature: Path | None = None  # a model_signing signature of the artifact, shipped as _models/<name>.sig


@dataclass(frozen=True)
class PackConfig:
    root: Path
    table: str  # where the settings came from, for messages
    package: str
    models: tuple[ModelConfig, ...]
    default: str
    pin: str | None
    allow_globals: tuple[str, ...]
    compression: str = "auto"

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)


def normalize_package_name(project_name: str) -> str:
    """``churn-model`` -> ``churn_model``: the import name a user expects for a project name."""
    return re.sub(r"[-_.]+", "_", project_name).lower()


def _model(ctx: Ctx, name: Any, spec: Any) -> ModelConfig:
    key = f"models.{name}"
    if isinstance(name, str) and NAME_RE.match(name) and keyword.iskeyword(name):
        raise ctx.error(
            key,
            f"names a model {name!r}, which is a Python keyword (model names are identifiers that are not keywords)",
            f'Rename the model, e.g. "{name}_model".',
        )
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.error(
            key,
            f"names a model {name!r}, which is not a lowercase identifier",
            'Model names match [a-z][a-z0-9_]*, e.g. "churn" or "churn_v2".',
        )
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict):
        raise ctx.error(
            key,
            f"must be a path string or a table, not {type_name(spec)}",
            f'Write {name} = "artifacts/{name}.joblib" or a [{ctx.table}.models.{name}] table.',
        )
    check_keys(ctx, key, spec, MODEL_KEYS)
    if "path" not in spec:
        raise ctx.error(key, "has no `path`", f'Add path = "artifacts/{name}.joblib" (relative to the project root).')
    source = resolve_path(ctx, f"{key}.path", spec["path"])
    fmt = spec.get("format")
    if fmt is not None and fmt not in FORMATS:
        hint = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        fix = f"Did you mean {hint[0]!r}? " if hint else ""
        raise ctx.error(
            f"{key}.format",
            f"is {fmt!r}, which is not a format hatch-modelpack knows",
            f"{fix}Use one of: {', '.join(FORMATS)}, or leave it out to infer it.",
        )
    default = spec.get("default", False)
    if not isinstance(default, bool):
        raise ctx.error(
            f"{key}.default",
            f"must be true or false, not {type_name(default)}",
            "Write default = true on the one model load() returns without a name.",
        )
    requires = requirements_list(ctx, f"{key}.requires", spec["requires"]) if "requires" in spec else None
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ctx.error(
            f"{key}.description",
            f"must be a string, not {type_name(description)}",
            'Write description = "what the model predicts".',
        )
    metadata = spec.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ctx.error(
            f"{key}.metadata",
            f"must be a table, not {type_name(metadata)}",
            'Write metadata = { auc = 0.91, training-data = "..." }.',
        )
    return ModelConfig(
        name=name,
        path=spec["path"],
        source=source,
        format=fmt,
        default=default,
        requires=requires,
        description=description,
        metadata=metadata,
        pin=pin_policy(ctx, f"{key}.pin", spec.get("pin")),
        allow_globals=allow_globals(ctx, f"{key}.allow-globals", spec.get("allow-globals", [])),
        check=check_config(ctx, f"{key}.check", spec["check"]) if "check" in spec else None,
        compression=compression(ctx, f"{key}.compression", spec.get("compression")),
        trust_remote_code=flag(ctx, f"{key}.trust-remote-code", spec.get("trust-remote-code", False)),
        signature=resolve_path(ctx, f"{key}.signature", spec["signature"]) if "signature" in spec else None,
    )


#: Validated configs of this process, so the metadata hook, the build hook's steps, the smoke check
#: and `modelpack init` share one (and so one analysis). Only successes are kept.
_CONFIGS: dict[str, PackConfig] = {}


def load_config(root: str | Path, config: dict[str, Any], project_name: str, table: str = BUILD_TABLE) -> PackConfig:
    """Validate the hook's table (as hatchling hands it over) into a :class:`PackConfig`, once per process."""
    # The project name matters only as the default package name; hatchling hands the build hook a
    # normalised one and the metadata hook the one written, so the key uses what they share.
    key = json.dumps(
        [os.fspath(root), table, normalize_package_name(project_name), config], sort_keys=True, default=str
    )
    if key not in _CONFIGS:
        _CONFIGS[key] = _validate(Path(root), config, project_name, table)
    return _CONFIGS[key]


def _validate(root: Path, config: dict[str, Any], project_name: str, table: str) -> PackConfig:
    ctx = Ctx(root, table)
    check_keys(ctx, "", config, TOP_KEYS, HATCHLING_KEYS)
    package = config.get("package", normalize_package_name(project_name))
    if not isinstance(package, str) or not package.isidentifier() or keyword.iskeyword(package):
        raise ctx.error(
            "package",
            f"is {package!r}, which is not a Python import name",
            'Write an identifier such as package = "churn_model" (letters, digits, underscores).',
        )
    models_table = config.get("models")
    if models_table is None:
        raise ctx.error(
            "models",
            "is missing, so there is nothing to package",
            f'Add a [{table}.models] table, e.g. churn = "artifacts/churn.joblib".',
        )
    if not isinstance(models_table, dict):
        raise ctx.error(
            "models",
            f"must be a table, not {type_name(models_table)}",
            f'Write [{table}.models] with lines like churn = "artifacts/churn.joblib".',
        )
    if not models_table:
        raise ctx.error(
            "models", "is empty, so there is nothing to package", 'Add a model, e.g. churn = "artifacts/churn.joblib".'
        )
    models = tuple(_model(ctx, name, spec) for name, spec in models_table.items())
    seen: dict[Path, str] = {}
    for m in models:
        if m.source in seen:
            raise ctx.error(
                f"models.{m.name}.path",
                f"is the same artifact as models.{seen[m.source]}",
                "Declare each artifact once and load it under one name.",
            )
        seen[m.source] = m.name
    defaults = [m.name for m in models if m.default]
    if len(defaults) > 1:
        raise ctx.error(
            "models",
            f"marks several models as default ({', '.join(defaults)})",
            "Keep default = true on exactly one of them.",
        )
    if defaults:
        default = defaults[0]
    elif len(models) == 1:
        default = models[0].name
    else:
        raise ctx.error(
            "models",
            f"declares several models ({', '.join(m.name for m in models)}) and none is the default",
            "Add default = true to the model load() should return without a name.",
        )
    return PackConfig(
        root=Path(root),
        table=table,
        package=package,
        models=models,
        default=default,
        pin=pin_policy(ctx, "pin", config.get("pin")),
        allow_globals=allow_globals(ctx, "allow-globals", config.get("allow-globals", [])),
        compression=compression(ctx, "compression", config.get("compression")) or "auto",
    )


def read_pyproject_table(root: str | Path) -> tuple[dict[str, Any], str, str]:
    """The modelpack table the wheel build will use, its location, and the project name.

    The metadata hook and the CLI read pyproject.toml themselves; a wheel-target table replaces the
    global one, as hatchling does for the build hook.
    """
    path = Path(root) / "pyproject.toml"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc})") from None
    hatch = data.get("tool", {}).get("hatch", {})
    target = hatch.get("build", {}).get("targets", {}).get("wheel", {}).get("hooks", {}).get("modelpack")
    name = data.get("project", {}).get("name", "")
    if target is not None:
        return target, applicable_table("wheel", True), name
    table = hatch.get("build", {}).get("hooks", {}).get("modelpack")
    if table is None:
        raise ConfigError(
            f"{path}: has no [{BUILD_TABLE}] table. Add it with a [{BUILD_TABLE}.models] table naming your artifacts."
        )
    return table, applicable_table("wheel", False), name
