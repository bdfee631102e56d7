"""TorchScript archives (``torch.jit.save``): pickles scanned, code and tensors recorded, loaded with ``torch.jit.load``.

A TorchScript zip holds the module's compiled code (``code/``), its attributes (``data.pkl``) and
constants (``constants.pkl``). TorchScript's own unpickler reads those pickles and resolves
``__torch__.*`` names to classes compiled from ``code/``, never to Python modules; the scan still
refuses any other global outside the ``torch.load(weights_only=True)`` set and TorchScript's list
helpers. The archive records its file format version, not the PyTorch that wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats._torch_archive import (
    MAX_PICKLE,
    ZIP_FORMAT_FLOOR,
    ZIP_MAGIC,
    archive_kind,
    class_methods,
    collect_tensors,
    read_archive,
    read_record,
    review_globals,
    scan_pickle,
)
from hatch_modelpack.scanning import Call, Global

FIX = "Save it again with torch.jit.save(torch.jit.script(model), path) and check the file is complete."
#: What TorchScript's unpickler resolves besides the weights_only set (torch/jit/_pickle.py).
JIT_GLOBALS = frozenset(
    ("torch.jit._pickle", n)
    for n in (
        "build_intlist",
        "build_tensorlist",
        "build_doublelist",
        "build_boollist",
        "build_complexlist",
        "build_tensor_from_id",
        "restore_type_tag",
    )
)
MAX_CODE = 16 << 20


class TorchScriptFormat(Format):
    name: ClassVar[str] = "torchscript"
    suffixes: ClassVar[tuple[str, ...]] = (".pt", ".pth", ".ptl", ".torchscript")

    def sniff(self, path: Path, head: bytes) -> bool:
        return head.startswith(ZIP_MAGIC) and archive_kind(path) == "torchscript"

    def inspect(self, path: Path, label: str) -> Inspection:
        archive = read_archive(path, label, FIX)
        globals_: set[Global] = set()
        details: dict[str, Any] = {"archive": archive.prefix}
        root: Any = None
        for record in ("data.pkl", "constants.pkl"):
            result = scan_pickle(
                read_record(archive, record, label, MAX_PICKLE, FIX), f"{label} ({archive.prefix}/{record})", FIX
            )
            globals_ |= result.globals
            if record == "data.pkl":
                root = result.root
                details.update(collect_tensors(root, archive, label, FIX).details())
        for record in ("version", ".data/version", "byteorder"):
            info = archive.records.get(record)
            if info is not None and info.file_size <= 64:
                details[record.replace(".data/", "data_")] = (
                    read_record(archive, record, label, 64, FIX).decode("ascii", "replace").strip()
                )
        if isinstance(root, Call) and root.func.module.startswith("__torch__"):
            details["class"] = str(root.func)
            code_file = "code/" + root.func.module.replace(".", "/") + ".py"
            if code_file in archive.records:
                code = read_record(archive, code_file, label, MAX_CODE, FIX).decode("utf-8", "replace")
                details["methods"] = class_methods(code, root.func.name)
        details["code_files"] = sorted(r for r in archive.records if r.startswith("code/") and r.endswith(".py"))
        extra = sorted(r[len("extra/") :] for r in archive.records if r.startswith("extra/"))
        if extra:
            details["extra_files"] = extra
        details["requirement_note"] = (
            f"TorchScript archives record their file format version, not the PyTorch that wrote them; "
            f"torch>={ZIP_FORMAT_FLOOR} is the floor assumed"
        )
        details["globals"] = sorted(str(g) for g in globals_)
        return Inspection(requires=[f"torch>={ZIP_FORMAT_FLOOR}"], details=details, globals=globals_)

    def review(self, inspection: Inspection, model: Any, pack: Any, label: str, key: str) -> None:
        allow = (*pack.allow_globals, *model.allow_globals)
        review_globals(
            inspection.globals or set(),
            pack.package,
            allow,
            label,
            key,
            extra=JIT_GLOBALS,
            extra_prefixes=("__torch__",),
        )
        inspection.globals = None
