"""The full nuisance-parameter ranking of one point, hfpipe against cabinetry 0.6.0 in
the same run, both cold: times, their ratio, and every parameter compared.

Each tool runs in a fresh process, timed from the parent (interpreter start, imports,
model building, compilation and fits all count). hfpipe runs with its persistent
compilation cache off (``HFPIPE_COMPILATION_CACHE=off``): ``hfpipe.infer.ranking.ranking``,
its best fit and all held-parameter fits in one batched call. cabinetry runs
``cabinetry.fit.fit`` (its best fit) and ``cabinetry.fit.ranking`` — the same work as
``cabinetry.fit.ranking`` alone, which starts with that fit — on pyhf's jax backend (autodiff gradients; ~2× faster a fit than pyhf's default numpy
backend on 1Lbb, so the ratio is the smaller of the two). The ranking is given hfpipe's
best fit and uncertainties, so both hold every parameter at the same values and the
impacts compare the held fits alone (MINUIT's HESSE σ differ from the exact curvature by
~1 %, which would otherwise move the held values). MIGRAD runs with tolerance 1e-3
(``--cabinetry-tolerance``; EDM < 2e-6): at cabinetry's default 0.1 its fits stop at
EDM < 2e-4, μ̂ up to ~0.02 σ from the minimum, too loose to compare at 2e-3, and on 1Lbb
a fit costs the same (~16 s) at either.

Then, outside the timing, the comparison: every parameter's four impacts (|Δ| ≤ 2e-3 in
μ), and its pull (best fit and σ) against cabinetry.fit.fit's; for every impact off by
more, the held fit is repeated with cabinetry.fit.fit and with hfpipe and both end
points evaluated in pyhf's -2 log L (is hfpipe's fit at least as good?); hfpipe's σ are
checked against the exact Hessian of pyhf's likelihood (``jax.hessian``). Where
``cabinetry.fit.ranking`` itself raises (a MIGRAD failure), the held fits are run one
by one as its loop does, failures recorded.

A full cabinetry ranking of 1Lbb is some 700 MIGRAD fits (hours). With
``--cabinetry-parameters N`` cabinetry ranks only the N parameters hfpipe ranks highest
(the same held fits as its loop, one by one): its time is then a lower bound on its full
ranking's, and the printed ratio a lower bound on the full one; the comparison covers
those N parameters.

    python benchmarks/ranking_vs_cabinetry.py [../shared/data] [--analysis atlas-1lbb]
        [--point C1N2_Wh_hbb_300_150] [--output DIR] [--cabinetry-parameters N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FILES = {
    "atlas-1lbb": ("BkgOnly.json.gz", "patchset.json.gz", "C1N2_Wh_hbb_300_150"),
    "atlas-3l-erjr": ("BkgOnly.json", "patchset.json", "ERJR_200p0_100p0"),
}
IMPACTS = ("prefit_up", "prefit_down", "postfit_up", "postfit_down")
TOLERANCE = 2e-3


def _inputs(data: Path, analysis: str, point: str | None):
    workspace, patchset, default = FILES[analysis]
    return data / analysis / workspace, data / analysis / patchset, point or default


def _pyhf_model(workspace: Path, patchset: Path, point: str):
    """cabinetry's model (normsys code4, histosys code4p) and data of the patched point."""
    import cabinetry

    from hfpipe import spec

    patch = spec.load_patchset(patchset)[point]
    return cabinetry.model_utils.model_and_data(
        spec.apply_patches(spec.load_workspace(workspace), [patch])
    )


def run_hfpipe(workspace: Path, patchset: Path, point: str, out: Path) -> None:
    """The child process of hfpipe: best fit and ranking, written to ``out``."""
    from hfpipe import spec
    from hfpipe.infer.bestfit import best_fit
    from hfpipe.infer.ranking import ranking
    from hfpipe.model import compile_model

    model = compile_model(
        spec.load_workspace(workspace), patches=[spec.load_patchset(patchset)[point]]
    )
    fit = best_fit(model)
    table = ranking(model, fit=fit)
    table.to_parquet(out / "hfpipe_ranking.parquet")
    np.savez(
        out / "hfpipe_fit.npz",
        pars=fit.pars,
        uncertainties=fit.uncertainties,
        correlation=fit.correlation(),
        twice_nll=fit.twice_nll,
        names=np.array(fit.parameter_names),
    )


