"""Errors a user can act on.

Every failure caused by the user's input is a :class:`ModelpackError`; the build hook turns it into a
one-paragraph message and a non-zero exit instead of a traceback.
"""

from __future__ import annotations


class ModelpackError(Exception):
    """A problem with the project's models or configuration that the user can fix."""


class ConfigError(ModelpackError):
    """The ``[tool.hatch.build.hooks.modelpack]`` table is wrong."""


class ArtifactError(ModelpackError):
    """A declared artifact is missing, unreadable, or not what its format says."""


class ScanError(ArtifactError):
    """The static pickle scan could not fully understand a stream; it fails closed."""


class WrongFormatError(ScanError):
    """The stream is another format's (a joblib file named .pkl); the message carries the one fix."""


class UnsafePickleError(ArtifactError):
    """The static pickle scan found globals that are dangerous or not allowed."""


class WheelWriteError(ModelpackError):
    """The artifacts cannot be added to the wheel (a clash of paths, a file that changed meanwhile...)."""
