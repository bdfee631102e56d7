"""The reviewed allowlist of pickle globals, shipped as data (``allowlist.json``).

It is derived from the real libraries by ``tools/derive_allowlist.py`` and reviewed as a diff; see the
README's security section. Each entry is an exact ``module:qualname`` pair with the uses it is
admitted for: ``call`` (called or instantiated while unpickling), ``value`` (stored; the model may
call it later on data), ``built`` (an object a call of it returned is then modified by the stream).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Allowlist:
    entries: dict[str, frozenset[str]]
    refused: dict[str, str]
    notes: dict[str, str]
    derived_from: dict[str, str]

    def uses(self, key: str) -> frozenset[str] | None:
        """The uses ``module:qualname`` is admitted for, or None when it is not on the list."""
        return self.entries.get(key)

    def top_modules(self) -> frozenset[str]:
        return frozenset(key.split(":", 1)[0].split(".", 1)[0] for key in self.entries)


@functools.cache
def load() -> Allowlist:
    data: dict[str, Any] = json.loads(resources.files("hatch_modelpack").joinpath("allowlist.json").read_text("utf-8"))
    return Allowlist(
        entries={k: frozenset(v) for k, v in data["entries"].items()},
        refused=dict(data.get("refused", {})),
        notes=dict(data.get("notes", {})),
        derived_from=dict(data.get("derived_from", {})),
    )
