"""Toy fits per second on ATLAS 3L-eRJR ERJR_200p0_100p0 (q~mu, mu = 1): hfpipe's
batched toys against pyhf 0.7.6's ToyCalculator, measured in the same run.

A toy costs two fits (free and POI fixed) in both; "toy fits/s" counts fits. hfpipe is
timed warm (compilation done by a first, untimed run of the same batch shape) over
``--ntoys`` toys per hypothesis (wall and CPU time), with ``--batch-size`` fits side by
side (default: hfpipe's choice for the model, toy_batch_size), in ``--workers`` processes
(default 1; the 2-core figure is ``--workers 2``, whose timing includes starting the
processes and compiling in each). pyhf (numpy + scipy,
its default) runs ``--pyhf-ntoys`` toys per hypothesis; its SLSQP stalls at the start
on this model unless the one shapesys gamma with τ ≈ 1.9e11 is fixed, so it is fixed
for pyhf (as in tests/data/pyhf_toys_3l.py). Prints fits/s for both and the ratio.

By default hfpipe is timed without fit_batch's retries (``--retry`` includes them):
the batched Newton fits are what is measured, and the toys whose fits did not
converge — which ``hfpipe cls`` would retry one by one with MIGRAD — are counted and
printed.

    python benchmarks/toys_vs_pyhf.py [../shared/data] [--ntoys 2000] [--batch-size N]
        [--workers 1] [--pyhf-ntoys 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from pathlib import Path

POINT = "ERJR_200p0_100p0"
STIFF = "shape_mcstat_diboson3LISR_CRISR_obs_cuts"


class _Timer:
    """Wall and CPU time of a block, as toy fits per second. On a shared machine the
    CPU-time rate is the fairer one: both programs run single-threaded here (hfpipe
    turns off XLA's Eigen thread pool). With ``children``, the CPU time of the worker
    processes that ended inside the block counts too."""

    def __init__(self, name: str, fits: int, children: bool = False):
        self.name, self.fits, self.children = name, fits, children

    def _cpu(self) -> float:
        if not self.children:
            return time.process_time()
        return time.process_time() + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall
        cpu = self._cpu() - self.cpu
        self.rates = (self.fits / wall, self.fits / cpu)
        print(
            f"{self.name}: {self.fits} toy fits in {wall:.1f} s wall, {cpu:.1f} s CPU: "
            f"{self.rates[0]:.3g} fits/s (wall), {self.rates[1]:.3g} fits/CPU-s"
        )


def _hfpipe(folder: Path, ntoys: int, batch_size: int, retry: bool, workers: int) -> float:
    from hfpipe import spec
    from hfpipe.infer import FitOptions
    from hfpipe.infer.toys import toy_batch_size, toy_distributions
    from hfpipe.model import compile_model

    workspace = spec.load_workspace(folder / "BkgOnly.json")
    patchset = spec.load_patchset(folder / "patchset.json")
    model = compile_model(workspace, patches=[patchset[POINT]])

    def run(n, seed):
        return toy_distributions(
            model.structure,
            model.numbers,
            1.0,
            ntoys=n,
            seed=seed,
            batch_size=batch_size,
            options=FitOptions(retry=retry),
            workers=workers,
        )

    if batch_size is None:
        batch_size = toy_batch_size(model.structure)
    print(
        f"hfpipe: {model.structure.n_parameters} parameters, {batch_size} fits side by side,"
        f" {workers} process(es)"
    )
    run(2, seed=1)  # compilation
    # two hypotheses, two fits a toy
    with _Timer("hfpipe", 4 * ntoys, children=workers > 1) as timer:
        toys = run(ntoys, seed=0)
    result = toys.cls(max_failed_fraction=1.0)
    print(f"  CLs_obs {result.cls_obs:.4f}, toys with a failed fit: {result.n_failed}")
    return timer.rates


def _pyhf(folder: Path, ntoys: int) -> float:
    import numpy as np
    import pyhf

    warnings.simplefilter("ignore")
    pyhf.set_backend("numpy")
    workspace = pyhf.Workspace(json.loads((folder / "BkgOnly.json").read_text()))
    patchset = pyhf.PatchSet(json.loads((folder / "patchset.json").read_text()))
    patched = pyhf.Workspace(patchset.apply(workspace, POINT))
    model = patched.model()
    fixed = model.config.suggested_fixed()
    for i, name in enumerate(model.config.par_names):
        fixed[i] = fixed[i] or name.startswith(STIFF)
    calculator = pyhf.infer.calculators.ToyCalculator(
        patched.data(model), model, fixed_params=fixed, ntoys=ntoys, track_progress=False
    )
    np.random.seed(0)
    with _Timer("pyhf numpy+scipy", 4 * ntoys) as timer:
        calculator.distributions(1.0)
    return timer.rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "data", nargs="?", type=Path, default=Path(__file__).parents[2] / "shared" / "data"
    )
    parser.add_argument("--ntoys", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--pyhf-ntoys", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="hfpipe worker processes (toy_distributions(workers=...)); their start-up "
        "(import, compilation) is inside the timing",
    )
    parser.add_argument(
        "--retry",
        action="store_true",
        help="time hfpipe with fit_batch's one-by-one MIGRAD retries of failed fits",
    )
    args = parser.parse_args()
    folder = args.data / "atlas-3l-erjr"
    ours = _hfpipe(folder, args.ntoys, args.batch_size, args.retry, args.workers)
    theirs = _pyhf(folder, args.pyhf_ntoys)
    print(f"ratio hfpipe/pyhf: {ours[0] / theirs[0]:.0f} (wall), {ours[1] / theirs[1]:.0f} (CPU)")


if __name__ == "__main__":
    main()
