"""Import hook for editable installs of model packages that have their own ``__init__.py``.

An editable install puts the project's source directory on ``sys.path``; the source package then
shadows the generated loader that the editable wheel installs in site-packages: ``<package>/_modelpack.py``
and its private parts ``<package>/_modelpack_*.py``, which it imports relatively. hatch-modelpack
installs this file as ``_modelpack_editable_<package>.py`` with a ``.pth`` that imports it: it appends a
finder that serves those modules from site-packages when the source tree does not have them. It uses
only the standard library and does nothing under any other module name.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_file_location
from typing import Any, Optional, Sequence

PREFIX = "_modelpack_editable_"
#: The loader's module, and the prefix of its private parts (hatch_modelpack.contract.LOADER_FILES).
LOADER = "_modelpack"
_PACKAGE = __name__[len(PREFIX) :] if __name__.startswith(PREFIX) else ""
_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), _PACKAGE)


class ModelpackEditableFinder:
    """Finds ``<package>._modelpack`` and ``<package>._modelpack_*`` in site-packages; consulted only
    after the normal finders."""

    package = _PACKAGE

    @classmethod
    def find_spec(cls, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Optional[ModuleSpec]:
        parent, _, module = fullname.rpartition(".")
        if cls.package and parent == cls.package and (module == LOADER or module.startswith(LOADER + "_")):
            file = os.path.join(_PACKAGE_DIR, module + ".py")
            if os.path.isfile(file):
                return spec_from_file_location(fullname, file)
        return None


if _PACKAGE and not any(getattr(f, "package", None) == _PACKAGE for f in sys.meta_path):
    sys.meta_path.append(ModelpackEditableFinder)
