"""LightGBM models saved with ``Booster.save_model`` (text, ``.txt``).

The file is data: a ``tree`` header (format version, objective, feature names and infos), one
``Tree=N`` block per tree, ``end of trees``, the training parameters and the ``pandas_categorical``
line the Python package appends. The build reads it line by line, checks every tree block against
the header's ``tree_sizes`` (a file cut off inside its trees is refused, as LightGBM would refuse it)
and keeps only the header, the parameters and ``pandas_categorical``.

The file records the model-format version (``version=v4``), not the library's, so the requirement is
a floor: the first LightGBM release that writes (and so reads) that format.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection

#: Model-format version -> the first LightGBM release writing it (src/boosting/gbdt_model_text.cpp's
#: kModelVersion: "v2" from late 2017, "v3" from 2.3.0 (microsoft/LightGBM#2269), "v4" from 4.0.0).
FORMAT_FLOORS: dict[str, str] = {"v2": "2.1.0", "v3": "2.3.0", "v4": "4.0.0"}
FLOOR_SOURCE = (
    "the first LightGBM release writing model format {fmt} (the file records the format, not the library version)"
)
MAX_LINE = 1 << 30
_ABSENT = object()
FIX = "Save the model again with booster.save_model(path) (model.booster_.save_model(path) for the scikit-learn wrapper) and check that the file was copied completely."


class LightGBMError(Exception):
    """The text is not a complete LightGBM model."""


def is_lightgbm_head(head: bytes) -> bool:
    """``tree`` on the first line and a ``version=`` line right after, as ``save_model`` writes."""
    return head.startswith((b"tree\nversion=", b"tree\r\nversion="))


def _lines(f: BinaryIO) -> Iterator[tuple[str, int]]:
    """(line without its end, its size in bytes including the end)."""
    while True:
        raw = f.readline(MAX_LINE)
        if not raw:
            return
        if len(raw) >= MAX_LINE:
            raise LightGBMError("a line longer than 1 GiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LightGBMError("bytes that are not UTF-8 text") from None
        yield text.rstrip("\r\n"), len(raw)


def _int(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LightGBMError(f"{key}={value!r} is not an integer") from None


def _check_tree(index: int, fields: dict[str, str]) -> None:
    """The arrays LightGBM's Tree(const char*) reads must be there, with the lengths num_leaves implies."""
    if "num_leaves" not in fields:
        raise LightGBMError(f"tree {index} has no num_leaves")
    leaves = _int(fields["num_leaves"], "num_leaves")
    if leaves < 1:
        raise LightGBMError(f"tree {index} has num_leaves={leaves}")
    wanted = {"leaf_value": leaves}
    if leaves > 1:
        wanted |= {k: leaves - 1 for k in ("split_feature", "threshold", "decision_type", "left_child", "right_child")}
    for key, n in wanted.items():
        if key not in fields:
            raise LightGBMError(f"tree {index} lacks {key}")
        got = len(fields[key].split())
        if got != n:
            raise LightGBMError(f"tree {index} has {got} values in {key}, expected {n}")


def read_model(f: BinaryIO) -> dict[str, Any]:
    """Header fields, trees counted and checked, parameters and pandas_categorical of a model text."""
    lines = _lines(f)
    first = next(lines, None)
    if first is None or first[0] != "tree":
        raise LightGBMError("it does not start with the `tree` line of a LightGBM model")
    header: dict[str, str] = {}
    pending: tuple[str, int] | None = None
    for text, size in lines:
        if text.startswith("Tree="):
            pending = (text, size)
            break
        if text == "end of trees":
            pending = (text, size)
            break
        if "=" in text:
            key, _, value = text.partition("=")
            header[key] = value
    if "version" not in header:
        raise LightGBMError("the header has no version= line")
    sizes = [_int(s, "tree_sizes") for s in header["tree_sizes"].split()] if "tree_sizes" in header else None
    trees = 0
    fields: dict[str, str] = {}
    block = 0
    ended = False

    def close() -> None:
        if trees:
            _check_tree(trees - 1, fields)
            if sizes is not None and (trees > len(sizes) or block != sizes[trees - 1]):
                expected = sizes[trees - 1] if trees <= len(sizes) else "no"
                raise LightGBMError(f"tree {trees - 1} is {block} bytes, but tree_sizes says {expected}")

    rest: list[tuple[str, int]] = [pending] if pending else []
    for text, size in itertools.chain(rest, lines):  # chain does not close `lines` on break
        if text.startswith("Tree="):
            close()
            if _int(text[5:], "Tree") != trees:
                raise LightGBMError(f"Tree={text[5:]} where tree {trees} was expected")
            trees += 1
            fields, block = {}, size
        elif text == "end of trees":
            close()
            ended = True
            break
        else:
            block += size
            if "=" in text:
                key, _, value = text.partition("=")
                fields[key] = value
    if not ended:
        raise LightGBMError(f"the tree section is cut off after {trees} tree(s): there is no `end of trees` line")
    if sizes is not None and trees != len(sizes):
        raise LightGBMError(f"it holds {trees} trees, but tree_sizes lists {len(sizes)}")
    params: dict[str, str] = {}
    pandas_categorical: Any = _ABSENT
    in_params = False
    for text, _ in lines:
        if text == "parameters:":
            in_params = True
        elif text == "end of parameters":
            in_params = False
        elif in_params and text.startswith("[") and text.endswith("]") and ": " in text:
            key, _, value = text[1:-1].partition(": ")
            params[key] = value
        elif text.startswith("pandas_categorical:"):
            try:
                pandas_categorical = json.loads(text[len("pandas_categorical:") :])
            except ValueError:
                raise LightGBMError("the pandas_categorical line is not JSON") from None
    return {"header": header, "trees": trees, "parameters": params, "pandas_categorical": pandas_categorical}


