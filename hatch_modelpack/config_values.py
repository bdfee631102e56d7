"""The small validators every modelpack table shares, and how they word a mistake.

Each takes the :class:`Ctx` (which file and table is being read) and the key it validates, and raises
a :class:`~hatch_modelpack.errors.ConfigError` naming the file, the exact key and what to write
instead. :mod:`hatch_modelpack.config` (the hook's table), :mod:`hatch_modelpack.config_check` (the
smoke check's table) and :mod:`hatch_modelpack.metadata_hook` build on them.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from hatch_modelpack.contract import COMPRESSIONS
from hatch_modelpack.errors import ConfigError
from hatch_modelpack.requirements import PIN_POLICIES, check_requirement


class Ctx:
    """Where the settings being validated come from (pyproject.toml and the table), for every message."""

    def __init__(self, root: Path, table: str) -> None:
        self.root = root
        self.table = table
        self.file = root / "pyproject.toml"

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        where = f"[{self.table}]" if not key else f"`{key}` in [{self.table}]"
        return ConfigError(f"{self.file}: {where} {problem}. {fix}")


def did_you_mean(word: str, options: frozenset[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"Did you mean `{close[0]}`?" if close else f"Known keys: {', '.join(sorted(options))}."


def type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def string_list(ctx: Ctx, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ctx.error(
            key,
            f"must be an array of strings, not {type_name(value)}",
            f'Write for example {key.split(".")[-1]} = ["..."].',
        )
    return tuple(value)


def requirements_list(ctx: Ctx, key: str, value: Any) -> tuple[str, ...]:
    reqs = string_list(ctx, key, value)
    for r in reqs:
        problem = check_requirement(r)
        if problem:
            raise ctx.error(
                key,
                f"holds {r!r}, which is not a valid requirement ({problem})",
                'Write requirements as pip does, e.g. "scikit-learn==1.5.2".',
            )
    return reqs


def pin_policy(ctx: Ctx, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in PIN_POLICIES:
        raise ctx.error(key, f"is {value!r}", f"Use one of: {', '.join(repr(p) for p in PIN_POLICIES)}.")
    return str(value)


def allow_globals(ctx: Ctx, key: str, value: Any) -> tuple[str, ...]:
    names = string_list(ctx, key, value)
    for n in names:
        if not re.match(r"^[A-Za-z_][\w.]*\.(\*|[A-Za-z_]\w*)$", n):
            raise ctx.error(
                key,
                f"holds {n!r}, which is not a dotted global name",
                'Write "module.Name" or "module.*", e.g. "churn_features.Ratios".',
            )
    return names


def resolve_path(ctx: Ctx, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ctx.error(
            key,
            f"must be a path string, not {type_name(value)}",
            'Write the artifact\'s path relative to the project root, e.g. "artifacts/model.joblib".',
        )
    if os.path.isabs(value) or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ctx.error(
            key,
            f"is the absolute path {value!r}; artifacts must live inside the project",
            "Copy the artifact into the project (e.g. artifacts/) and give its path relative to the project root.",
        )
    candidate = ctx.root / value
    root_real = Path(os.path.realpath(ctx.root))
    real = Path(os.path.realpath(candidate))
    if real != root_real and root_real not in real.parents:
        lexical = os.path.normpath(os.path.join(str(ctx.root), value))
        via = (
            "through a symbolic link "
            if (lexical == str(root_real) or lexical.startswith(str(ctx.root) + os.sep))
            else ""
        )
        raise ctx.error(
            key,
            f"points {via}outside the project root ({value!r} resolves to {real})",
            "Artifacts ship in the sdist, so they must live inside the project: copy the file into the project instead of linking to it.",
        )
    if not os.path.lexists(candidate):
        raise ctx.error(
            key,
            f"names {value!r}, which does not exist",
            "Train or copy the model there first (paths are relative to the project root), or fix the path.",
        )
    return real


def check_keys(
    ctx: Ctx, key: str, table: dict[str, Any], known: frozenset[str], ignore: frozenset[str] = frozenset()
) -> None:
    for k in table:
        if k not in known and k not in ignore:
            where = f"{key}.{k}" if key else k
            raise ctx.error(where, "is not a setting hatch-modelpack knows", did_you_mean(k, known))


def flag(ctx: Ctx, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ctx.error(
            key,
            f"must be true or false, not {type_name(value)}",
            "Write trust-remote-code = true only for a model whose own code you have reviewed.",
        )
    return value


def compression(ctx: Ctx, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in COMPRESSIONS:
        raise ctx.error(
            key,
            f"is {value!r}",
            f'Use one of: {", ".join(repr(c) for c in COMPRESSIONS)} ("auto" stores artifacts that deflate would not shrink).',
        )
    return str(value)
