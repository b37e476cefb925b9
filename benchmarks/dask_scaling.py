"""Wall time of a whole-patchset scan on a Dask LocalCluster of 1 and of 2 workers.

Each worker is a fresh process: it compiles the scan's functions once, then runs every
batch it gets. "cold" runs compile in every worker; "warm" runs share a JAX persistent
compilation cache that the cold runs filled (as workers on a shared filesystem can), so
they show the scaling of the fits themselves. Prints wall times and the 2-vs-1 ratio.

    python benchmarks/dask_scaling.py ../shared/data/atlas-1lbb [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _wall(background: Path, patchset: Path, workers: int, batch_size: int, env: dict) -> float:
    from distributed import Client, LocalCluster

    from hfpipe.scanning import scan

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None, env=env
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        start = time.perf_counter()
        frame = scan(background, patchset, client=client, batch_size=batch_size)
        wall = time.perf_counter() - start
    assert (frame["status"] == "ok").sum() > 0.9 * len(frame), frame["message"]
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    suffix = ".json.gz" if (args.folder / "BkgOnly.json.gz").exists() else ".json"
    inputs = args.folder / f"BkgOnly{suffix}", args.folder / f"patchset{suffix}"
    with tempfile.TemporaryDirectory() as cache:
        env = {
            "JAX_COMPILATION_CACHE_DIR": cache,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        }
        walls = {}
        for kind in ("cold", "warm"):
            for workers in (1, 2):
                if kind == "cold":  # an empty cache: every worker compiles
                    for entry in Path(cache).iterdir():
                        entry.unlink()
                walls[kind, workers] = _wall(*inputs, workers, args.batch_size, env)
                print(f"{kind}: {workers} worker(s): {walls[kind, workers]:.1f} s", flush=True)
    print(f"cores: {os.cpu_count()}; batch size {args.batch_size}")
    for kind in ("cold", "warm"):
        print(f"{kind}: 2 workers / 1 worker wall = {walls[kind, 2] / walls[kind, 1]:.2f}")


if __name__ == "__main__":
    main()
