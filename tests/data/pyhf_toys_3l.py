"""Make ``pyhf_toys_3l.json``: pyhf 0.7.6 toy test statistics on ATLAS 3L-eRJR
ERJR_200p0_100p0 (q~mu, mu = 1), the reference of tests/test_toys.py.

pyhf toys are slow on this model (numpy + scipy SLSQP: ~10 s a fit on 2 shared cores;
the jax backend, same ToyCalculator and SciPy optimiser: ~0.5 toys/s after its
compilation), so they are made once and stored. The stored file: ``--backend jax
--ntoys 25 --minutes 45`` on this 2-core machine under load, 66 runs = 1,650 toys per
hypothesis. pyhf's SLSQP stalls at the start on this model unless the one shapesys gamma
with τ ≈ 1.9e11 (``shape_mcstat_diboson3LISR_CRISR_obs_cuts``) is fixed (DESIGN.md §1;
its effect on CLs is ~1e-5), so it is fixed here. Runs of ``--ntoys`` toys with seeds
0, 1, 2, … are appended until ``--minutes`` have passed, so the file grows in whole runs.

Usage: ``python tests/data/pyhf_toys_3l.py [--ntoys 25] [--minutes 60] [--backend numpy]``
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pyhf

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "atlas-3l-erjr"
OUT = Path(__file__).with_name("pyhf_toys_3l.json")
POINT = "ERJR_200p0_100p0"
STIFF = "shape_mcstat_diboson3LISR_CRISR_obs_cuts"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ntoys", type=int, default=25)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pyhf.set_backend(args.backend)
    workspace = pyhf.Workspace(json.loads((DATA / "BkgOnly.json").read_text()))
    patchset = pyhf.PatchSet(json.loads((DATA / "patchset.json").read_text()))
    patched = pyhf.Workspace(patchset.apply(workspace, POINT))
    model = patched.model()
    data = patched.data(model)
    fixed = model.config.suggested_fixed()
    for i, name in enumerate(model.config.par_names):
        if name.startswith(STIFF):
            fixed[i] = True
    out = {
        "point": POINT,
        "test_stat": "qtilde",
        "mu": 1.0,
        "fixed": [n for n, f in zip(model.config.par_names, fixed, strict=True) if f],
        "how": f"pyhf {pyhf.__version__} {args.backend} ToyCalculator, runs of "
        f"{args.ntoys} toys with np.random.seed(run)",
        "signal": [],
        "background": [],
        "runs": 0,
    }
    calc = pyhf.infer.calculators.ToyCalculator(
        data, model, fixed_params=fixed, ntoys=args.ntoys, track_progress=False
    )
    out["q_obs"] = float(calc.teststatistic(1.0))
    start = time.monotonic()
    while time.monotonic() - start < 60 * args.minutes:
        np.random.seed(out["runs"])
        signal, background = calc.distributions(1.0)
        out["signal"] += np.asarray(signal.samples, dtype=float).tolist()
        out["background"] += np.asarray(background.samples, dtype=float).tolist()
        out["runs"] += 1
        out["seconds"] = time.monotonic() - start
        OUT.write_text(json.dumps(out, indent=1))
        print(out["runs"], len(out["signal"]), out["seconds"], flush=True)


if __name__ == "__main__":
    main()
