"""Serve installed model packages with MLServer over the Open Inference Protocol (V2).

Installed with ``pip install "hatch-modelpack[serve]"`` beside a model package; the model wheel itself
keeps no dependency on hatch-modelpack or MLServer. ``settings`` finds a package and writes MLServer's
settings (stdlib only); ``runtime`` is the MLServer runtime those settings name (imports MLServer),
reading requests with ``request`` (inputs and outputs against the signature) and ``tensors`` (V2
tensors to and from numpy); ``schema`` turns a manifest entry into V2 metadata (stdlib only).
"""

from __future__ import annotations

from hatch_modelpack.serve.settings import RUNTIME, ServeError, find_package, model_settings, serve, write_settings

__all__ = ["RUNTIME", "ServeError", "find_package", "model_settings", "serve", "write_settings"]
