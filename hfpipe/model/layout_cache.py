"""The cache of compiled functions, one entry per (layout, settings), and the limits
that keep a long-lived process alive while it compiles model after model.

Every compiled XLA CPU executable holds memory maps of its own (about twenty: code,
constants, stubs), and Linux lets a process hold at most ``vm.max_map_count`` of them
(65,530 by default). A process that compiles the fits of many likelihoods — a service,
a Dask worker of a reinterpretation campaign, a test session — would otherwise run
into that limit, and XLA then aborts the process (SIGABRT or SIGSEGV while compiling,
loading or serializing an executable) instead of raising an error. Two rules prevent
that:

* Each cache keeps the functions of the :data:`LAYOUTS_KEPT` most recently used
  (layout, settings) keys; the older ones are let go, and JAX frees most of their
  memory maps with them.
* JAX's own caches keep a few maps of every executable it ever built, so when the
  process nevertheless holds more than :data:`MAP_SHARE` of its limit, every cache of
  compiled code (these and JAX's) is cleared; what is used again is compiled again, from
  the persistent compilation cache where it holds the code.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path

import jax

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.model.structure import Layout, Structure

__all__ = ["LAYOUTS_KEPT", "MAP_SHARE", "per_layout", "release_compiled_code"]

#: (layout, settings) entries each cache keeps: a scan or a toy run uses one or two
#: layouts, a service or a campaign many, one after another.
LAYOUTS_KEPT = 16
#: Share of ``vm.max_map_count`` beyond which all compiled code is released.
MAP_SHARE = 0.5
#: The memory maps are counted at most this often (seconds; counting reads
#: ``/proc/self/maps``, about a millisecond per thousand maps).
_COUNT_INTERVAL = 1.0

_log = logging.getLogger(__name__)
_caches: list[Callable] = []  # the cache_clear of every per_layout cache
_last_count = -float("inf")  # monotonic time of the last count


def per_layout(build: Callable) -> Callable:
    """Decorate ``build(layout, *settings)``, which builds (jits) the compiled functions
    of one layout, so that they are built once per (layout, settings) and reused by
    every model of that layout: other signal points, toys. The decorated function takes
    a :class:`Structure` or a :class:`Layout`; ``settings`` must be hashable. Its
    ``cache_info()`` counts the builds (misses) and reuses (hits)."""
    cached = functools.lru_cache(maxsize=LAYOUTS_KEPT)(build)
    _caches.append(cached.cache_clear)

    @functools.wraps(build)
    def for_layout(structure: Structure | Layout, *settings):
        layout = structure.layout if isinstance(structure, Structure) else structure
        _release_if_maps_run_low()
        return cached(layout, *settings)

    for_layout.cache_info = cached.cache_info
    return for_layout


def release_compiled_code() -> None:
    """Let go of every compiled function: hfpipe's per-layout caches and JAX's caches.
    Functions used again are compiled again (or loaded from the persistent cache)."""
    for clear in _caches:
        clear()
    jax.clear_caches()
    gc.collect()


def _map_usage() -> float | None:
    """The share of ``vm.max_map_count`` this process holds, or None where the system
    does not tell (not Linux)."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            count = maps.read().count(b"\n")
    except (OSError, ValueError):
        return None
    return count / limit if limit > 0 else None


def _release_if_maps_run_low() -> None:
    global _last_count
    now = time.monotonic()
    if now - _last_count < _COUNT_INTERVAL:
        return
    _last_count = now
    usage = _map_usage()
    if usage is not None and usage > MAP_SHARE:
        _log.info(
            "releasing compiled code: the process holds %.0f%% of its memory maps", 100 * usage
        )
        release_compiled_code()
