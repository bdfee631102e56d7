"""The opt-in build-time smoke test: load the model, run its example, compare with the expected output.

A model with a ``[tool.hatch.build.hooks.modelpack.models.NAME.check]`` table is loaded at build time
and run on a packaged example; a load error, an exception or output outside the tolerance fails the
build. **This deserialises the artifact** (unpickles it, for pickle and joblib), so it runs only
after the static scan and the safety policy have accepted it, and never in the build process itself:
a subprocess of the build environment's interpreter does the work, with the model's requirements
installed there by the hook's ``dependencies()``.

The example and the expected output ship in the wheel (``<package>/_checks/<name>/``) with their
sha256 in the manifest, and the generated loader's ``check()`` runs the very same comparison
(``loader._run_check``) so a service can prove at start-up that the model it loaded still predicts what
the build saw.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatch_modelpack.errors import ModelpackError

if TYPE_CHECKING:
    from hatch_modelpack.config import Ctx, ModelConfig, PackConfig
    from hatch_modelpack.manifest import PackedModel

CHECK_DIR = "_checks"
CHECK_KEYS = frozenset({"input", "expected", "tolerance", "method", "timeout"})
EXAMPLE_SUFFIXES = (".npy", ".csv", ".json")
DEFAULT_TOLERANCE = 1e-6
DEFAULT_TIMEOUT = 600.0
#: Exit status of the check subprocess when the model ran but its output drifted.
DRIFT_EXIT = 3
_RESULT_PREFIX = "MODELPACK-CHECK-RESULT "


class SmokeCheckError(ModelpackError):
    """The model did not load, raised on its example, or drifted from the expected output."""


@dataclass(frozen=True)
class CheckConfig:
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


# -- configuration -------------------------------------------------------------------------------


def parse_check(ctx: Ctx, key: str, value: Any) -> CheckConfig:
    """Validate ``models.NAME.check`` (``key`` is ``models.NAME.check``) into a :class:`CheckConfig`."""
    from hatch_modelpack.config import _resolve_path, _type_name, check_keys

    table = f"[{ctx.table}.{key}]"
    if isinstance(value, str):
        value = {"input": value}
    if not isinstance(value, dict):
        raise ctx.error(key, f"must be a table, not {_type_name(value)}", f'Write a {table} table with input = "checks/example.npy".')
    check_keys(ctx, key, value, CHECK_KEYS)
    if "input" not in value:
        raise ctx.error(key, "has no `input`", f'Add input = "checks/example.npy" (an .npy, .csv or .json example) to {table}.')

    def example(sub: str) -> tuple[str, Path]:
        raw = value[sub]
        source = _resolve_path(ctx, f"{key}.{sub}", raw)
        if not source.is_file() or source.suffix.lower() not in EXAMPLE_SUFFIXES:
            raise ctx.error(
                f"{key}.{sub}",
                f"is {raw!r}, which is not an .npy, .csv or .json file",
                "Save the example with numpy.save(path, array), DataFrame.to_csv(path, index=False) or json.dump.",
            )
        return raw, source

    input_rel, input_source = example("input")
    expected_rel, expected_source = example("expected") if "expected" in value else (None, None)
    tolerance = value.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance < 0:
        raise ctx.error(f"{key}.tolerance", f"is {tolerance!r}", "Write a non-negative number, e.g. tolerance = 1e-6 (relative and absolute).")
    if "tolerance" in value and expected_rel is None:
        raise ctx.error(f"{key}.tolerance", "is set, but there is no `expected` output to compare with", f'Add expected = "checks/expected.npy" to {table}, or remove tolerance.')
    method = value.get("method")
    if method is not None and (not isinstance(method, str) or not method):
        raise ctx.error(f"{key}.method", f"is {method!r}", 'Write the method to call, e.g. method = "predict_proba" (for ONNX: an output name).')
    timeout = value.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ctx.error(f"{key}.timeout", f"is {timeout!r}", "Write the seconds the check may take, e.g. timeout = 600.")
    return CheckConfig(input_rel, input_source, expected_rel, expected_source, float(tolerance), method, float(timeout))


# -- what ships ----------------------------------------------------------------------------------


def check_archive_paths(model: ModelConfig) -> dict[str, str]:
    """role -> path of the check file inside the package (``_checks/<name>/<basename>``)."""
    check = getattr(model, "check", None)
    if check is None:
        return {}
    paths = {role: f"{CHECK_DIR}/{model.name}/{src.name}" for role, src in check.files().items()}
    if len(set(paths.values())) != len(paths):  # input and expected share a basename
        paths = {role: f"{CHECK_DIR}/{model.name}/{role}{src.suffix.lower()}" for role, src in check.files().items()}
    return paths


def check_files(package: str, model: ModelConfig) -> dict[str, str]:
    """``force_include`` entries (source -> archive path) for a model's check files."""
    check = getattr(model, "check", None)
    if check is None:
        return {}
    paths = check_archive_paths(model)
    return {str(src): f"{package}/{paths[role]}" for role, src in check.files().items()}


