"""Compile pyhf workspaces into JAX arrays: a hashable structure plus batched numbers.

The names below are imported on first use. Compiling a workspace into its structure and
numbers is NumPy only, so a process that only prepares and groups points (a scan's main
process) does not load JAX; the modules that compute import it, with hfpipe's settings
(``hfpipe._jax``).
"""

from __future__ import annotations

from hfpipe._lazy import lazy_names

#: public name -> the module of this package that defines it
_HOMES = {
    "Model": "model",
    "Numbers": "structure",
    "ParameterSet": "structure",
    "SampleCache": "compile",
    "Structure": "structure",
    "check_yields": "physical",
    "compile_model": "model",
    "compile_workspace": "compile",
    "compiled_functions": "model",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_names(__name__, _HOMES)
