"""Compiling a scan's points with the background compiled once (SampleCache) changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from hfpipe import spec
from hfpipe.model import Numbers, SampleCache, compile_workspace


@pytest.mark.parametrize(("analysis", "every"), [("atlas-3l-erjr", 1), ("atlas-1lbb", 10)])
def test_reused_background_compiles_bit_for_bit(load_analysis, analysis, every):
    """Every 3L-eRJR point and every tenth 1Lbb point: the structure is equal and every
    array the same bytes as compiling each sample afresh."""
    ws, ps, _ = load_analysis(analysis)
    base = spec.PatchBase.of(ws)
    cache = SampleCache(base.workspace)
    for patch in list(ps)[::every]:
        patched = spec.apply_patches(base, [patch])
        measurement = spec.find_measurement(patched)
        structure, numbers = compile_workspace(patched, measurement, cache=cache)
        expected_structure, expected_numbers = compile_workspace(patched, measurement)
        assert structure == expected_structure
        for name, array, expected in zip(Numbers._fields, numbers, expected_numbers, strict=True):
            assert isinstance(array, np.ndarray), name
            assert array.dtype == expected.dtype, name
            assert array.shape == expected.shape, name
            assert array.tobytes() == expected.tobytes(), name
    _assert_reused(cache, base.workspace, patched)


def _assert_reused(cache: SampleCache, background: dict, patched: dict) -> None:
    """The background's samples come from the cache (the same object every time), the
    patch's own are compiled anew."""
    samples = [sample for channel in patched["channels"] for sample in channel["samples"]]
    ids = {id(s) for channel in background["channels"] for s in channel["samples"]}
    reused = [s for s in samples if id(s) in ids]
    new = [s for s in samples if id(s) not in ids]
    assert reused and new
    assert all(cache.get(sample) is cache.get(sample) for sample in reused)
    assert all(cache.get(sample) is not cache.get(sample) for sample in new)


def test_cache_ignores_a_sample_that_only_looks_alike():
    """Identity, not equality: an equal copy of a cached sample is compiled anew."""
    sample = {
        "name": "b",
        "data": [1.0],
        "modifiers": [{"name": "n", "type": "normfactor", "data": None}],
    }
    workspace = {"channels": [{"name": "c", "samples": [sample]}]}
    cache = SampleCache(workspace)
    assert cache.get(sample) is cache.get(sample)
    twin = {**sample}
    assert cache.get(twin) is not cache.get(sample)