def check_manifest(model: ModelConfig, editable_root: Path | None = None) -> dict[str, Any] | None:
    """The manifest's ``check`` entry: the files (path relative to the package, size, sha256) and settings.

    In editable installs the paths are relative to the source tree, like the artifacts'.
    """
    from hatch_modelpack.manifest import hash_file

    check = getattr(model, "check", None)
    if check is None:
        return None
    paths = check_archive_paths(model)
    entry: dict[str, Any] = {}
    for role, src in check.files().items():
        size, sha = hash_file(src)
        rel = paths[role] if editable_root is None else src.relative_to(os.path.realpath(editable_root)).as_posix()
        entry[role] = {"path": rel, "size": size, "sha256": sha, "source": getattr(check, role)}
    entry["tolerance"] = check.tolerance
    if check.method is not None:
        entry["method"] = check.method
    return entry


# -- the build environment -----------------------------------------------------------------------


def build_requirements(pack: PackConfig) -> list[str]:
    """What the build environment needs to run the checks: the checked models' run-time requirements.

    For the build hook's ``dependencies()``; empty when no model has a check, so builds without one
    stay as light as before.
    """
    from hatch_modelpack.manifest import analyse
    from hatch_modelpack.requirements import merge

    checked = [m for m in pack.models if getattr(m, "check", None) is not None]
    if not checked:
        return []
    needs: list[str] = ["numpy"]
    for packed in analyse(pack, hash_files=False):
        if packed.config.check is None:
            continue
        needs += packed.requires
        if any(src.suffix.lower() in (".csv", ".json") for src in packed.config.check.files().values()):
            needs.append("pandas")  # tables become DataFrames, the way tabular models were fit
    return merge(needs)


# -- running -------------------------------------------------------------------------------------


