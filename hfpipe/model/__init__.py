"""Compile pyhf workspaces into JAX arrays: a hashable structure plus batched numbers."""

from hfpipe import _jax  # noqa: F401  (JAX settings before any JAX code runs)
from hfpipe.model.compile import SampleCache, compile_workspace
from hfpipe.model.model import Model, compile_model, compiled_functions
from hfpipe.model.physical import check_yields
from hfpipe.model.structure import Numbers, ParameterSet, Structure

__all__ = [
    "Model",
    "Numbers",
    "ParameterSet",
    "SampleCache",
    "Structure",
    "check_yields",
    "compile_model",
    "compile_workspace",
    "compiled_functions",
]
