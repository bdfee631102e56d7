"""The smoke check: the packaged example through the model, compared with the packaged output.

``check()`` runs it in a service; the build runs the same function before it writes the wheel.
Part of the loader that ships in every model package beside ``_modelpack.py``: standard library
only (numpy, and pandas for tables, are imported when a check runs), Python 3.8 syntax.
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from typing import Any, Dict

from ._modelpack_errors import CheckError


def _xgboost_input(example: Any, entry: Dict[str, Any]) -> Any:
    """A Booster predicts on a DMatrix: named (and typed) as the model records, unless a frame names them."""
    schema = entry.get("details", {}).get("input_schema", {})
    named = hasattr(example, "columns")
    return import_module("xgboost").DMatrix(
        example,
        feature_names=None if named else schema.get("features"),
        feature_types=None if named else schema.get("feature_types"),
        enable_categorical=True,
    )


def _read_example(file_path: Path, columns: bool) -> Any:
    """An .npy (no pickles), .csv or .json example; a table becomes a DataFrame when pandas is there."""
    np = import_module("numpy")
    suffix = file_path.suffix.lower()
    if suffix == ".npy":
        return np.load(file_path, allow_pickle=False)
    if suffix == ".csv":
        try:
            return import_module("pandas").read_csv(file_path)
        except ImportError:
            import csv

            with open(file_path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            return np.array([[float(v) for v in row] for row in rows[1:]], dtype=float)
    with open(file_path, encoding="utf-8") as f:
        data = json.load(f)
    if columns and (isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], dict))):
        return import_module("pandas").DataFrame(data)  # records or columns: the frame a model was fit on
    return data


def _as_array(value: Any) -> Any:
    np = import_module("numpy")
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value)


def _run_check(model: Any, entry: Dict[str, Any], base: Path) -> Dict[str, Any]:
    """Run the check an entry describes on a loaded model; raise CheckError on drift."""
    np = import_module("numpy")
    spec = entry["check"]
    name, fmt = entry["name"], entry["format"]
    example = _read_example(base / spec["input"]["path"], columns=fmt != "onnx")
    if fmt == "onnx":
        details = entry.get("details", {})
        inputs = details.get("inputs", [])
        # A JSON object names the graph inputs; anything else feeds the first (usually only) input.
        given = example if isinstance(example, dict) else ({inputs[0]["name"]: example} if inputs else {})
        dtypes = {i["name"]: i.get("dtype") for i in inputs}
        feed = {
            k: np.asarray(v, dtype=object if dtypes.get(k) == "string" else dtypes.get(k)) for k, v in given.items()
        }
        outputs = [o["name"] for o in details.get("outputs", [])]
        method = spec.get("method") or (outputs[0] if outputs else None)
        if method not in outputs:
            raise CheckError(
                f"model {name!r}: the check names output {method!r}, but the graph's outputs are {outputs}"
            )
        output = model.run([method], feed)[0]
    elif fmt == "raw":
        raise CheckError(f"model {name!r} is a raw artifact: there is no method to run on an example")
    else:
        method = spec.get("method") or "predict"
        fn = getattr(model, method, None)
        if fn is None:
            raise CheckError(f"model {name!r} ({type(model).__name__}) has no method {method!r} for the check")
        output = fn(_xgboost_input(example, entry) if fmt == "xgboost" else example)
    got = _as_array(output)
    result: Dict[str, Any] = {"name": name, "method": method, "shape": list(got.shape), "compared": False}
    if "expected" not in spec:
        return result
    expected = _as_array(_read_example(base / spec["expected"]["path"], columns=False))
    if got.ndim == 1 and expected.ndim == 2 and expected.shape[1] == 1:
        expected = expected[:, 0]  # a one-column CSV of predictions
    where = f"model {name!r}: {method} on {Path(spec['input']['path']).name}"
    if got.shape != expected.shape:
        raise CheckError(
            f"{where} gives shape {tuple(got.shape)}, but the expected output has shape {tuple(expected.shape)}"
        )
    tol = float(spec.get("tolerance", 1e-6))
    if got.dtype.kind in "biuf" and expected.dtype.kind in "biuf":
        a, b = got.astype(np.float64), expected.astype(np.float64)
        bad = ~np.isclose(a, b, rtol=tol, atol=tol, equal_nan=True)
        diff = np.abs(a - b)
        result["max_abs_diff"] = float(np.nanmax(diff)) if diff.size else 0.0
    else:
        bad = got.astype(str) != expected.astype(str)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        g, e = got[first], expected[first]
        g, e = (g.item() if hasattr(g, "item") else g), (e.item() if hasattr(e, "item") else e)
        diff = f"max abs diff {result['max_abs_diff']:.3g}; " if "max_abs_diff" in result else ""
        raise CheckError(
            f"{where} drifted from the expected output: {int(bad.sum())} of {bad.size} values differ beyond "
            f"tolerance {tol:g} ({diff}first at index {first}: got {g!r}, expected {e!r})"
        )
    result["compared"] = True
    return result
