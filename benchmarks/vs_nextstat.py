"""hfpipe against NextStat in the same run: speed and agreement, ATLAS 1Lbb and 3L-eRJR.

NextStat (Rust, multithreaded) is timed beside hfpipe, and its results are checked
against the shared references.

NextStat is a benchmark-only peer, never a dependency of hfpipe: install it by hand,
``pip install nextstat==0.10.1``. Both tools get both cores: NextStat with
``nextstat.set_threads(2)`` (``--nextstat-threads``), hfpipe with two processes for the
toys (``--hfpipe-workers``); its scan is timed as the plain command (a process a core,
one XLA thread each, see hfpipe/_jax.py) and restricted to one process (``--workers 1``). Every timed run is a fresh process (cold: interpreter start,
imports, model loading and, for hfpipe, loading or making its compiled code included),
and every figure is printed with the machine's load average. Models: pyhf's HistFactory
with normsys code4 and histosys code4p (hfpipe's default; NextStat's likelihood equals
pyhf's with these codes), q~mu at mu = 1.

1. ``scan``, 1Lbb: ``hfpipe scan`` of all 125 points (the plain command, and with
   ``--workers 1``: ``--scan-workers``) against NextStat's
   ``apply_patchset`` + ``from_pyhf`` + ``hypotest`` on ``--nextstat-points`` points
   (default 3; 125 for the whole scan, ~12 minutes on an idle machine), extrapolated per
   point to 125. ``nextstat.hypotest`` returns CLs_obs (and CLs+b, CLb) only; the
   expected band needs no other fits for q~mu. Whether hfpipe found its compiled code in
   the persistent compilation cache (``HFPIPE_COMPILATION_CACHE``, default
   ``~/.cache/hfpipe/xla``) is printed: the entries before the run and how many it wrote.
   ``--empty-cache`` points hfpipe at a new, empty cache instead (compilation included).
2. ``toys``, 3L-eRJR point ERJR_200p0_100p0: ``hfpipe cls --calctype toybased
   --toy-workers 2`` against ``nextstat.hypotest_toys`` (expected band on). A toy is one
   pseudo-experiment with its two fits (POI free and fixed); ``--*-ntoys N`` toys of each
   hypothesis make 2N toys. The sizes differ so that each tool runs for about 20 s or more.
3. ``agreement``: every 3L-eRJR point NextStat fits (8 spread over the patchset by
   default, all 64 with ``--agreement``) and the 1Lbb points of part 1: NextStat's free
   fit (``nextstat.fit``: its convergence flag, best-fit parameters), and its CLs_obs
   against the shared ``reference_pyhf.csv``. Both best fits are evaluated by one
   function, hfpipe's ``Model.logpdf`` (parameters mapped by pyhf's names): Δ is
   NextStat's −2 ln L above hfpipe's minimum (``hfpipe.fit``). As a check that the
   difference is the optimiser's and not the model's, the same Δ by NextStat's own
   ``nll`` is printed too (Δ own: its minimum above its own value at hfpipe's best fit).

    python benchmarks/vs_nextstat.py [../shared/data] [--part scan|toys|agreement]...
        [--nextstat-points 3] [--hfpipe-ntoys 40000] [--nextstat-ntoys 1000]
        [--agreement] [--hfpipe-workers 2] [--scan-workers all,1] [--nextstat-threads 2]
        [--empty-cache]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

TOY_POINT = "ERJR_200p0_100p0"
INSTALL = "pip install nextstat==0.10.1"
PARTS = ("scan", "toys", "agreement")


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _inputs(folder: Path) -> tuple[Path, Path]:
    suffix = ".json.gz" if (folder / "BkgOnly.json.gz").exists() else ".json"
    return folder / f"BkgOnly{suffix}", folder / f"patchset{suffix}"


def _text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as f:
            return f.read()
    return path.read_text()


def _spread(items: list, n: int) -> list:
    """``n`` items evenly spread over ``items`` (all of them if ``n`` is larger)."""
    if n >= len(items):
        return list(items)
    if n <= 1:
        return items[:n]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _reference(folder: Path) -> dict[str, dict[str, float]]:
    with open(folder / "reference_pyhf.csv") as f:
        return {row["point"]: row for row in csv.DictReader(f)}


# --- NextStat, in a fresh process ------------------------------------------------------


def _nextstat_worker(task: dict) -> dict:
    """Run in ``python vs_nextstat.py --nextstat-worker JSON``: the timed NextStat work."""
    start = time.perf_counter()
    import nextstat

    nextstat.set_threads(task["threads"])
    workspace = _text(Path(task["background"]))
    patchset = json.loads(_text(Path(task["patchset"])))
    patches = {p["metadata"]["name"]: p for p in patchset["patches"]}
    ready = time.perf_counter()

    def model(name):
        # a patchset of the one patch: apply_patchset parses what it is given
        one = json.dumps(dict(patchset, patches=[patches[name]]))
        return nextstat.from_pyhf(nextstat.apply_patchset(workspace, one, patch_name=name))

    out = {"version": nextstat.__version__, "import_s": ready - start}
    if task["kind"] == "hypotest":
        points = []
        for name in task["points"]:
            t0 = time.perf_counter()
            m = model(name)
            t1 = time.perf_counter()
            cls = nextstat.hypotest(1.0, m)
            t2 = time.perf_counter()
            points.append(
                {"point": name, "prepare_s": t1 - t0, "hypotest_s": t2 - t1, "cls_obs": cls}
            )
        out["points"] = points
    else:
        m = model(task["point"])
        t0 = time.perf_counter()
        out["meta"] = nextstat.hypotest_toys(
            1.0, m, n_toys=task["ntoys"], seed=task["seed"], expected_set=True, return_meta=True
        )
        out["toys_s"] = time.perf_counter() - t0
    return out


def _timed(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``command`` as a fresh process: wall seconds, CPU seconds, stdout."""
    cpu0 = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    start = time.perf_counter()
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - start
    cpu = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - cpu0
    return wall, cpu, done.stdout


