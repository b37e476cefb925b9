"""hfpipe: large-scale HistFactory limit scans with a batched JAX engine.

The public functions (:mod:`hfpipe.api`) are attributes of this package, imported on
first use: ``hfpipe.scan(workspace, patchset)``, ``hfpipe.hypotest(...)``,
``hfpipe.upper_limits(...)``, ``hfpipe.fit(...)``, ``hfpipe.toys(...)``,
``hfpipe.profile(...)``, ``hfpipe.discovery_table(...)``, ``hfpipe.compile_model(...)``.
Importing ``hfpipe`` (or :mod:`hfpipe.spec`, :mod:`hfpipe.results`, :mod:`hfpipe.plot`)
does not import JAX; the engine does, and then sets JAX's process-wide settings (double
precision first; see ``hfpipe._jax``).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "compile_model",
    "discovery_table",
    "fit",
    "hypotest",
    "profile",
    "scan",
    "toys",
    "upper_limits",
]

_API = set(__all__) - {"__version__"}


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("hfpipe.api"), name)
    raise AttributeError(f"module 'hfpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
