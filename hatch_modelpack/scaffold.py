"""``modelpack init``: a pyproject.toml and README.md that package an existing model artifact.

The artifact is analysed where it is, with the build's own config loader and analysis, so a bad
artifact is refused before anything is written; then it is copied into the project if it lies
outside (artifacts ship in the sdist, so they must live inside the project).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_modelpack import __version__
from hatch_modelpack.analysis import PackedModel, analysis_of
from hatch_modelpack.config import FORMATS, load_config, normalize_package_name
from hatch_modelpack.errors import ModelpackError
from hatch_modelpack.sources import CLIError


@dataclass(frozen=True)
class InitRequest:
    name: str  # the project (distribution) name
    model: str  # the artifact's path as given
    dir: str | None = None
    model_name: str | None = None
    format: str | None = None
    version: str = "0.1.0"
    description: str = ""
    force: bool = False


@dataclass(frozen=True)
class InitResult:
    pyproject: Path
    readme: Path
    copied: Path | None  # where the artifact was copied to, when it lay outside the project
    model: str
    path: str  # the artifact's path relative to the project
    packed: PackedModel


_PROJECT_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def _model_name_from(path: Path) -> str:
    stem = path.name.split(".")[0] if path.is_file() else path.name
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"model_{name}" if name else "model"
    return name


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def render_pyproject(
    name: str, version: str, model: str, rel: str, fmt: str, requires: list[str], description: str, python: str
) -> str:
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
license = "LicenseRef-Proprietary"    # or an SPDX expression such as "MIT"
# The models' run-time requirements are inferred from the artifact at build time by
# hatch-modelpack's metadata hook, so pip and uv see them before building. Inferred now:
{inferred}
dynamic = ["dependencies"]

[tool.hatch.metadata.hooks.modelpack]
# Requirements of your own code go here, next to the inferred ones, e.g. dependencies = ["pandas"].
dependencies = []

[tool.hatch.build.hooks.modelpack]
# package = "{normalize_package_name(name)}"    # the default: the project name, normalised

[tool.hatch.build.hooks.modelpack.models.{model}]
path = {_toml_str(rel)}
format = {_toml_str(fmt)}    # inferred from the file name and its bytes
{desc_line}# metadata = {{ auc = 0.91, training-data = "s3://bucket/path" }}
"""


def render_readme(
    name: str,
    package: str,
    version: str,
    model: str,
    rel: str,
    fmt: str,
    requires: list[str],
    frameworks: dict[str, str],
) -> str:
    reqs = "\n".join(f"- `{r}`" for r in requires) or "- (none inferred)"
    recorded = ", ".join(f"{k} {v}" for k, v in sorted(frameworks.items())) or "none recorded"
    return f"""# {name}

The `{model}` model (`{rel}`, {fmt} format), packaged as a Python wheel with
hatch-modelpack. The model version is the package version ({version}).

Run-time requirements inferred from the artifact (recorded framework versions: {recorded}):

{reqs}

## Build and publish

The build needs hatch-modelpack where your front end can find it (it is not on PyPI yet): your
private index, or a directory of wheels named by `PIP_FIND_LINKS` / `UV_FIND_LINKS` (see
hatch-modelpack's README, "Install").

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


def _analyse(req: InitRequest, root: Path, model_real: Path, model: str, inside: bool) -> PackedModel:
    """Analyse the artifact where it is now, so a bad artifact is refused before anything is written."""
    spec: dict[str, Any] = {"path": model_real.relative_to(root).as_posix() if inside else model_real.name}
    if req.format:
        spec["format"] = req.format
    analysis_root = root if inside else model_real.parent
    try:
        return analysis_of(load_config(analysis_root, {"models": {model: spec}}, req.name)).models[0]
    except ModelpackError as exc:
        # The pyproject.toml these messages name does not exist yet: point at the artifact instead.
        raise CLIError(
            f"cannot package {req.model}: " + str(exc).replace(f"{analysis_root / 'pyproject.toml'}: ", "")
        ) from None


def _copy_in(root: Path, model_real: Path, force: bool) -> Path:
    dest = root / "artifacts" / model_real.name
    if dest.exists() and not force:
        raise CLIError(f"{dest} already exists; pass --force to overwrite it with {model_real}, or point --model at it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if model_real.is_dir():
        shutil.copytree(model_real, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(model_real, dest)
    return dest


def init_project(req: InitRequest) -> InitResult:
    if not _PROJECT_NAME_RE.match(req.name):
        raise CLIError(
            f"{req.name!r} is not a valid project name; use letters, digits, '-', '_' and '.', e.g. churn-model"
        )
    root = Path(req.dir or ".").resolve()
    model_path = Path(req.model).expanduser()
    if not model_path.exists():
        raise CLIError(f"{req.model}: no such file or directory; pass --model the path of the trained artifact")
    targets = [root / "pyproject.toml", root / "README.md"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not req.force:
        raise CLIError(
            f"{', '.join(existing)} already exist(s); pass --force to overwrite, or --dir to write a new project elsewhere"
        )
    if req.format and req.format not in FORMATS:
        raise CLIError(
            f"--format {req.format!r} is not a format hatch-modelpack knows; use one of: {', '.join(FORMATS)}, or leave it out to infer it"
        )
    model_real = model_path.resolve()
    inside = root == model_real or root in model_real.parents
    model = req.model_name or _model_name_from(model_real)
    packed = _analyse(req, root, model_real, model, inside)
    root.mkdir(parents=True, exist_ok=True)
    copied = None if inside else _copy_in(root, model_real, req.force)
    rel = (copied or model_real).relative_to(root).as_posix()
    fmt = packed.format.name
    python = f">={sys.version_info[0]}.{sys.version_info[1]}"
    targets[0].write_text(
        render_pyproject(req.name, req.version, model, rel, fmt, packed.requires, req.description, python),
        encoding="utf-8",
    )
    readme = render_readme(
        req.name,
        normalize_package_name(req.name),
        req.version,
        model,
        rel,
        fmt,
        packed.requires,
        packed.inspection.frameworks,
    )
    targets[1].write_text(readme, encoding="utf-8")
    return InitResult(targets[0], targets[1], copied, model, rel, packed)
