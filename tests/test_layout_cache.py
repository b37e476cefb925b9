"""A process that compiles model after model keeps its compiled code bounded
(hfpipe/model/layout_cache.py): XLA aborts a process whose memory maps reach
``vm.max_map_count``, as the whole test suite's process did after ~1,000 tests."""

from __future__ import annotations

import logging
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hfpipe import api
from hfpipe.infer.lanes import lane_driver
from hfpipe.model import layout_cache
from hfpipe.model.layout_cache import LAYOUTS_KEPT, per_layout, release_compiled_code

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/self/maps")


def memory_maps() -> int:
    with open("/proc/self/maps", "rb") as maps:
        return maps.read().count(b"\n")


def counting_model(n_bins: int) -> dict:
    """One bin more is one layout more: its fits compile anew."""
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "sig",
                        "data": [1.0] * n_bins,
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "bkg",
                        "data": [10.0] * n_bins,
                        "modifiers": [
                            {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [11.0] * n_bins}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


def test_a_cache_keeps_the_most_recently_used_layouts():
    builds = []

    @per_layout
    def build(key):
        builds.append(key)
        return jax.jit(lambda x: x + key)

    for key in range(3 * LAYOUTS_KEPT):
        build(key)(1.0)
    assert build.cache_info().currsize == LAYOUTS_KEPT
    build(3 * LAYOUTS_KEPT - 1)  # recent: reused
    assert len(builds) == 3 * LAYOUTS_KEPT
    build(0)  # long evicted: built again
    assert len(builds) == 3 * LAYOUTS_KEPT + 1


@linux_only
def test_evicted_functions_give_back_their_memory_maps():
    @per_layout
    def build(size):
        return jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + size)

    def compile_layouts(keys):
        before = memory_maps()
        for key in keys:
            build(key)(jnp.ones((key, 3))).block_until_ready()
        return memory_maps() - before

    first = compile_layouts(range(1, LAYOUTS_KEPT + 1))  # all kept
    compile_layouts(range(LAYOUTS_KEPT + 1, 2 * LAYOUTS_KEPT + 1))
    later = compile_layouts(range(2 * LAYOUTS_KEPT + 1, 3 * LAYOUTS_KEPT + 1))
    assert first > 5 * LAYOUTS_KEPT  # each executable holds maps of its own
    assert later < first / 2  # each new one's are mostly those an evicted one gave back


@linux_only
def test_compiled_code_is_released_when_memory_maps_run_low(monkeypatch, caplog):
    workspace = counting_model(2)
    before = api.hypotest(workspace)
    assert lane_driver.cache_info().currsize >= 1
    monkeypatch.setattr(layout_cache, "MAP_SHARE", 0.0)  # any process is "running low"
    monkeypatch.setattr(layout_cache, "_last_count", -np.inf)
    with caplog.at_level(logging.INFO, logger="hfpipe.model.layout_cache"):
        after = api.hypotest(workspace)
    assert "releasing compiled code" in caplog.text
    # everything compiled since the release is this one hypotest's
    assert lane_driver.cache_info().currsize <= 2
    np.testing.assert_array_equal(after.cls_obs, before.cls_obs)
    np.testing.assert_array_equal(after.cls_exp, before.cls_exp)


def test_results_after_a_release_are_the_same():
    workspace = counting_model(3)
    before = api.fit(workspace)
    release_compiled_code()
    assert lane_driver.cache_info().currsize == 0
    after = api.fit(workspace)
    np.testing.assert_array_equal(after.pars, before.pars)
    np.testing.assert_array_equal(after.covariance, before.covariance)


@linux_only
@pytest.mark.slow
def test_fitting_one_likelihood_after_another_keeps_memory_maps_bounded():
    """The engine's own functions (fits, Asimov data, the CLs calculators) of
    LAYOUTS_KEPT layouts and then of four more: once the caches are full, a new layout
    costs less than a quarter of the maps a layout took while they filled. The caches
    start empty: a worker that ran other modules first holds their layouts, and filling
    would then evict them (fewer maps, not more)."""
    release_compiled_code()

    def hypotests(bins):
        before = memory_maps()
        for n_bins in bins:
            api.hypotest(counting_model(n_bins))
        return memory_maps() - before

    filling = hypotests(range(1, LAYOUTS_KEPT + 1)) / LAYOUTS_KEPT
    later = hypotests(range(LAYOUTS_KEPT + 1, LAYOUTS_KEPT + 5)) / 4
    assert later < filling / 4, (later, filling)
