"""The opt-in build-time smoke test: load the model, run its example, compare with the expected output.

A model with a ``[tool.hatch.build.hooks.modelpack.models.NAME.check]`` table is loaded at build time
and run on a packaged example; a load error, an exception or output outside the tolerance fails the
build. **This deserialises the artifact** (unpickles it, for pickle and joblib), so it runs only
after the static scan and the safety policy have accepted it, and never in the build process itself:
a subprocess of the build environment's interpreter does the work, with the model's requirements
installed there by the hook's ``dependencies()``.

The example and the expected output ship in the wheel (``<package>/_checks/<name>/``) with their
sha256 in the manifest, and the generated loader's ``check()`` runs the very same comparison
(``_modelpack_check._run_check``) so a service can prove at start-up that the model it loaded still predicts what
the build saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatch_modelpack.analysis import Analysis, PackedModel
from hatch_modelpack.errors import ModelpackError
from hatch_modelpack.manifest import model_entry
from hatch_modelpack.requirements import merge
from hatch_modelpack.runtime import _modelpack_check, _modelpack_formats
from hatch_modelpack.runtime._modelpack_errors import CheckError
from hatch_modelpack.runtime._modelpack_integrity import _verify_files

#: Exit status of the check subprocess when the model ran but its output drifted.
DRIFT_EXIT = 3
_RESULT_PREFIX = "MODELPACK-CHECK-RESULT "


class SmokeCheckError(ModelpackError):
    """The model did not load, raised on its example, or drifted from the expected output."""


# -- the build environment -----------------------------------------------------------------------


def build_requirements(analysis: Analysis) -> list[str]:
    """What the build environment needs to run the checks: the checked models' run-time requirements.

    For the build hook's ``dependencies()``; empty when no model has a check, so builds without one
    stay as light as before.
    """
    checked = [packed for packed in analysis.models if packed.config.check is not None]
    if not checked:
        return []
    needs: list[str] = ["numpy"]
    for packed in checked:
        assert packed.config.check is not None
        needs += packed.requires
        if any(src.suffix.lower() in (".csv", ".json") for src in packed.config.check.files().values()):
            needs.append("pandas")  # tables become DataFrames, the way tabular models were fit
    return merge(needs)


# -- running -------------------------------------------------------------------------------------


def _entry(packed: PackedModel) -> dict[str, Any]:
    """The manifest entry the loader would see, with absolute paths to the sources."""
    entry = model_entry(packed, str(packed.config.source))
    check = packed.config.check
    assert check is not None  # only checked models get here
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

    Call only after :func:`hatch_modelpack.analysis.analysis_of` accepted the model: this unpickles it.
    ``label`` names the artifact and ``key`` the config table, for messages.
    """
    check = packed.config.check
    if check is None:
        raise ValueError("model has no check")
    if packed.format.name == "raw":
        raise SmokeCheckError(
            f"{label}: [{key}.check] is set, but a raw artifact has no method to run. Remove the check table, or package the model in a loadable format."
        )
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
            raise SmokeCheckError(
                f"{label}: the smoke check ([{key}.check]) did not finish within {check.timeout:g} s. Use a smaller example, or raise timeout in [{key}.check]."
            ) from None
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
    raise SmokeCheckError(
        f"{label}: the smoke check subprocess printed no result:\n    {_tail(proc.stdout + proc.stderr)}"
    )


def run_checks(analysis: Analysis, report: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Run every model's check, in declaration order; ``report`` (e.g. ``app.display_info``) gets one line each."""
    results = []
    # The subprocess verifies the digests before it deserialises anything, so they must be known.
    models = analysis.hash_files().models if any(m.config.check is not None for m in analysis.models) else ()
    for packed in models:
        if packed.config.check is None:
            continue
        key = f"{analysis.pack.table}.models.{packed.name}"
        result = run_check(packed, f"{packed.config.path} (models.{packed.name})", key)
        if report is not None:
            what = "matches the expected output" if result.get("compared") else "ran (no expected output to compare)"
            diff = f", max abs diff {result['max_abs_diff']:.3g}" if "max_abs_diff" in result else ""
            report(
                f"hatch-modelpack: smoke check of `{packed.name}`: {result['method']} on {packed.config.check.input} {what}{diff}"
            )
        results.append(result)
    return results


def _main(argv: list[str]) -> int:
    """The subprocess: load with the generated loader's own functions, run the same check as ``check()``."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    entry = spec["entry"]
    artifact = Path(spec["artifact"])
    # The same rule as load(): the bytes the build hashed are the bytes deserialised.
    _verify_files(artifact.parent, entry["files"], {})
    model = _modelpack_formats._LOADERS[entry["format"]](artifact, entry, {})
    try:
        result = _modelpack_check._run_check(model, entry, Path("/"))
    except CheckError as exc:
        print(str(exc), file=sys.stderr)
        return DRIFT_EXIT
    print(_RESULT_PREFIX + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
