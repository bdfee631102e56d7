"""Import hook for editable installs of model packages that have their own ``__init__.py``.

An editable install puts the project's source directory on ``sys.path``; the source package then
shadows the generated ``<package>/_modelpack.py`` that the editable wheel installs in site-packages.
hatch-modelpack installs this file as ``_modelpack_editable_<package>.py`` with a ``.pth`` that imports
it: it appends a finder that serves ``<package>._modelpack`` from site-packages when the source tree
does not have it. It uses only the standard library and does nothing under any other module name.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_file_location
from typing import Any, Optional, Sequence

PREFIX = "_modelpack_editable_"
_PACKAGE = __name__[len(PREFIX) :] if __name__.startswith(PREFIX) else ""
_LOADER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), _PACKAGE, "_modelpack.py")


class ModelpackEditableFinder:
    """Finds ``<package>._modelpack`` in site-packages; consulted only after the normal finders."""

    package = _PACKAGE

    @classmethod
    def find_spec(cls, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Optional[ModuleSpec]:
        if cls.package and fullname == cls.package + "._modelpack":
            return spec_from_file_location(fullname, _LOADER_FILE)
        return None


if _PACKAGE and not any(getattr(f, "package", None) == _PACKAGE for f in sys.meta_path):
    sys.meta_path.append(ModelpackEditableFinder)
