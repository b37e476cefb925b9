"""hfpipe's process-wide JAX settings.

* Double precision: HistFactory fits need float64 (likelihood differences of 1e-3 on
  values of ~1e3, constraint curvatures up to ~1e11), so importing hfpipe turns on
  ``jax_enable_x64``. This is a global JAX switch: code sharing the process with hfpipe
  also gets 64-bit defaults.
* Single-threaded Eigen on CPU (``--xla_cpu_multi_thread_eigen=false`` in
  ``XLA_FLAGS``, added unless the flag is already set): with XLA's multi-threaded Eigen
  pool, batched (vmapped) Newton fits of ATLAS 1Lbb hung here now and then, every
  XLA worker parked and the result never materialising — the same wedge reported for
  other vmapped CPU workloads (PyAutoFit #1528/#1530), which this flag avoids. hfpipe's
  matrices are ~100 × 100, so the pool brought little. The flag must be set before JAX
  starts its CPU backend: import hfpipe before running JAX computations.
"""

import os

if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()

import jax

jax.config.update("jax_enable_x64", True)