def _quiet(call, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args, **kwargs)


def run_cabinetry(
    workspace: Path, patchset: Path, point: str, out: Path, tolerance: float, only: int | None
) -> None:
    """The child process of cabinetry: its fit, then its ranking given hfpipe's fit (of
    the ``only`` parameters hfpipe ranks highest, when given)."""
    import cabinetry
    import pyhf

    pyhf.set_backend("jax")
    model, data = _pyhf_model(workspace, patchset, point)
    start = time.perf_counter()
    own = _quiet(cabinetry.fit.fit, model, data, tolerance=tolerance)
    fit_seconds = time.perf_counter() - start
    ours = np.load(out / "hfpipe_fit.npz")
    given = cabinetry.fit.FitResults(
        ours["pars"], ours["uncertainties"], list(ours["names"]), ours["correlation"], 0.0
    )
    start = time.perf_counter()
    record = {"fit_seconds": fit_seconds}
    if only is not None:
        import pandas as pd

        table = pd.read_parquet(out / "hfpipe_ranking.parquet")
        top = table.sort_values("rank")["parameter"][:only]  # rank 1: the largest impact
        record.update(_fit_by_fit(model, data, given, tolerance, set(top)))
        record["ranking_seconds"] = time.perf_counter() - start
        record["parameters_ranked"] = only
    else:
        _full_ranking(model, data, given, tolerance, record, start)
    record.update(bestfit=own.bestfit.tolist(), uncertainty=own.uncertainty.tolist())
    record["twice_nll"] = float(own.best_twice_nll)
    (out / "cabinetry.json").write_text(json.dumps(record))


def _full_ranking(model, data, given, tolerance: float, record: dict, start: float) -> None:
    """cabinetry.fit.ranking itself, timed from ``start``; fit by fit where it raises."""
    import cabinetry
    import pyhf

    try:
        found = _quiet(cabinetry.fit.ranking, model, data, fit_results=given, tolerance=tolerance)
        record["ranking_seconds"] = time.perf_counter() - start
        impacts = {c: getattr(found, c).tolist() for c in IMPACTS}
        record.update(labels=list(found.labels), failed=[], **impacts)
    except (pyhf.exceptions.FailedMinimization, ValueError) as error:  # one by one, as its loop
        record["ranking_error"] = f"{type(error).__name__}: {error}"
        record.update(_fit_by_fit(model, data, given, tolerance))


def _fit_by_fit(model, data, given, tolerance: float, only: set | None = None) -> dict:
    """cabinetry.fit.ranking's loop, one held fit at a time, with failures recorded (of
    the parameters named in ``only``, when given)."""
    import cabinetry
    import pyhf

    init, fixed = model.config.suggested_init(), model.config.suggested_fixed()
    prefit = cabinetry.model_utils.prefit_uncertainties(model)
    poi = model.config.poi_index
    labels, failed = [], []
    impacts = {c: [] for c in IMPACTS}
    for p, label in enumerate(model.config.par_names):
        if p == poi or (only is not None and label not in only):
            continue
        labels.append(label)
        shifts = (prefit[p], -prefit[p], given.uncertainty[p], -given.uncertainty[p])
        for column, shift in zip(IMPACTS, shifts, strict=True):
            if shift == 0:
                impacts[column].append(0.0)
                continue
            held_init, held_fixed = list(init), list(fixed)
            held_init[p], held_fixed[p] = given.bestfit[p] + shift, True
            try:
                found = _quiet(
                    cabinetry.fit.fit,
                    model,
                    data,
                    init_pars=held_init,
                    fix_pars=held_fixed,
                    tolerance=tolerance,
                )
                impacts[column].append(float(found.bestfit[poi] - given.bestfit[poi]))
            except (pyhf.exceptions.FailedMinimization, ValueError) as error:
                # ValueError: pyhf refuses a held value outside the bounds (a γ below 0)
                impacts[column].append(float("nan"))
                failed.append([label, column, f"{type(error).__name__}: {error}"])
    return {"labels": labels, "failed": failed, **impacts}


