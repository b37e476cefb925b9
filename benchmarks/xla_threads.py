"""Does XLA's CPU runtime still wedge with a multi-threaded intra-op pool? (hfpipe/_jax.py)

Batched asymptotic tests of ATLAS 1Lbb points (``--points``, in vmapped batches of 1, 8
and 32 points) in one process, with XLA's intra-op pool either of one thread (hfpipe's
setting) or sized to every CPU (``--threads all``: hfpipe's one-thread start is bypassed
by disabling ``os.sched_setaffinity`` before hfpipe is imported). Each batch size's scan
is timed; a scan that does not return within ``--limit`` seconds is a wedge: the
threads' stacks are dumped and the script exits with status 1. Run each setting in a
fresh process:

    python benchmarks/xla_threads.py [../shared/data] --threads one|all [--points 64]
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", default="../shared/data", type=Path)
    parser.add_argument("--threads", choices=["one", "all"], default="one")
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds a scan may take")
    args = parser.parse_args()
    if args.threads == "all":
        os.sched_setaffinity = lambda *_, **__: None  # XLA then sizes its pool to every CPU

    from hfpipe import spec
    from hfpipe.scanning import scan

    folder = args.data / "atlas-1lbb"
    workspace = spec.load_workspace(folder / "BkgOnly.json.gz")
    patchset = spec.load_patchset(folder / "patchset.json.gz")
    names = patchset.names[: args.points]
    for batch in (1, 8, 32):
        faulthandler.dump_traceback_later(args.limit, exit=True)
        start = time.perf_counter()
        frame = scan(workspace, patchset, points=names, workers=1, batch_size=batch)
        faulthandler.cancel_dump_traceback_later()
        print(
            f"XLA threads: {args.threads}, batches of {batch}: {len(names)} points in "
            f"{time.perf_counter() - start:.1f} s, {(frame['status'] == 'ok').sum()} ok",
            flush=True,
        )


if __name__ == "__main__":
    main()
