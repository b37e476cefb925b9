"""What the polishing Newton step (``FitOptions.polish``) costs: fits with and without it.

The 1Lbb scan's fits: the asymptotic hypothesis test of every point (each point's model
compiled on its own, a batch of one, as a scan on a CPU runs them); 3L-eRJR toys: the
toy-based test of one point (toy fits never polish; the fits to the observed data do).
Each variant runs once to compile, then ``--rounds`` times alternating with the other;
the medians, their ratio and the mean evaluations a fit are printed.

    python benchmarks/polish_cost.py ../shared/data [--points 125] [--ntoys 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path


def _scan_fits(models, options) -> tuple[float, float]:
    from hfpipe.infer import hypotest_batch

    start = time.perf_counter()
    evaluations = fits = 0
    for model in models:
        result = hypotest_batch(model.structure, model.numbers, 1.0, options=options)
        for found in result.fits.values():
            evaluations += int(found.iterations.sum())
            fits += len(found)
    return time.perf_counter() - start, evaluations / fits


def _toys(model, options, ntoys: int) -> tuple[float, float]:
    from hfpipe.infer.toys import toy_distributions

    start = time.perf_counter()
    toy_distributions(model.structure, model.numbers, 1.0, ntoys=ntoys, options=options)
    return time.perf_counter() - start, float("nan")


def _compare(name: str, run, rounds: int) -> None:
    from hfpipe.infer import FitOptions

    variants = {"without": FitOptions(polish=False), "with": FitOptions(polish=True)}
    for options in variants.values():
        run(options)  # compile
    seconds = {k: [] for k in variants}
    evaluations = {}
    for _ in range(rounds):
        for key, options in variants.items():
            took, evaluations[key] = run(options)
            seconds[key].append(took)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    print(
        f"{name}: without polish {median['without']:.2f} s, with {median['with']:.2f} s "
        f"(medians of {rounds}) -> cost {median['with'] / median['without'] - 1:+.1%}; "
        f"evaluations a fit {evaluations['without']:.2f} -> {evaluations['with']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder")
    parser.add_argument("--points", type=int, default=125, help="1Lbb points to fit")
    parser.add_argument("--ntoys", type=int, default=2000, help="3L-eRJR toys a hypothesis")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from hfpipe import spec
    from hfpipe.model import compile_model

    folder = args.data / "atlas-1lbb"
    workspace = spec.load_workspace(folder / "BkgOnly.json.gz")
    patchset = spec.load_patchset(folder / "patchset.json.gz")
    models = [
        compile_model(workspace, patches=[patchset[name]]) for name in patchset.names[: args.points]
    ]
    _compare(f"1Lbb, {len(models)} points", lambda o: _scan_fits(models, o), args.rounds)

    folder = args.data / "atlas-3l-erjr"
    workspace = spec.load_workspace(folder / "BkgOnly.json")
    patchset = spec.load_patchset(folder / "patchset.json")
    model = compile_model(workspace, patches=[patchset["ERJR_200p0_100p0"]])
    _compare(
        f"3L-eRJR ERJR_200p0_100p0, {args.ntoys} toys",
        lambda o: _toys(model, o, args.ntoys),
        args.rounds,
    )


if __name__ == "__main__":
    main()