def run_check(workspace: Path, patchset: Path, point: str, out: Path, tolerance: float) -> None:
    """The comparison child: pulls and impacts, fit by fit where they differ."""
    import cabinetry
    import jax
    import jax.numpy as jnp
    import pandas as pd
    import pyhf

    pyhf.set_backend("jax")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import exact_oracle as oracle

    from hfpipe import spec
    from hfpipe.infer import fit_batch
    from hfpipe.model import compile_model

    model, data = _pyhf_model(workspace, patchset, point)
    ours = pd.read_parquet(out / "hfpipe_ranking.parquet").set_index("parameter")
    fit = np.load(out / "hfpipe_fit.npz")
    theirs = json.loads((out / "cabinetry.json").read_text())
    names = list(fit["names"])
    assert names == model.config.par_names
    patch = spec.load_patchset(patchset)[point]
    exact = oracle.model(spec.apply_patches(spec.load_workspace(workspace), [patch]))

    def twice_nll(pars):
        named = dict(zip(names, np.asarray(pars, float).tolist(), strict=True))
        return float(oracle.twice_nll(exact, named, exact.observed_data()))

    summary = {"cabinetry_failed_fits": len(theirs["failed"])}
    index = {label: k for k, label in enumerate(theirs["labels"])}
    ranked = [n for n in ours.index if n in index]
    unranked = [n for n in theirs["labels"] if n not in ours.index]
    summary["parameters_compared"] = len(ranked)
    summary["cabinetry_only_parameters_all_zero"] = all(
        theirs[c][index[n]] == 0 for n in unranked for c in IMPACTS
    )
    flagged = []
    for column in IMPACTS:
        difference = np.array([ours.loc[n, column] - theirs[column][index[n]] for n in ranked])
        summary[f"max_abs_diff_{column}"] = float(np.nanmax(np.abs(difference)))
        flagged += [
            (n, column)
            for n, d in zip(ranked, difference, strict=True)
            if not abs(d) <= TOLERANCE  # NaN: a failed cabinetry fit
        ]
    summary["impacts_beyond_tolerance"] = len(flagged)
    p_of = {n: k for k, n in enumerate(names)}
    rows = [p_of[n] for n in ranked]
    summary["max_abs_diff_bestfit"] = float(
        np.max(np.abs(fit["pars"][rows] - np.asarray(theirs["bestfit"])[rows]))
    )
    summary["max_abs_diff_uncertainty"] = float(
        np.max(np.abs(fit["uncertainties"][rows] - np.asarray(theirs["uncertainty"])[rows]))
    )
    summary["twice_nll_exact_at_hfpipe_fit"] = twice_nll(fit["pars"])
    summary["twice_nll_exact_at_cabinetry_fit"] = twice_nll(theirs["bestfit"])
    free = np.flatnonzero(fit["uncertainties"] > 0)
    pyhf_twice_nll = lambda x: -2 * model.logpdf(x, jnp.asarray(data))[0]  # noqa: E731
    hessian = np.asarray(jax.hessian(pyhf_twice_nll)(jnp.asarray(fit["pars"])))
    curvature = np.sqrt(np.diag(2 * np.linalg.inv(hessian[np.ix_(free, free)])))
    summary["max_rel_diff_uncertainty_vs_exact_hessian_of_pyhf"] = float(
        np.max(np.abs(fit["uncertainties"][free] - curvature) / curvature)
    )
    hf_model = compile_model(spec.load_workspace(workspace), patches=[patch])
    init, fixed = model.config.suggested_init(), model.config.suggested_fixed()
    bounds = model.config.suggested_bounds()
    checks = []
    for name, column in flagged:
        p = p_of[name]
        sign = 1 if column.endswith("up") else -1
        width = ours.loc[name, "prefit_uncertainty" if column.startswith("pre") else "uncertainty"]
        value = fit["pars"][p] + sign * width
        held_init, held_fixed = list(init), list(fixed)
        held_init[p], held_fixed[p] = value, True
        lower, upper = bounds[p]
        if not lower <= value <= upper:
            checks.append(
                {
                    "parameter": name,
                    "impact": column,
                    "hfpipe": float(ours.loc[name, column]),
                    "held_value": float(value),
                    "note": "outside the bounds: pyhf refuses it, hfpipe holds it at the bound",
                }
            )
            continue
        try:
            cab = _quiet(
                cabinetry.fit.fit,
                model,
                data,
                init_pars=held_init,
                fix_pars=held_fixed,
                tolerance=tolerance,
            ).bestfit
        except pyhf.exceptions.FailedMinimization as error:  # where MIGRAD ended
            cab = np.asarray(error.result.x)
        start, hold = fit["pars"].copy(), np.asarray(hf_model.numbers.fixed).copy()
        start[p], hold[p] = value, True
        data_all = hf_model.observed_data()[None]
        found = fit_batch(hf_model.structure, hf_model.numbers, data_all, init=start, fixed=hold)
        checks.append(
            {
                "parameter": name,
                "impact": column,
                "hfpipe": float(ours.loc[name, column]),
                "cabinetry": float(theirs[column][index[name]]),
                "twice_nll_exact_hfpipe": twice_nll(found.pars[0]),
                "twice_nll_exact_cabinetry": twice_nll(cab),
            }
        )
    summary["fit_by_fit"] = checks
    compared = [c for c in checks if "note" not in c]
    summary["not_comparable"] = len(checks) - len(compared)
    summary["hfpipe_at_least_as_good_everywhere"] = all(
        c["twice_nll_exact_hfpipe"] <= c["twice_nll_exact_cabinetry"] + 1e-9 for c in compared
    )
    (out / "check.json").write_text(json.dumps(summary, indent=1))


