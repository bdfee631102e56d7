"""skops files (``skops.io.dump``): the schema is read at build time, the trust decision recorded once.

A ``.skops`` file is a zip holding ``schema.json`` (a tree of nodes, each naming the ``__module__``
and ``__class__`` it will materialise and the ``__loader__`` that builds it) and the arrays as
``.npy`` members. ``skops.io.load`` refuses any type that is neither trusted by default nor listed in
its ``trusted=`` argument. The build reads the schema (never skops, never the estimators), lists every
type the file names, runs that list through the same policy as pickle globals, and records it in the
manifest; the loader passes it back as ``trusted=``. The trust decision is made when the model is
packaged and reviewed, not by each service, and skops still checks the file against that list.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.requirements import distribution_for_module, is_valid_version
from hatch_modelpack.scanning import Global, one_version, skops_input_schema
from hatch_modelpack.scanning import json_content_of_node as json_content

SCHEMA = "schema.json"
MAX_SCHEMA = 256 << 20  # a forest's schema is a few MB (arrays live in .npy members); refuse to inflate a bomb
#: Loaders whose ``__class__`` is data skops never imports (a JSON literal); any other module is still listed.
_DATA_LOADERS = frozenset({"JsonNode"})


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every node of the schema tree, wherever skops nests them (content, attrs, key_types, shape...).

    The walk visits every dict and list, not just the keys a node type is known to use, so a node
    kind added by a newer skops (or hidden by a crafted file) is still seen. Iterative: a deep file
    cannot exhaust the stack.
    """
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if (
                isinstance(value.get("__module__"), str)
                and isinstance(value.get("__class__"), str)
                and "__loader__" in value
            ):
                yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


#: Loaders that only fetch a name (a function, a type, a bound method) and do not call it while loading.
_VALUE_LOADERS = frozenset({"FunctionNode", "TypeNode", "MethodNode"})


def _types(schema: Any, label: str) -> tuple[dict[Global, set[str]], set[str]]:
    """The types skops would materialise, with how (``call``/``value``), and every recorded scikit-learn version.

    An ObjectNode, ReduceNode or ConstructorFromReduceNode calls (or instantiates) the type it names, so
    the policy admits it only where the reviewed allowlist admits a call.
    """
    uses: dict[Global, set[str]] = {}
    versions: set[str] = set()
    for node in _nodes(schema):
        found: set[Global] = set()
        module, cls, loader = node["__module__"], node["__class__"], node["__loader__"]
        if not module or not cls:
            raise ArtifactError(
                f"{label}: its schema.json names a type with an empty module or class; the file is corrupt or was tampered with. Save the model again with skops.io.dump."
            )
        if not (loader in _DATA_LOADERS and module == "builtins"):
            found.add(Global(module, cls))
        content = node.get("content")
        if loader == "MethodNode" and isinstance(content, dict) and isinstance(content.get("func"), str):
            # skops reviews a bound method as module.Class.method (MethodNode.get_unsafe_set).
            found.add(Global(module, f"{cls}.{content['func']}"))
        if loader == "RandomGeneratorNode" and isinstance(content, dict):
            # skops reviews the bit generator, named by a string inside the state, as numpy.random.<name>.
            try:
                name = json_content(content["bit_generator"]["content"]["bit_generator"])
            except (KeyError, TypeError):
                name = None
            if not isinstance(name, str):
                raise ArtifactError(
                    f"{label}: a numpy Generator in its schema.json does not name its bit generator; the file is corrupt or was tampered with. Save the model again with skops.io.dump."
                )
            found.add(Global("numpy.random", name))
        if loader == "DictNode" and isinstance(content, dict):
            version = json_content(content.get("_sklearn_version"))
            if isinstance(version, str):
                versions.add(version)
        how = {"value"} if loader in _VALUE_LOADERS else {"call", "built", "value"}
        for g in found:
            uses.setdefault(g, set()).update(how)
    return uses, versions


def read_schema(path: Path, label: str) -> dict[str, Any]:
    """``schema.json`` of a skops file, size-checked before it is inflated."""
    fix = "Save the model again with skops.io.dump(model, path) and check that the file was copied completely."
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo(SCHEMA)
            except KeyError:
                raise ArtifactError(f"{label}: is a zip archive without the {SCHEMA} of a skops file. {fix}") from None
            if info.file_size > MAX_SCHEMA:
                raise ArtifactError(
                    f"{label}: its {SCHEMA} claims {info.file_size} bytes, implausibly large for a skops schema. {fix}"
                )
            schema = json.loads(zf.read(SCHEMA))
    except (OSError, zipfile.BadZipFile, ValueError, RecursionError) as exc:
        raise ArtifactError(f"{label}: is not a readable skops file ({exc}). {fix}") from None
    if not isinstance(schema, dict) or "__loader__" not in schema:
        raise ArtifactError(f"{label}: its {SCHEMA} is not a skops schema (no root node). {fix}")
    return schema


class SkopsFormat(Format):
    name: ClassVar[str] = "skops"
    suffixes: ClassVar[tuple[str, ...]] = (".skops",)

    def sniff(self, path: Path, head: bytes) -> bool:
        if not head.startswith(b"PK"):
            return False
        try:
            with zipfile.ZipFile(path) as zf:
                return SCHEMA in zf.namelist()
        except (OSError, zipfile.BadZipFile):
            return False

    def inspect(self, path: Path, label: str) -> Inspection:
        schema = read_schema(path, label)
        uses, versions = _types(schema, label)
        found = set(uses)
        requires = {"skops", "scikit-learn"}
        for g in found:
            dist = distribution_for_module(g.module)
            if dist is not None:
                requires.add(dist)
        frameworks: dict[str, str] = {}
        skops_version = schema.get("_skops_version")
        if isinstance(skops_version, str) and is_valid_version(skops_version):
            frameworks["skops"] = skops_version
        version = one_version(label, "scikit-learn", versions)
        if version is not None and is_valid_version(version):
            frameworks["scikit-learn"] = version
        details: dict[str, Any] = {
            "protocol": schema.get("protocol"),
            "skops_version": skops_version,
            "root": f"{schema.get('__module__')}.{schema.get('__class__')}",
            # What skops.io.load(..., trusted=...) receives: every type the file names, each admitted by the
            # reviewed allowlist (or the package / allow-globals) for the way skops will use it.
            "trusted": sorted(str(g) for g in found),
        }
        input_schema = skops_input_schema(schema)
        if input_schema:
            details["input_schema"] = input_schema
        return Inspection(requires=sorted(requires), frameworks=frameworks, details=details, globals=found, uses=uses)