def _nextstat(task: dict) -> tuple[float, float, dict]:
    wall, cpu, stdout = _timed(
        [sys.executable, str(Path(__file__).resolve()), "--nextstat-worker", json.dumps(task)]
    )
    return wall, cpu, json.loads(stdout.strip().splitlines()[-1])


# --- hfpipe, in a fresh process --------------------------------------------------------


class _Cache:
    """hfpipe's compilation cache for the timed runs: the user's, or a new empty one."""

    def __init__(self, empty: bool):
        self.env = dict(os.environ)
        self._tmp = None
        if empty:
            self._tmp = tempfile.TemporaryDirectory()
            self.env["HFPIPE_COMPILATION_CACHE"] = self._tmp.name
        from hfpipe._jax import CACHE_VARIABLE, compilation_cache_dir

        saved = os.environ.get(CACHE_VARIABLE)
        os.environ[CACHE_VARIABLE] = self.env.get(CACHE_VARIABLE, "")
        try:
            self.folder = compilation_cache_dir()
        finally:
            if saved is None:
                del os.environ[CACHE_VARIABLE]
            else:
                os.environ[CACHE_VARIABLE] = saved

    def entries(self) -> int:
        if self.folder is None or not self.folder.is_dir():
            return 0
        return sum(1 for _ in self.folder.iterdir())

    def describe(self, before: int) -> str:
        if self.folder is None:
            return "compilation cache off"
        written = self.entries() - before
        state = "warm" if before and not written else ("cold" if not before else "partly warm")
        return (
            f"compilation cache {state}: {before} entries before, {written} written ({self.folder})"
        )


# --- part 1: the 1Lbb scan -------------------------------------------------------------


