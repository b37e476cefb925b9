"""Toy fits per second on ATLAS 3L-eRJR ERJR_200p0_100p0 (q~mu, mu = 1): hfpipe's
batched toys against pyhf 0.7.6's ToyCalculator, measured in the same run.

A toy costs two fits (free and POI fixed) in both; "toy fits/s" counts fits. hfpipe is
timed warm (compilation done by a first, untimed run of the same batch shape) over
``--ntoys`` toys per hypothesis (wall and CPU time), with ``--batch-size`` fits side by
side (default: hfpipe's choice for the model, toy_batch_size), in ``--workers`` processes
(default 1; the 2-core figure is ``--workers 2``, whose timing includes starting the
processes and compiling in each; a second figure times the same toys on an already
started and compiled pool of ``--workers`` processes, the steady state of a long run).
pyhf (numpy + scipy,
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
import itertools
import json
import os
import resource
import time
import warnings
from pathlib import Path

import numpy as np

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


def _model(folder: Path):
    from hfpipe import spec
    from hfpipe.model import compile_model

    workspace = spec.load_workspace(folder / "BkgOnly.json")
    patchset = spec.load_patchset(folder / "patchset.json")
    return compile_model(workspace, patches=[patchset[POINT]])


def _toys(model, n, seed, batch_size, retry, workers=1, first_toy=0):
    import hfpipe
    from hfpipe.infer import FitOptions

    return hfpipe.toys(
        model,
        1.0,
        ntoys=n,
        seed=seed,
        first_toy=first_toy,
        batch_size=batch_size,
        options=FitOptions(retry=retry),
        workers=workers,
    )


#: The model of a warm pool's worker process (set by :func:`_start_worker`).
_WORKER_MODEL = None


def _start_worker(folder: Path, batch_size, retry) -> None:
    """Pool initializer: load the model and compile its toy fits (an untimed small run)."""
    global _WORKER_MODEL
    _WORKER_MODEL = _model(folder)
    _toys(_WORKER_MODEL, 2, 1, batch_size, retry)


def _worker_chunk(first_toy: int, n: int, batch_size, retry):
    """Toys ``first_toy … first_toy+n-1`` in a warm worker, with the CPU time they took."""
    cpu = time.process_time()
    toys = _toys(_WORKER_MODEL, n, 0, batch_size, retry, first_toy=first_toy)
    return toys, time.process_time() - cpu


def _worker_ready(_):
    time.sleep(0.5)  # holds this worker, so the others take the other calls
    return os.getpid()


def _warm_pool(folder: Path, ntoys: int, batch_size, retry: bool, workers: int):
    """Toy fits/s of ``workers`` processes that are already started and compiled: the
    steady state of a long run, without the seconds each process spends starting."""
    import concurrent.futures
    import multiprocessing

    from hfpipe.infer.toys import merge

    context = multiprocessing.get_context("spawn")
    settings = (batch_size, retry)
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(folder, *settings)
    ) as pool:
        if len(set(pool.map(_worker_ready, range(workers)))) != workers:
            raise RuntimeError("the pool did not start every worker")
        edges = np.linspace(0, ntoys, workers + 1).astype(int)
        start = time.perf_counter()
        chunks = [
            pool.submit(_worker_chunk, int(a), int(b - a), *settings)
            for a, b in itertools.pairwise(edges)
        ]
        results = [chunk.result() for chunk in chunks]
        wall = time.perf_counter() - start
    cpu = sum(c for _, c in results)
    fits = 4 * ntoys
    print(
        f"hfpipe, {workers} warm processes: {fits} toy fits in {wall:.1f} s wall, {cpu:.1f} s "
        f"CPU: {fits / wall:.3g} fits/s (wall), {fits / cpu:.3g} fits/CPU-s"
    )
    result = merge([toys for toys, _ in results]).cls(max_failed_fraction=1.0)
    print(f"  CLs_obs {result.cls_obs:.4f}, toys with a failed fit: {result.n_failed}")
    return fits / wall, fits / cpu


def _hfpipe(
    folder: Path, ntoys: int, batch_size: int, retry: bool, workers: int
) -> tuple[float, float]:
    from hfpipe.infer.toys import toy_batch_size

    model = _model(folder)

    def run(n, seed):
        return _toys(model, n, seed, batch_size, retry, workers)

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


def _pyhf(folder: Path, ntoys: int) -> tuple[float, float]:
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
        help="hfpipe worker processes (hfpipe.toys(workers=...)); their start-up "
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
    warm = None
    if args.workers > 1:
        warm = _warm_pool(folder, args.ntoys, args.batch_size, args.retry, args.workers)
    theirs = _pyhf(folder, args.pyhf_ntoys)
    print(f"ratio hfpipe/pyhf: {ours[0] / theirs[0]:.0f} (wall), {ours[1] / theirs[1]:.0f} (CPU)")
    if warm:
        print(
            f"ratio hfpipe warm pool/pyhf: {warm[0] / theirs[0]:.0f} (wall), "
            f"{warm[1] / theirs[1]:.0f} (CPU)"
        )


if __name__ == "__main__":
    main()