def _feature_type(info: str) -> str:
    if info == "none":
        return "unused"
    if info.startswith("[") and info.endswith("]"):
        return "numerical"
    return "categorical"


def describe(model: dict[str, Any]) -> dict[str, Any]:
    header = model["header"]
    fmt = header["version"]
    details: dict[str, Any] = {"format_version": fmt, "trees": model["trees"]}
    if "objective" in header:
        details["objective"] = header["objective"]
    for key in ("num_class", "num_tree_per_iteration"):
        if header.get(key, "").isdigit():
            details[key] = int(header[key])
    per_round = details.get("num_tree_per_iteration") or 1
    details["rounds"] = model["trees"] // per_round
    names = header.get("feature_names", "").split()
    infos = header.get("feature_infos", "").split()
    schema: dict[str, Any] = {}
    if header.get("max_feature_idx", "").lstrip("-").isdigit():
        schema["n_features"] = int(header["max_feature_idx"]) + 1
    if names:
        schema["features"] = names
        schema.setdefault("n_features", len(names))
    if infos and len(infos) == len(names):
        schema["feature_types"] = [_feature_type(i) for i in infos]
        details["feature_infos"] = infos
    if schema:
        details["input_schema"] = schema
    if model["pandas_categorical"] is not _ABSENT:  # null: no pandas categories; a list: their values per column
        details["pandas_categorical"] = model["pandas_categorical"]
    params = model["parameters"]
    kept = {
        k: params[k]
        for k in ("boosting", "objective", "num_iterations", "learning_rate", "num_leaves", "categorical_feature")
        if k in params
    }
    if kept:
        details["parameters"] = kept
    return details


def floor(fmt: str) -> tuple[str, str]:
    """(the lowest LightGBM that reads model format ``fmt``, where that floor comes from)."""
    if fmt in FORMAT_FLOORS:
        return FORMAT_FLOORS[fmt], FLOOR_SOURCE.format(fmt=fmt)
    newest = max(FORMAT_FLOORS, key=lambda v: int(v[1:]))
    return FORMAT_FLOORS[newest], (
        f"model format {fmt} is newer than those hatch-modelpack knows; the floor is the newest known format's "
        f"({newest}); set `requires` for a tighter one"
    )


def version_from_text(text: Any) -> str | None:
    """The ``version=`` of a model string embedded in a pickle (``Booster.__getstate__`` keeps the text)."""
    if not isinstance(text, str) or not text.startswith(("tree\nversion=", "tree\r\nversion=")):
        return None
    line = text.split("\n", 2)[1].rstrip("\r")
    return line[len("version=") :] or None


class LightGBMFormat(Format):
    name: ClassVar[str] = "lightgbm"
    suffixes: ClassVar[tuple[str, ...]] = (".txt",)

    def sniff(self, path: Path, head: bytes) -> bool:
        return is_lightgbm_head(head)

    def inspect(self, path: Path, label: str) -> Inspection:
        try:
            with open(path, "rb") as f:
                model = read_model(f)
        except OSError as exc:
            raise ArtifactError(f"{label}: cannot be read ({exc.strerror or exc})") from None
        except LightGBMError as exc:
            raise ArtifactError(
                f"{label}: is not a complete LightGBM model: {exc}; lightgbm.Booster(model_file=...) would refuse it too. {FIX}"
            ) from None
        details = describe(model)
        version, source = floor(details["format_version"])
        details["requirement_source"] = f"lightgbm>={version}: {source}"
        return Inspection(requires=[f"lightgbm>={version}"], frameworks={}, details=details)