def part_scan(data: Path, args, cache: _Cache) -> list[dict]:
    folder = data / "atlas-1lbb"
    background, patchset = _inputs(folder)
    names = [p["metadata"]["name"] for p in json.loads(_text(patchset))["patches"]]
    n_total = len(names)
    reference = [n for n in names if n in _reference(folder)]
    others = [n for n in names if n not in reference]
    n = args.nextstat_points
    chosen = _spread(reference, n) + _spread(others, max(0, n - len(reference)))

    print(f"== 1Lbb scan: {n_total} points, q~mu at mu = 1 ==", flush=True)
    ours = {}
    for workers in args.scan_workers:
        command = ["hfpipe", "scan", str(background), str(patchset)]
        if workers != "all":
            command += ["--workers", workers]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scan.parquet"
            before = cache.entries()
            load = _load()
            wall, cpu, _ = _timed([*command, "-o", str(out)], env=cache.env)
            import pandas as pd

            frame = pd.read_parquet(out)
        ok = int((frame["status"] == "ok").sum())
        print(
            f"hfpipe scan, {workers} process(es), cold: {wall:.1f} s wall, {cpu:.1f} s CPU "
            f"(CPU/wall {cpu / wall:.2f}), {ok}/{len(frame)} ok [{load} -> {_load()}]"
        )
        print(f"  {cache.describe(before)}")
        print(f"  command: {' '.join(command)} -o OUT.parquet", flush=True)
        ours[workers] = wall

    load = _load()
    task = {
        "kind": "hypotest",
        "background": str(background),
        "patchset": str(patchset),
        "points": chosen,
        "threads": args.nextstat_threads,
    }
    ns_wall, ns_cpu, result = _nextstat(task)
    points = result["points"]
    per_point = statistics.mean(p["prepare_s"] + p["hypotest_s"] for p in points)
    per_hypotest = statistics.mean(p["hypotest_s"] for p in points)
    total = ns_wall + (n_total - len(points)) * per_point
    hypotest_total = n_total * per_hypotest
    print(
        f"NextStat {result['version']}, {args.nextstat_threads} threads, cold process of "
        f"{len(points)} points: {ns_wall:.1f} s wall, {ns_cpu:.1f} s CPU [{load} -> {_load()}]"
    )
    for p in points:
        print(
            f"  {p['point']}: patch + model {p['prepare_s']:.2f} s, hypotest "
            f"{p['hypotest_s']:.2f} s, CLs_obs {p['cls_obs']:.5f}"
        )
    print(
        f"  per point: {per_point:.2f} s (hypotest alone {per_hypotest:.2f} s); "
        f"x {n_total}: {total:.0f} s with start-up and patching, {hypotest_total:.0f} s "
        f"hypotest alone"
    )
    for workers, wall in ours.items():
        print(
            f"ratio NextStat / hfpipe ({workers} process(es)), 1Lbb scan: {total / wall:.0f}x "
            f"(NextStat's hypotest alone: {hypotest_total / wall:.0f}x)",
            flush=True,
        )
    return points


# --- part 2: 3L-eRJR toys --------------------------------------------------------------


def part_toys(data: Path, args, cache: _Cache) -> None:
    folder = data / "atlas-3l-erjr"
    background, patchset = _inputs(folder)
    print(f"== 3L-eRJR toys: {TOY_POINT}, q~mu at mu = 1 ==", flush=True)
    n = args.hfpipe_ntoys
    command = [
        "hfpipe",
        "cls",
        str(background),
        "--patchset",
        str(patchset),
        "--point",
        TOY_POINT,
        "--calctype",
        "toybased",
        "--ntoys",
        str(n),
        "--seed",
        "1",
        "--toy-workers",
        str(args.hfpipe_workers),
        "--max-failed-fraction",
        "1",
    ]
    before = cache.entries()
    load = _load()
    wall, cpu, stdout = _timed(command, env=cache.env)
    ours = json.loads(stdout)
    rate = 2 * n / wall
    print(
        f"hfpipe, {args.hfpipe_workers} process(es), cold: {n} toys a hypothesis ({2 * n} "
        f"toys, {4 * n} fits) in {wall:.1f} s wall, {cpu:.1f} s CPU: {rate:.0f} toys/s, "
        f"{2 * n / cpu:.0f} toys/CPU-s [{load} -> {_load()}]"
    )
    print(
        f"  CLs_obs {ours['CLs_obs']:.4f} ± {ours['CLs_obs_error']:.4f}, toys with a "
        f"failed fit: {ours['n_failed']}; {cache.describe(before)}"
    )
    print(f"  command: {' '.join(command)}", flush=True)

    m = args.nextstat_ntoys
    task = {
        "kind": "toys",
        "background": str(background),
        "patchset": str(patchset),
        "point": TOY_POINT,
        "ntoys": m,
        "seed": 1,
        "threads": args.nextstat_threads,
    }
    load = _load()
    ns_wall, ns_cpu, result = _nextstat(task)
    meta = result["meta"]
    theirs = 2 * m / ns_wall
    print(
        f"NextStat {result['version']}, {args.nextstat_threads} threads, cold: {m} toys a "
        f"hypothesis ({2 * m} toys) in {ns_wall:.1f} s wall ({result['toys_s']:.1f} s in "
        f"hypotest_toys), {ns_cpu:.1f} s CPU: {theirs:.1f} toys/s, {2 * m / ns_cpu:.1f} "
        f"toys/CPU-s [{load} -> {_load()}]"
    )
    failed = sum(meta[k] for k in ("n_error_b", "n_error_sb"))
    unconverged = sum(meta[k] for k in ("n_nonconverged_b", "n_nonconverged_sb"))
    print(
        f"  CLs_obs {meta['cls']:.4f} (q_obs {meta['q_obs']:.4f}, mu_hat {meta['mu_hat']:.4f}), "
        f"toys with an error: {failed}, unconverged: {unconverged}"
    )
    print(
        f"ratio hfpipe / NextStat, 3L-eRJR toys/s: {rate / theirs:.0f}x "
        f"(per CPU-second: {(2 * n / cpu) / (2 * m / ns_cpu):.0f}x)",
        flush=True,
    )


