"""CPU time of a scan's point preparation on ATLAS 1Lbb (125 points), phase by phase.

Each point is patched (and validated), its measurement found, compiled and its yields
checked, as ``hfpipe.scanning`` does before fitting: the scan's way (the background checked
and compiled once: ``spec.PatchBase`` and ``model.compile.SampleCache``) and, for
comparison, point by point from scratch. CPU time of this process (``time.process_time``),
best of a few passes, so that other work on the machine counts little.
Run: ``python benchmarks/bench_point_preparation.py``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from hfpipe import spec
from hfpipe.model import SampleCache, check_yields, compile_workspace

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas-1lbb"
PHASES = ("patch", "measurement", "compile", "check_yields")


def prepare(base, cache, patches) -> dict[str, float]:
    """CPU seconds per phase over all ``patches``; ``base`` a PatchBase or a workspace."""
    spent = dict.fromkeys(PHASES, 0.0)
    options = {} if isinstance(base, spec.PatchBase) else {"base_valid": True}
    for patch in patches:
        stamps = [time.process_time()]
        patched = spec.apply_patches(base, [patch], **options)
        stamps.append(time.process_time())
        measurement = spec.find_measurement(patched)
        stamps.append(time.process_time())
        structure, numbers = compile_workspace(patched, measurement, cache=cache)
        stamps.append(time.process_time())
        check_yields(structure, numbers, workspace=patched)
        stamps.append(time.process_time())
        for phase, begin, end in zip(PHASES, stamps, stamps[1:], strict=False):
            spent[phase] += end - begin
    return spent


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {phase: min(run[phase] for run in runs) for phase in PHASES}


def report(label: str, spent: dict[str, float]) -> None:
    phases = ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in spent.items())
    print(f"{label}: {sum(spent.values()):.2f} s CPU ({phases})")


def main() -> None:
    warnings.simplefilter("ignore")
    ws = spec.load_workspace(DATA / "BkgOnly.json.gz")
    patches = list(spec.load_patchset(DATA / "patchset.json.gz"))
    start = time.process_time()
    base = spec.PatchBase.of(ws)
    cache = SampleCache(base.workspace)
    once = time.process_time() - start
    report(
        f"{len(patches)} points, scan's way (+{once:.2f} s once)",
        best([prepare(base, cache, patches) for _ in range(3)]),
    )
    report(f"{len(patches)} points, from scratch", prepare(ws, None, patches))


if __name__ == "__main__":
    main()
