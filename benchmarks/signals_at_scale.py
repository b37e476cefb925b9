"""10,000 signal hypotheses from a table against the full ATLAS 1Lbb likelihood, cold, and
spey-pyhf's time per hypothesis measured on a few of them in the same run.

The hypotheses are synthetic and seeded: each takes the signal yields of a random point
of the published 1Lbb patchset (its MC-statistics uncertainties with them, zero in the
channels that point lacks, so that every hypothesis has all eight channels as a recast's
table would) and scales them bin by bin by log-normal factors (σ = 0.3, and an overall
factor of σ = 0.5), with a shared ±5 % signal cross-section normsys from the signal
config: the yields, uncertainties and labels (m1, m2, the source point, the scale) a
recast's table holds.

hfpipe: one ``hfpipe scan BKG --signals TABLE --signals-config YAML`` in a fresh process
(the plain command: a process a core; ``--workers N`` sets the number), with an
empty JAX compilation cache (cold: every compilation is paid); wall time, and the peak of
the summed RSS of the process tree (sampled every 0.2 s). Every row must be ``ok`` or
carry a failure reason.

spey-pyhf (``spey.get_backend("pyhf")``, its defaults: pyhf's JAX backend, scipy SLSQP):
``--spey-hypotheses`` of the same hypotheses (their patches as hfpipe makes them), each
built and asked ``exclusion_confidence_level()``, timed one by one; the first includes
pyhf's JAX compilations. Prints both, per hypothesis, and the ratio.

    python benchmarks/signals_at_scale.py [../shared/data] [--hypotheses 10000]
        [--workers N] [--spey-hypotheses 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

from hfpipe import spec

CONFIG = {"modifiers": [{"name": "SigXSec", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]}


def synthetic_table(workspace: dict, patchset, n: int, seed: int) -> pd.DataFrame:
    """``n`` hypotheses drawn around the patchset's signal points (long form)."""
    rng = np.random.default_rng(seed)
    channels = {c["name"]: len(c["samples"][0]["data"]) for c in workspace["channels"]}
    names = [c["name"] for c in workspace["channels"]]
    sources = []
    for patch in patchset:
        found = {}
        for op in patch.operations:
            sample = op["value"]
            mc = next(m["data"] for m in sample["modifiers"] if m["type"] == "staterror")
            found[names[int(op["path"].split("/")[2])]] = (sample["data"], mc)
        sources.append((patch, found))
    columns = {k: [] for k in ("point", "m1", "m2", "source", "scale")}
    columns |= {"channel": [], "bin": [], "yield": [], "uncertainty": []}
    picks = rng.integers(len(sources), size=n)
    scales = rng.lognormal(0.0, 0.5, size=n)
    for k, (pick, scale) in enumerate(zip(picks, scales, strict=True)):
        patch, found = sources[pick]
        m1, m2 = patch.values
        for channel, nbins in channels.items():
            data, mc = found.get(channel, ([0.0] * nbins, [0.0] * nbins))
            factors = scale * rng.lognormal(0.0, 0.3, size=nbins)
            for b in range(nbins):
                columns["point"].append(f"h{k:05d}")
                columns["m1"].append(m1 + rng.uniform(-10, 10))
                columns["m2"].append(m2)
                columns["source"].append(patch.name)
                columns["scale"].append(scale)
                columns["channel"].append(channel)
                columns["bin"].append(b)
                columns["yield"].append(data[b] * factors[b])
                columns["uncertainty"].append(mc[b] * factors[b])
    frame = pd.DataFrame(columns)
    # a label is one value a hypothesis: the jittered m1 of its first row
    frame["m1"] = frame.groupby("point", sort=False)["m1"].transform("first")
    return frame


def _peak_rss(process: subprocess.Popen, peak: list) -> None:
    """Sample the summed RSS of ``process`` and its descendants until it ends."""
    root = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)


def run_hfpipe(background: Path, table: Path, config: Path, output: Path, workers: int | None):
    command = [sys.executable, "-m", "hfpipe", "scan", str(background), "--signals", str(table)]
    command += ["--signals-config", str(config), "-o", str(output)]
    if workers is not None:
        command += ["--workers", str(workers)]
    cache = tempfile.mkdtemp(prefix="hfpipe-cold-cache-")
    env = dict(os.environ, HFPIPE_COMPILATION_CACHE=cache)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    peak = [0]
    sampler = threading.Thread(target=_peak_rss, args=(process, peak))
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"hfpipe scan failed:\n{stderr[-3000:]}")
    return wall, peak[0], stderr.strip().splitlines()[-1]


def run_spey_pyhf(workspace: dict, patches: list) -> list[float]:
    import spey

    seconds = []
    for patch in patches:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = spey.get_backend("pyhf")(
                background_only_model=workspace, signal_patch=list(patch.operations)
            )
            model.exclusion_confidence_level()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", default="../shared/data", type=Path)
    parser.add_argument("--hypotheses", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=None, help="default: every core")
    parser.add_argument("--spey-hypotheses", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    folder = args.data / "atlas-1lbb"
    background = folder / "BkgOnly.json.gz"
    workspace = spec.load_workspace(background)
    patchset = spec.load_patchset(folder / "patchset.json.gz")
    work = Path(tempfile.mkdtemp(prefix="hfpipe-signals-"))
    table = synthetic_table(workspace, patchset, args.hypotheses, args.seed)
    table.to_parquet(work / "signals.parquet", index=False)
    (work / "signals.yaml").write_text(yaml.safe_dump(CONFIG))
    print(f"{args.hypotheses} hypotheses, {len(table)} rows → {work / 'signals.parquet'}")

    wall, peak, summary = run_hfpipe(
        background,
        work / "signals.parquet",
        work / "signals.yaml",
        work / "out.parquet",
        args.workers,
    )
    result = pd.read_parquet(work / "out.parquet")
    status = result["status"].value_counts().to_dict()
    unexplained = int(((result["status"] != "ok") & (result["message"] == "")).sum())
    print(f"hfpipe scan --signals ({summary})")
    print(
        f"  hfpipe: {wall:.1f} s wall for {len(result)} hypotheses, cold, workers={args.workers or 'every core'}"
        f" ({wall / len(result) * 1e3:.1f} ms a hypothesis); peak RSS {peak / 2**30:.2f} GiB;"
        f" status {status}; not ok without a reason: {unexplained}"
    )

    bound = spec.load_signals(work / "signals.parquet", work / "signals.yaml").bind(workspace)
    chosen = [bound[name] for name in bound.names[: args.spey_hypotheses]]
    seconds = run_spey_pyhf(json.loads(json.dumps(workspace)), chosen)
    later = seconds[1:] or seconds
    print(
        f"  spey-pyhf: {', '.join(f'{s:.1f}' for s in seconds)} s for {len(seconds)} hypotheses"
        f" (first includes pyhf's JAX compilation); {np.mean(later):.1f} s a hypothesis after it"
    )
    ours = wall / len(result)
    print(
        f"  ratio (spey-pyhf per hypothesis / hfpipe per hypothesis): {np.mean(later) / ours:.0f}x"
        f"; spey-pyhf for all {len(result)}: ~{np.mean(later) * len(result) / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