def _entry(packed: PackedModel) -> dict[str, Any]:
    """The manifest entry the loader would see, with absolute paths to the sources."""
    from hatch_modelpack.manifest import model_entry

    entry = model_entry(packed, str(packed.config.source))
    check = packed.config.check
    entry["check"] = {role: {"path": str(src)} for role, src in check.files().items()}
    entry["check"]["tolerance"] = check.tolerance
    if check.method is not None:
        entry["check"]["method"] = check.method
    return entry


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child sees exactly the packages the build sees, whichever way the front end set up its
    # environment (a venv, or pip's overlay of prefixes on PYTHONPATH).
    paths = [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH", "")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n    ".join(kept)


def run_check(packed: PackedModel, label: str, key: str) -> dict[str, Any]:
    """Load ``packed`` in a subprocess, run its example, compare; raise SmokeCheckError on any failure.

    Call only after :func:`hatch_modelpack.manifest.analyse` accepted the model: this unpickles it.
    ``label`` names the artifact and ``key`` the config table, for messages.
    """
    check = packed.config.check
    if check is None:
        raise ValueError("model has no check")
    if packed.format.name == "raw":
        raise SmokeCheckError(f"{label}: [{key}.check] is set, but a raw artifact has no method to run. Remove the check table, or package the model in a loadable format.")
    method = check.method or ("the first output" if packed.format.name == "onnx" else "predict")
    with tempfile.TemporaryDirectory(prefix="hatch-modelpack-check-") as tmp:
        spec = Path(tmp) / "check.json"
        spec.write_text(json.dumps({"artifact": str(packed.config.source), "entry": _entry(packed)}), encoding="utf-8")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "hatch_modelpack.smoke", str(spec)],
                cwd=tmp,
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=check.timeout,
            )
        except subprocess.TimeoutExpired:
            raise SmokeCheckError(f"{label}: the smoke check ([{key}.check]) did not finish within {check.timeout:g} s. Use a smaller example, or raise timeout in [{key}.check].") from None
    if proc.returncode == DRIFT_EXIT:
        raise SmokeCheckError(
            f"{label}: the smoke check ([{key}.check]) failed: {proc.stderr.strip().splitlines()[-1]}. The model no longer "
            f"predicts what {check.expected} records: if that is a mistake, package the model that produced it; "
            f"if the change is intended, write the new output to {check.expected} (and review it), or raise `tolerance`."
        )
    if proc.returncode != 0:
        missing = [line for line in proc.stderr.splitlines() if "ModuleNotFoundError" in line]
        hint = (
            "The build environment lacks a framework the model needs: the hook asks the front end for the models' "
            "requirements, but a build without isolation (--no-isolation, a hatch environment) must have them installed."
            if missing
            else f"Check that {check.input} is an input {method} accepts (same columns/shape and dtype as in training)."
        )
        raise SmokeCheckError(
            f"{label}: the smoke check ([{key}.check]) could not run {method} on {check.input}; the subprocess "
            f"exited with status {proc.returncode}:\n    {_tail(proc.stderr)}\n{hint}"
        )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_PREFIX):
            return dict(json.loads(line[len(_RESULT_PREFIX) :]))
    raise SmokeCheckError(f"{label}: the smoke check subprocess printed no result:\n    {_tail(proc.stdout + proc.stderr)}")


def run_checks(pack: PackConfig, models: list[PackedModel], report: Any = None) -> list[dict[str, Any]]:
    """Run every model's check, in declaration order; ``report`` (e.g. ``app.display_info``) gets one line each."""
    results = []
    for packed in models:
        if packed.config.check is None:
            continue
        key = f"{pack.table}.models.{packed.name}"
        result = run_check(packed, f"{packed.config.path} (models.{packed.name})", key)
        if report is not None:
            what = "matches the expected output" if result.get("compared") else "ran (no expected output to compare)"
            diff = f", max abs diff {result['max_abs_diff']:.3g}" if "max_abs_diff" in result else ""
            report(f"hatch-modelpack: smoke check of `{packed.name}`: {result['method']} on {packed.config.check.input} {what}{diff}")
        results.append(result)
    return results


def _main(argv: list[str]) -> int:
    """The subprocess: load with the generated loader's own functions, run the same check as ``check()``."""
    from hatch_modelpack.runtime import loader

    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    entry = spec["entry"]
    artifact = Path(spec["artifact"])
    # The same rule as load(): the bytes the build hashed are the bytes deserialised.
    loader._verify_files(artifact.parent, entry["files"], {})
    model = loader._LOADERS[entry["format"]](artifact, entry, {})
    try:
        result = loader._run_check(model, entry, Path("/"))
    except loader.CheckError as exc:
        print(str(exc), file=sys.stderr)
        return DRIFT_EXIT
    print(_RESULT_PREFIX + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
