"""Artifact formats behind one small interface; the registry and detection are in ``formats.registry``.

A format knows three things at build time: whether some bytes are its own (``sniff``), what an
artifact needs to load (``inspect``: requirements, recorded framework versions, scan results), and
whether it is a file or a directory. Loading lives in the generated loader, which must not import
this package. Format modules import this interface; the registry imports the format modules, so
nothing here imports them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hatch_modelpack.scanning import Global


@dataclass
class Inspection:
    """What the build learned about an artifact without loading it."""

    requires: list[str]  # unpinned or format-constrained requirements
    frameworks: dict[str, str] = field(default_factory=dict)  # distribution -> version recorded in the artifact
    details: dict[str, Any] = field(default_factory=dict)  # format-specific manifest entries
    globals: set[Global] | None = None  # for pickle-based formats: what unpickling imports
    uses: dict[Global, set[str]] = field(
        default_factory=dict
    )  # how the stream uses each global (the policy checks each use)


class Format:
    """One artifact format. Subclasses are stateless; instances live in ``formats.registry.FORMATS``."""

    name: ClassVar[str]
    directory: ClassVar[bool] = False
    directory_too: ClassVar[bool] = False  # a file format that also takes a directory (sharded safetensors)
    suffixes: ClassVar[tuple[str, ...]] = ()

    def sniff(self, path: Path, head: bytes) -> bool:
        """Whether the artifact's first bytes (or directory layout) belong to this format."""
        raise NotImplementedError

    def inspect(self, path: Path, label: str) -> Inspection:
        """Read what loading needs, statically. ``label`` names the artifact in errors."""
        raise NotImplementedError

    def review(self, inspection: Inspection, model: Any, pack: Any, label: str, key: str) -> None:
        """Apply a format's own exact globals policy (the torch family) before the general one.

        A format that reviews its globals itself clears ``inspection.globals`` afterwards; the default
        leaves them to the general pickle policy.
        """
