# Input functions and the command line each rule runs; no computing happens here.
import json
import os
import re
import shlex
import sys

# Jobs run hfpipe with the interpreter that runs Snakemake (and its jobs), so the hfpipe
# they use is the one installed next to Snakemake — whatever PATH a batch node has.
HFPIPE = f"{shlex.quote(sys.executable)} -m hfpipe"

ANALYSES = {analysis["name"]: analysis for analysis in config["analyses"]}
ALL_OUTPUTS = ["scan.parquet", "contour.png", "contour.pdf"]


wildcard_constraints:
    analysis="|".join(map(re.escape, ANALYSES)),
    chunk=r"\d\d\d+",


def analysis_inputs(wildcards):
    """The workspace and patchset of an analysis."""
    analysis = ANALYSES[wildcards.analysis]
    return {"workspace": analysis["workspace"], "patchset": analysis["patchset"]}


def points_option(wildcards):
    """`--points a,b,c` for a chosen list of points; nothing for `all`."""
    points = ANALYSES[wildcards.analysis]["points"]
    return "" if points == "all" else "--points " + shlex.quote(",".join(points))


def scan_options():
    """`hfpipe scan` options from the config's settings (same for every chunk)."""
    settings = config["settings"]
    options = [
        f"--test-stat {settings['test_stat']}",
        f"--poi-value {settings['poi_value']}",
        f"--normsys-code {settings['normsys_code']}",
        f"--histosys-code {settings['histosys_code']}",
    ]
    if settings["upper_limits"]:
        options += ["--upper-limits", f"--cl {settings['cl']}"]
    if settings["calctype"] != "asymptotics":
        options += [
            f"--calctype {settings['calctype']}",
            f"--ntoys {settings['ntoys']}",
            f"--seed {settings['seed']}",
        ]
    if settings.get("measurement"):
        options.append(f"--measurement {shlex.quote(settings['measurement'])}")
    if settings.get("batch_size"):
        options.append(f"--batch-size {settings['batch_size']}")
    return " ".join(options)


def job_environment():
    """Environment settings prefixed to a scan job's command: JAX's persistent compilation
    cache in `compilation_cache` (an absolute path, so it holds wherever the job starts),
    from which a job loads the fits an earlier job compiled instead of compiling them."""
    cache = config["compilation_cache"]
    if not cache:
        return ""
    return f"JAX_COMPILATION_CACHE_DIR={shlex.quote(os.path.abspath(cache))} "


def plan(analysis):
    """An analysis's plan from the `prepare` checkpoint (its points and chunks)."""
    with open(checkpoints.prepare.get(analysis=analysis).output[0]) as f:
        return json.load(f)


def chunk_points(wildcards):
    """Comma-separated point names of one chunk."""
    return ",".join(plan(wildcards.analysis)["chunks"][int(wildcards.chunk)])


def parts_of(analysis):
    """Every chunk's Parquet part of an analysis (known once `prepare` has run)."""
    count = len(plan(analysis)["chunks"])
    return [f"results/{analysis}/parts/chunk_{k:03d}.parquet" for k in range(count)]


def chunk_parts(wildcards):
    return parts_of(wildcards.analysis)


def all_outputs(wildcards):
    """What `snakemake` makes by default: per analysis, the table, the contour, and also
    the parts, so that a deleted part is recomputed (alone) and merged again."""
    outputs = [f"results/{name}/{out}" for name in ANALYSES for out in ALL_OUTPUTS]
    return outputs + [part for name in ANALYSES for part in parts_of(name)]
