"""Hatch's plugin registration: one build hook and one metadata hook, both named ``modelpack``."""

from __future__ import annotations

from hatchling.plugin import hookimpl

from hatch_modelpack.build_hook import ModelpackBuildHook
from hatch_modelpack.metadata_hook import ModelpackMetadataHook


@hookimpl
def hatch_register_build_hook() -> type[ModelpackBuildHook]:
    return ModelpackBuildHook


@hookimpl
def hatch_register_metadata_hook() -> type[ModelpackMetadataHook]:
    return ModelpackMetadataHook
