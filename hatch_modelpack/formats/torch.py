"""``torch.save`` files (the zip format): the pickle scanned, tensors read from it, loaded with ``torch.load(weights_only=True)``.

The build never unpickles: ``data.pkl`` goes through the static scanner with persistent ids admitted,
every global must be one ``torch.load(weights_only=True)`` admits (or the package's own class, or named
in ``allow-globals``: those the loader admits with ``torch.serialization.safe_globals``), and each tensor's
name, dtype, shape and size come from the symbolic value and the zip's storage records. A torch.save
file records its zip format version but not the PyTorch that wrote it, so the requirement is the
floor the format needs, and the manifest says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.errors import ArtifactError
from hatch_modelpack.formats import Format, Inspection
from hatch_modelpack.formats._torch_archive import (
    LEGACY_MAGIC,
    MAX_PICKLE,
    SAFE_GLOBALS_FLOOR,
    ZIP_FORMAT_FLOOR,
    ZIP_MAGIC,
    archive_kind,
    collect_tensors,
    read_archive,
    read_record,
    review_globals,
    scan_pickle,
    whole_module,
)
from hatch_modelpack.scanning import Call

FIX = "Save it again with torch.save(model.state_dict(), path) (the default zip format) and check the file is complete."
NOTE = (
    f"torch.save files record no PyTorch version (only their zip format version); torch>={ZIP_FORMAT_FLOOR} is the "
    "floor the zip format and torch.load(weights_only=True) need"
)


def inspect_torch_zip(path: Path, label: str, fix: str = FIX) -> Inspection:
    """Shared with ``transformers`` (``pytorch_model.bin``): scan data.pkl, read tensors, keep globals for review."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    if head == LEGACY_MAGIC:
        raise ArtifactError(
            f"{label}: uses PyTorch's legacy serialization (torch.save with _use_new_zipfile_serialization=False, "
            "or PyTorch before 1.6), which torch.load can only read by unpickling it unchecked. Load it once where "
            "you trust it and save it again with torch.save(obj, path) (the default zip format)."
        )
    archive = read_archive(path, label, fix)
    pickle = read_record(archive, "data.pkl", label, MAX_PICKLE, fix)
    result = scan_pickle(pickle, f"{label} ({archive.prefix}/data.pkl)", fix)
    module = whole_module(result.globals)
    if module is not None and isinstance(result.root, Call):
        module = f"{result.root.func}, with {module}"
    if module is not None:
        raise ArtifactError(
            f"{label}: is a whole pickled model or optimizer (it needs the class {module}), which "
            "torch.load(weights_only=True) cannot load and which would run code on load. Save "
            "model.state_dict() instead and rebuild the model in code, or export it with torch.jit.script(model).save(path) "
            "or torch.export.save(torch.export.export(model, args), path)."
        )
    tensors = collect_tensors(result.root, archive, label, fix)
    details: dict[str, Any] = {"archive": archive.prefix, "protocol": result.protocol}
    for record in ("version", ".format_version", "byteorder"):
        if record in archive.records and archive.records[record].file_size <= 64:
            details[record.lstrip(".")] = (
                read_record(archive, record, label, 64, fix).decode("ascii", "replace").strip()
            )
    details.update(tensors.details())
    details["requirement_note"] = NOTE
    details["globals"] = sorted(str(g) for g in result.globals)
    # review() applies the exact torch allowlist and clears `globals`; left set, the general pickle
    # policy would refuse torch's own globals, so skipping review() fails closed.
    return Inspection(requires=[f"torch>={ZIP_FORMAT_FLOOR}"], details=details, globals=set(result.globals))


def review_torch(inspection: Inspection, package: str, allow: tuple[str, ...], label: str, key: str) -> None:
    """Apply the exact allowlist; record the extra globals the loader admits with safe_globals."""
    admitted = review_globals(inspection.globals or set(), package, allow, label, key)
    inspection.globals = None
    if admitted:
        inspection.details["safe_globals"] = admitted
        inspection.requires = [f"torch>={SAFE_GLOBALS_FLOOR}"]


class TorchFormat(Format):
    name: ClassVar[str] = "torch"
    suffixes: ClassVar[tuple[str, ...]] = (".pt", ".pth", ".bin", ".ckpt")

    def sniff(self, path: Path, head: bytes) -> bool:
        if head.startswith(LEGACY_MAGIC):
            return True  # refused by inspect() with the fix
        return head.startswith(ZIP_MAGIC) and archive_kind(path) == "torch"

    def inspect(self, path: Path, label: str) -> Inspection:
        return inspect_torch_zip(path, label)

    def review(self, inspection: Inspection, model: Any, pack: Any, label: str, key: str) -> None:
        review_torch(inspection, pack.package, (*pack.allow_globals, *model.allow_globals), label, key)
