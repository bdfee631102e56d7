"""``models.NAME.check``: the opt-in build-time smoke check's table, validated into a :class:`CheckConfig`.

The check itself runs in :mod:`hatch_modelpack.smoke`; here only its settings and example files are
read, with the same wording of mistakes as the rest of the table (:mod:`hatch_modelpack.config_values`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_modelpack.config_values import Ctx, check_keys, resolve_path, type_name

CHECK_KEYS = frozenset({"input", "expected", "tolerance", "method", "timeout"})
EXAMPLE_SUFFIXES = (".npy", ".csv", ".json")
DEFAULT_TOLERANCE = 1e-6
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class CheckConfig:
    """``models.NAME.check``: the opt-in build-time smoke check (run by :mod:`hatch_modelpack.smoke`)."""

    input: str  # as written, relative to the project root
    input_source: Path
    expected: str | None
    expected_source: Path | None
    tolerance: float
    method: str | None  # None: "predict", or an ONNX model's first output
    timeout: float

    def files(self) -> dict[str, Path]:
        out = {"input": self.input_source}
        if self.expected_source is not None:
            out["expected"] = self.expected_source
        return out


def check_config(ctx: Ctx, key: str, value: Any) -> CheckConfig:
    """Validate ``models.NAME.check`` (``key`` is ``models.NAME.check``) into a :class:`CheckConfig`."""
    table = f"[{ctx.table}.{key}]"
    if isinstance(value, str):
        value = {"input": value}
    if not isinstance(value, dict):
        raise ctx.error(
            key,
            f"must be a table, not {type_name(value)}",
            f'Write a {table} table with input = "checks/example.npy".',
        )
    check_keys(ctx, key, value, CHECK_KEYS)
    if "input" not in value:
        raise ctx.error(
            key, "has no `input`", f'Add input = "checks/example.npy" (an .npy, .csv or .json example) to {table}.'
        )
    input_rel, input_source = _example(ctx, key, value, "input")
    expected_rel, expected_source = _example(ctx, key, value, "expected") if "expected" in value else (None, None)
    tolerance = value.get("tolerance", DEFAULT_TOLERANCE)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not math.isfinite(tolerance)
        or tolerance < 0
    ):
        raise ctx.error(
            f"{key}.tolerance",
            f"is {tolerance!r}",
            "Write a non-negative number, e.g. tolerance = 1e-6 (relative and absolute).",
        )
    if "tolerance" in value and expected_rel is None:
        raise ctx.error(
            f"{key}.tolerance",
            "is set, but there is no `expected` output to compare with",
            f'Add expected = "checks/expected.npy" to {table}, or remove tolerance.',
        )
    method = value.get("method")
    if method is not None and (not isinstance(method, str) or not method):
        raise ctx.error(
            f"{key}.method",
            f"is {method!r}",
            'Write the method to call, e.g. method = "predict_proba" (for ONNX: an output name).',
        )
    timeout = value.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ctx.error(
            f"{key}.timeout", f"is {timeout!r}", "Write the seconds the check may take, e.g. timeout = 600."
        )
    return CheckConfig(input_rel, input_source, expected_rel, expected_source, float(tolerance), method, float(timeout))


def _example(ctx: Ctx, key: str, value: dict[str, Any], sub: str) -> tuple[str, Path]:
    raw = value[sub]
    source = resolve_path(ctx, f"{key}.{sub}", raw)
    if not source.is_file() or source.suffix.lower() not in EXAMPLE_SUFFIXES:
        raise ctx.error(
            f"{key}.{sub}",
            f"is {raw!r}, which is not an .npy, .csv or .json file",
            "Save the example with numpy.save(path, array), DataFrame.to_csv(path, index=False) or json.dump.",
        )
    return str(raw), source
