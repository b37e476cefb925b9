"""hfpipe's process-wide JAX settings.

* Double precision: HistFactory fits need float64 (likelihood differences of 1e-3 on
  values of ~1e3, constraint curvatures up to ~1e11), so importing hfpipe turns on
  ``jax_enable_x64``. This is a global JAX switch: code sharing the process with hfpipe
  also gets 64-bit defaults.
* One XLA CPU worker thread. Batched (vmapped) Newton fits of ATLAS 1Lbb wedged XLA's
  CPU runtime here, again and again on a busy machine: the call never returns, every
  XLA thread parked, no CPU used (the wedge reported in PyAutoFit #1528/#1530 and
  jax-ml/jax#25861). Neither single-threaded Eigen nor synchronous dispatch avoided it,
  and a wedged process cannot run any further XLA call. With a single thread in XLA's
  intra-op pool it did not happen. XLA sizes that pool from the CPUs the process may
  use when its CPU client starts, so importing hfpipe starts the client while the
  process is restricted to one CPU, then gives every thread all CPUs back. Use
  several processes (Dask workers, batch jobs) to use several cores.
* Synchronous CPU dispatch (``jax_cpu_enable_async_dispatch`` off), for the same
  reason (jax-ml/jax#25861); hfpipe blocks on each batch's result anyway.

Import hfpipe before running JAX computations, so that these settings apply.
"""

import contextlib
import os

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)


def _start_cpu_client_with_one_worker() -> None:
    if not hasattr(os, "sched_setaffinity"):  # not Linux: XLA's default pool
        return
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        jax.devices("cpu")  # creates the CPU client and sizes its thread pool
    finally:
        for thread in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(thread), cpus)


_start_cpu_client_with_one_worker()