def _child(role: str, args, out: Path, environment: dict | None = None) -> float:
    """Run this script as ``role`` in a fresh process; its wall time."""
    command = [sys.executable, __file__, str(args.data), "--analysis", args.analysis]
    command += ["--point", args.point, "--output", str(out), "--role", role]
    command += ["--cabinetry-tolerance", str(args.cabinetry_tolerance)]
    if args.cabinetry_parameters:
        command += ["--cabinetry-parameters", str(args.cabinetry_parameters)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **(environment or {})})
    return time.perf_counter() - start


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=Path("../shared/data"))
    parser.add_argument("--analysis", default="atlas-1lbb", choices=sorted(FILES))
    parser.add_argument("--point")
    parser.add_argument("--output", type=Path, help="folder for the tables (default: temporary)")
    parser.add_argument("--cabinetry-tolerance", type=float, default=1e-3)
    parser.add_argument(
        "--cabinetry-parameters",
        type=int,
        help="cabinetry ranks only the N parameters hfpipe ranks highest (a lower bound)",
    )
    parser.add_argument("--role", choices=["hfpipe", "cabinetry", "check"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    workspace, patchset, args.point = _inputs(args.data, args.analysis, args.point)
    if args.role == "hfpipe":
        run_hfpipe(workspace, patchset, args.point, args.output)
    elif args.role == "cabinetry":
        run_cabinetry(
            workspace,
            patchset,
            args.point,
            args.output,
            args.cabinetry_tolerance,
            args.cabinetry_parameters,
        )
    elif args.role == "check":
        run_check(workspace, patchset, args.point, args.output, args.cabinetry_tolerance)
    if args.role:
        return
    out = args.output or Path(tempfile.mkdtemp(prefix="ranking_vs_cabinetry_"))
    out.mkdir(parents=True, exist_ok=True)
    hfpipe_seconds = _child("hfpipe", args, out, {"HFPIPE_COMPILATION_CACHE": "off"})
    cabinetry_seconds = _child("cabinetry", args, out)
    _child("check", args, out)
    record = json.loads((out / "cabinetry.json").read_text())
    check = json.loads((out / "check.json").read_text())
    only = record.get("parameters_ranked")
    print(f"{args.analysis} {args.point}: ranking, cold, each tool in a fresh process")
    print(f"hfpipe ranks all {len(pd.read_parquet(out / 'hfpipe_ranking.parquet'))} parameters;")
    print(f"cabinetry ranks {'all' if only is None else f'the top {only} (a lower bound)'}")
    print(f"hfpipe:    {hfpipe_seconds:8.1f} s")
    print(
        f"cabinetry: {cabinetry_seconds:8.1f} s (fit {record['fit_seconds']:.1f} s, ranking "
        f"{record.get('ranking_seconds', float('nan')):.1f} s; pyhf jax backend, MIGRAD "
        f"tolerance {args.cabinetry_tolerance:g})"
    )
    if "ranking_error" in record:
        print(f"cabinetry.fit.ranking raised: {record['ranking_error']} (timing void)")
    bound = "" if only is None else " at least (cabinetry ranked a subset)"
    print(f"ratio:     {cabinetry_seconds / hfpipe_seconds:8.1f}x{bound}")
    print(json.dumps(check, indent=1))
    print(f"tables in {out}")


if __name__ == "__main__":
    main()
