"""hfpipe: large-scale HistFactory limit scans with a batched JAX engine.

Importing hfpipe switches JAX to double precision (``jax_enable_x64``), a global JAX
setting; see ``hfpipe._jax``.
"""

from hfpipe import _jax  # noqa: F401
from hfpipe.infer.toys import toys as toys  # the public API: hfpipe.toys(...)

__version__ = "0.1.0"