# --- part 3: agreement -----------------------------------------------------------------


def _agreement(folder: Path, names: list[str], cls_known: dict[str, float], threads: int):
    import nextstat
    import numpy as np

    import hfpipe
    from hfpipe import spec
    from hfpipe.errors import FitFailed
    from hfpipe.model import compile_model

    nextstat.set_threads(threads)
    background, patchset_path = _inputs(folder)
    workspace = _text(background)
    patchset = json.loads(_text(patchset_path))
    patches = {p["metadata"]["name"]: p for p in patchset["patches"]}
    ours_ws = spec.load_workspace(background)
    ours_ps = spec.load_patchset(patchset_path)
    reference = _reference(folder)
    print(
        f"{'point':<24} {'conv':>4} {'Δ(-2lnL)':>10} {'Δ own':>10} {'CLs_obs NS':>11} "
        f"{'reference':>10} {'|ΔCLs|':>9}  NextStat's termination"
    )
    rows = []
    for name in names:
        one = json.dumps(dict(patchset, patches=[patches[name]]))
        theirs = nextstat.from_pyhf(nextstat.apply_patchset(workspace, one, patch_name=name))
        fit = nextstat.fit(theirs)
        cls = cls_known.get(name)
        if cls is None:
            cls = nextstat.hypotest(1.0, theirs)
        model = compile_model(ours_ws, patches=[ours_ps[name]])
        if set(model.parameter_names) != set(theirs.parameter_names()):
            raise RuntimeError(f"{name}: the two tools name different parameters")
        try:
            best = hfpipe.fit(model)
        except FitFailed as error:
            print(f"{name:<24} hfpipe's fit failed: {error}")
            continue
        data = model.observed_data()
        at_theirs = dict(zip(theirs.parameter_names(), fit.parameters, strict=True))
        at_ours = dict(zip(model.parameter_names, best.pars, strict=True))
        theirs_pars = np.array([at_theirs[n] for n in model.parameter_names])
        nll_theirs = -2 * float(model.logpdf(theirs_pars, data))
        nll_ours = -2 * float(model.logpdf(best.pars, data))
        own = fit.twice_nll - 2 * theirs.nll([at_ours[n] for n in theirs.parameter_names()])
        ref = reference.get(name)
        ref_cls = float(ref["cls_obs"]) if ref else math.nan
        row = {
            "point": name,
            "converged": bool(fit.converged),
            "delta": nll_theirs - nll_ours,
            "own": own,
            "cls": cls,
            "ref": ref_cls,
            "dcls": abs(cls - ref_cls),
            "ours_vs_ref": best.twice_nll - float(ref["twice_nll"]) if ref else math.nan,
        }
        rows.append(row)
        print(
            f"{name:<24} {'yes' if row['converged'] else 'NO':>4} {row['delta']:>10.4g} "
            f"{own:>10.4g} {cls:>11.5f} {ref_cls:>10.5f} {row['dcls']:>9.2e}  "
            f"{fit.termination_reason}",
            flush=True,
        )
    return rows


