"""Wall time of one asymptotic CLs (q~, mu=1) on ATLAS 1Lbb C1N2_Wh_hbb_500_100:
``hfpipe cls`` (a fresh process, compile included) against pyhf 0.7.6 numpy+scipy in
the same run. Usage: ``python benchmarks/cls_single_point.py [../shared/data]``."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

POINT = "C1N2_Wh_hbb_500_100"


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[2] / "shared" / "data")
    folder = data / "atlas-1lbb"
    start = time.perf_counter()
    out = subprocess.run(
        [
            "hfpipe",
            "cls",
            str(folder / "BkgOnly.json.gz"),
            "--patchset",
            str(folder / "patchset.json.gz"),
            "--point",
            POINT,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    hfpipe_seconds = time.perf_counter() - start
    import pyhf

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    with gzip.open(folder / "BkgOnly.json.gz") as f:
        workspace = pyhf.Workspace(json.load(f))
    with gzip.open(folder / "patchset.json.gz") as f:
        patchset = pyhf.PatchSet(json.load(f))
    patched = pyhf.Workspace(patchset.apply(workspace, POINT))
    model = patched.model()
    cls_obs, _ = pyhf.infer.hypotest(
        1.0, patched.data(model), model, test_stat="qtilde", return_expected_set=True
    )
    pyhf_seconds = time.perf_counter() - start
    print(f"hfpipe cls: {hfpipe_seconds:.2f} s  {out.stdout.strip()}")
    print(f"pyhf numpy+scipy: {pyhf_seconds:.2f} s  CLs_obs {float(cls_obs):.6f}")
    print(f"ratio pyhf/hfpipe: {pyhf_seconds / hfpipe_seconds:.2f}")


if __name__ == "__main__":
    main()
