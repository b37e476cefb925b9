"""hfpipe's one global JAX switch: double precision.

HistFactory fits need float64 (likelihood differences of 1e-3 on values of ~1e3, and
constraint curvatures up to ~1e11), so importing hfpipe turns on ``jax_enable_x64``.
This is a process-wide JAX setting: code that shares the process with hfpipe also gets
64-bit defaults.
"""

import jax

jax.config.update("jax_enable_x64", True)
