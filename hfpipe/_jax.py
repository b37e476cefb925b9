"""hfpipe's process-wide JAX settings, applied when the engine (hfpipe.model,
hfpipe.infer) is first imported.

* Double precision: HistFactory fits need float64 (likelihood differences of 1e-3 on
  values of ~1e3, constraint curvatures up to ~1e11), so hfpipe turns on
  ``jax_enable_x64``. This is a global JAX switch: code sharing the process with hfpipe
  also gets 64-bit defaults.
* One XLA CPU worker thread. With more, batched Newton fits of large models wedged
  XLA's CPU runtime for good (jax-ml/jax#25861, PyAutoFit #1528/#1530: the call never
  returns, every XLA thread parked; still so with jax 0.10, see docs/performance.md);
  with one thread in XLA's intra-op pool they did not. XLA sizes that pool from the
  CPUs the process may use when its CPU client starts, so the client is started while
  the process is restricted to one CPU, then every thread gets all CPUs back. Several
  processes (Dask workers, batch jobs) use several cores.
* Synchronous CPU dispatch (``jax_cpu_enable_async_dispatch`` off), for the same
  reason (jax-ml/jax#25861); hfpipe blocks on each batch's result anyway.
* A persistent compilation cache (``jax_compilation_cache_dir``): every process that
  fits a model compiles its fits first (seconds), and a scan or a toy run starts many
  processes (Dask workers, batch jobs, ``workers=``) that compile the same code; with
  the cache, all but the first load it. The folder is
  ``$HFPIPE_COMPILATION_CACHE`` (``off`` turns the cache off), by default
  ``~/.cache/hfpipe/xla`` (``$XDG_CACHE_HOME`` is honoured), with one subfolder per
  kind of CPU: compiled CPU code uses the instruction set of the CPU it was compiled
  on, and a cluster's shared home directory serves nodes of several kinds. A cache
  directory the user set for JAX (``JAX_COMPILATION_CACHE_DIR``) is left as it is.
  The cache has a size (:data:`CACHE_MAX_BYTES`, least recently used entries go first):
  only then does JAX take a file lock around every read and write of it, and without
  the lock a process could read an entry that another is still writing (a scan's
  workers compile the same functions at once) and abort deserializing it.
* One compilation of a function across processes: a scan's or a toy run's processes
  start together, with an empty cache all would compile the same fit at once, each
  slower for sharing the cores with the others' compilers. A process that misses the
  cache takes a file lock for that entry, looks again and compiles only if it still
  misses; the others wait, then load what it wrote. A hit takes no lock.

Import hfpipe's engine before running JAX computations, so that these settings apply.
"""

import contextlib
import functools
import hashlib
import inspect
import os
import platform
from pathlib import Path

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


#: Environment variable with the folder of the persistent compilation cache, or "off".
CACHE_VARIABLE = "HFPIPE_COMPILATION_CACHE"
#: The cache's size in bytes (JAX's ``jax_compilation_cache_max_size``), unless the user
#: set one: a sized cache is a locked one (see above); ~100 MB hold every fit of the
#: ATLAS likelihoods hfpipe is tested on.
CACHE_MAX_BYTES = 2 * 1024**3
#: Compilations quicker than this are not written to the cache (JAX's default of 1 s
#: left out small but frequent ones: the toy sampler, the yield checks).
_CACHE_MIN_COMPILE_SECONDS = 0.2


def _cpu_kind() -> str:
    """Name of this machine's kind of CPU: its architecture and a digest of its model
    and instruction-set flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        text = platform.processor()
    keys = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    lines = sorted({line for line in text.splitlines() if line.startswith(keys)})
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return f"{platform.machine()}-{digest}"


def compilation_cache_dir() -> Path | None:
    """The folder of hfpipe's persistent compilation cache, or None when it is off."""
    setting = os.environ.get(CACHE_VARIABLE, "").strip()
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if setting:
        return Path(setting).expanduser() / _cpu_kind()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "hfpipe" / "xla" / _cpu_kind()


def _enable_compilation_cache() -> None:
    if jax.config.jax_compilation_cache_dir:  # the user's own JAX setting
        return
    folder = compilation_cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # e.g. a read-only home directory: compile as without a cache
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:  # else the user's
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _CACHE_MIN_COMPILE_SECONDS)
    if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ:
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


_enable_compilation_cache()


#: Lock files of :func:`_compile_once_across_processes`: cache keys share them by their
#: digest (a bounded number of files; two entries rarely wait for each other).
_COMPILE_LOCKS = 256
#: Seconds a process waits for another's compilation before it compiles too.
_COMPILE_LOCK_TIMEOUT = 300.0


def _compile_lock(cache_key: str):
    """The file lock of compiling ``cache_key``, or None (no local cache folder)."""
    import filelock

    folder = jax.config.jax_compilation_cache_dir
    if not folder or "://" in folder:  # no cache, or one in a remote store
        return None
    slot = int(hashlib.sha256(cache_key.encode()).hexdigest(), 16) % _COMPILE_LOCKS
    locks = Path(folder) / "compiling"
    try:
        locks.mkdir(exist_ok=True)
    except OSError:
        return None
    return filelock.FileLock(locks / f"{slot:03d}.lock", timeout=_COMPILE_LOCK_TIMEOUT)


#: The signatures of JAX's private functions that :func:`_compile_once_across_processes`
#: wraps and calls, as jax 0.10 has them (older releases lack ``executable_devices``)
_COMPILE_AND_WRITE_PARAMETERS = (
    "backend", "computation", "executable_devices", "compile_options", "host_callbacks",
    "module_name", "cache_key",
)  # fmt: skip
_CACHE_READ_PARAMETERS = (
    "module_name", "cache_key", "compile_options", "backend", "executable_devices",
)  # fmt: skip


def _has_parameters(function, names: tuple[str, ...]) -> bool:
    return function is not None and tuple(inspect.signature(function).parameters) == names


def _compile_once_across_processes() -> None:
    """Wrap JAX's compile-on-a-cache-miss so that of the processes that miss an entry at
    once, one compiles and the others load its result (see the module docstring). Where
    JAX's private functions differ from those this was written for (jax 0.10), JAX is
    left as it is: every process compiles, as without this."""
    import filelock
    from jax._src import compiler

    compile_and_write = getattr(compiler, "_compile_and_write_cache", None)
    cache_read = getattr(compiler, "_cache_read", None)
    if not (
        _has_parameters(compile_and_write, _COMPILE_AND_WRITE_PARAMETERS)
        and _has_parameters(cache_read, _CACHE_READ_PARAMETERS)
    ):
        return

    @functools.wraps(compile_and_write)
    def compile_unless_another_has(
        backend, computation, executable_devices, compile_options, host_callbacks,
        module_name, cache_key,
    ):  # fmt: skip
        compile_here = functools.partial(
            compile_and_write, backend, computation, executable_devices, compile_options,
            host_callbacks, module_name, cache_key,
        )  # fmt: skip
        lock = _compile_lock(cache_key)
        if lock is None:
            return compile_here()
        try:
            lock.acquire()
        except (filelock.Timeout, OSError):  # a stuck compiler, or no locks on this file system
            return compile_here()
        try:
            executable, _ = cache_read(
                module_name, cache_key, compile_options, backend, executable_devices
            )
            return executable if executable is not None else compile_here()
        finally:
            lock.release()

    compiler._compile_and_write_cache = compile_unless_another_has


_compile_once_across_processes()
