"""Input validation cost on ATLAS 1Lbb (10k modifiers): hfpipe versus pyhf, same run.

Times (best of a few): loading and validating the background workspace; patching and
validating signal points, fully, with ``base_valid`` (schema check of the patch values
only) and the scan's way (a ``PatchBase``: also the cross-field rules walk the patch's
samples only); pyhf's own validation of the workspace and of a patched workspace. Run: ``python benchmarks/bench_input_validation.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyhf

from hfpipe import spec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas-1lbb"
POINTS = 5


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    raw = spec.load_json(DATA / "BkgOnly.json.gz")
    ws = spec.load_workspace(raw)
    ps = spec.load_patchset(DATA / "patchset.json.gz")
    patches = list(ps)[:POINTS]

    ours_ws = best(lambda: spec.validate_workspace(raw))
    pyhf_ws = best(lambda: pyhf.Workspace(raw), repeat=1)
    ours_full = best(lambda: [spec.apply_patches(ws, [p]) for p in patches]) / POINTS
    ours_base_valid = (
        best(lambda: [spec.apply_patches(ws, [p], base_valid=True) for p in patches]) / POINTS
    )
    base = spec.PatchBase.of(ws)
    ours_scan = best(lambda: [spec.apply_patches(base, [p]) for p in patches]) / POINTS
    patched = spec.apply_patches(ws, [patches[0]], validate=False)
    pyhf_patched = best(lambda: pyhf.Workspace(patched), repeat=1)

    print(
        f"validate background workspace: hfpipe {ours_ws:.3f} s, pyhf {pyhf_ws:.3f} s, "
        f"ratio {pyhf_ws / ours_ws:.1f}x"
    )
    print(
        f"patch + validate, per point: full {ours_full:.3f} s, base_valid "
        f"{ours_base_valid:.3f} s, scan (PatchBase) {ours_scan:.4f} s, pyhf "
        f"{pyhf_patched:.3f} s, ratio {pyhf_patched / ours_scan:.0f}x"
    )


if __name__ == "__main__":
    main()