def _summary(label: str, rows: list[dict]) -> None:
    if not rows:
        return
    deltas = [r["delta"] for r in rows]
    with_ref = [r for r in rows if not math.isnan(r["ref"])]
    above = sum(d > 1e-3 for d in deltas)
    print(
        f"{label}: {len(rows)} points; NextStat reports convergence at "
        f"{sum(r['converged'] for r in rows)}; its −2 ln L is above hfpipe's minimum by "
        f"> 1e-3 at {above} (Δ min {min(deltas):.3g}, median {statistics.median(deltas):.3g}, "
        f"max {max(deltas):.3g}); CLs_obs off the reference by > 1e-3 at "
        f"{sum(r['dcls'] > 1e-3 for r in with_ref)} of {len(with_ref)}",
        flush=True,
    )
    mismatch = [r["ours_vs_ref"] for r in with_ref]
    if mismatch:
        print(
            f"  (reported twice_nll, hfpipe's minus the reference's: max {max(mismatch):.2g};"
            " on 3L-eRJR pyhf's formula is exact only to ~2e-3, hence Δ by one function)"
        )


def part_agreement(data: Path, args, scan_points: list[dict] | None) -> None:
    warnings.simplefilter("ignore")  # the workspaces' own warnings, printed by hfpipe
    load = _load()
    folder = data / "atlas-3l-erjr"
    names = [p["metadata"]["name"] for p in json.loads(_text(_inputs(folder)[1]))["patches"]]
    if not args.agreement:
        names = _spread(names, 8)
    print(f"== agreement, 3L-eRJR: {len(names)} points [{load}] ==", flush=True)
    rows = _agreement(folder, names, {}, args.nextstat_threads)
    _summary("3L-eRJR", rows)

    folder = data / "atlas-1lbb"
    if scan_points is None:
        names = _spread(list(_reference(folder)), args.nextstat_points)
        known = {}
    else:
        names = [p["point"] for p in scan_points]
        known = {p["point"]: p["cls_obs"] for p in scan_points}
    print(f"== agreement, 1Lbb: {len(names)} points [{_load()}] ==", flush=True)
    rows = _agreement(folder, names, known, args.nextstat_threads)
    _summary("1Lbb", rows)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--nextstat-worker":
        print(json.dumps(_nextstat_worker(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data",
    )
    parser.add_argument(
        "--part", action="append", choices=PARTS, help="run only this part (repeatable)"
    )
    parser.add_argument("--nextstat-points", type=int, default=3)
    parser.add_argument("--hfpipe-ntoys", type=int, default=40000, help="toys a hypothesis")
    parser.add_argument("--nextstat-ntoys", type=int, default=1000, help="toys a hypothesis")
    parser.add_argument("--agreement", action="store_true", help="part 3 on all 64 3L-eRJR points")
    parser.add_argument(
        "--hfpipe-workers", type=int, default=2, help="toy processes (hfpipe cls --toy-workers)"
    )
    parser.add_argument(
        "--scan-workers",
        type=lambda text: text.split(","),
        default=["all", "1"],
        help="hfpipe scans to time, comma-separated: all is the plain command (every "
        "core), N adds --workers N (default all,1)",
    )
    parser.add_argument("--nextstat-threads", type=int, default=2)
    parser.add_argument(
        "--empty-cache",
        action="store_true",
        help="time hfpipe with a new, empty compilation cache (compilation included)",
    )
    args = parser.parse_args()
    try:
        import nextstat
    except ImportError:
        sys.exit(f"vs_nextstat.py: NextStat is not installed; install it with `{INSTALL}`")
    parts = args.part or list(PARTS)
    print(
        f"NextStat {nextstat.__version__}; {os.cpu_count()} CPUs; {_load()}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    cache = _Cache(args.empty_cache)
    scan_points = part_scan(args.data, args, cache) if "scan" in parts else None
    if "toys" in parts:
        part_toys(args.data, args, cache)
    if "agreement" in parts:
        part_agreement(args.data, args, scan_points)
    print(f"done [{_load()}]")


if __name__ == "__main__":
    main()
