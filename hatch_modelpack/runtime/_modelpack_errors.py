"""The errors the model package's loader raises: the bottom layer, imported by every other part.

Part of the loader that ships in every model package (see ``_modelpack.py``, which re-exports these
as the package's public names): standard library only, Python 3.8 syntax.
"""

from __future__ import annotations


class ModelpackLoadError(Exception):
    """Base class for the errors this loader raises."""


class IntegrityError(ModelpackLoadError):
    """An artifact's bytes differ from what the package was built with; nothing was deserialised."""


class VersionMismatchError(ModelpackLoadError):
    """An installed framework version is outside what the artifact was recorded with."""


class UnknownModelError(ModelpackLoadError, KeyError):
    """No model of that name is packaged here."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckError(ModelpackLoadError):
    """The model's output on its packaged example is not the packaged expected output."""
