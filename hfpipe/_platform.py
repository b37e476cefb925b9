"""Which device JAX computes on, known without importing JAX where it can only be the CPU.

A scan's main process on a CPU machine only reads inputs, hands points to its worker
processes and writes the table; importing JAX there (a second of CPU) would only delay
starting the workers. What the main process needs to know of the device (the default
batch size, the device named in a row it refused) it learns here: where no accelerator
can be in reach of JAX, the answer is the CPU, and JAX is not imported; elsewhere JAX is
imported (with hfpipe's settings) and asked.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pkgutil
import sys

__all__ = ["backend", "device_kind", "only_cpu_possible"]


def only_cpu_possible() -> bool:
    """True where JAX can only compute on the CPU: ``JAX_PLATFORMS`` names the CPU alone,
    or it is unset and nothing JAX would load an accelerator from is installed (a module
    of the ``jax_plugins`` namespace or a ``jax_plugins`` entry point, which is how the
    CUDA, ROCm and Metal plugins come; libtpu; a plugin named in
    ``PJRT_NAMES_AND_LIBRARY_PATHS``). Where unsure, False."""
    platforms = os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_PLATFORM_NAME")
    if platforms is not None:
        return {p.strip() for p in platforms.split(",") if p.strip()} == {"cpu"}
    if os.environ.get("PJRT_NAMES_AND_LIBRARY_PATHS"):
        return False
    if importlib.util.find_spec("libtpu") is not None:
        return False
    if importlib.metadata.entry_points(group="jax_plugins"):
        return False
    namespace = importlib.util.find_spec("jax_plugins")
    if namespace is None:
        return True
    locations = namespace.submodule_search_locations or []
    return not any(pkgutil.iter_modules(locations))


def _jax():
    import jax

    from hfpipe import _jax  # noqa: F401  (hfpipe's settings before JAX starts a device)

    return jax


def backend() -> str:
    """The platform JAX computes on by default: ``"cpu"``, ``"gpu"``, ``"tpu"``, ..."""
    if "jax" not in sys.modules and only_cpu_possible():
        return "cpu"
    return _jax().default_backend()


def device_kind() -> str:
    """The kind of JAX's first device (``"cpu"``, or e.g. ``"NVIDIA H200"``)."""
    if "jax" not in sys.modules and only_cpu_possible():
        return "cpu"
    devices = _jax().devices()
    return devices[0].device_kind if devices else "cpu"
