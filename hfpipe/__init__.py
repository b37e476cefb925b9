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

from hfpipe._lazy import lazy_names

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

__getattr__, __dir__ = lazy_names(__name__, dict.fromkeys(set(__all__) - {"__version__"}, "api"))
