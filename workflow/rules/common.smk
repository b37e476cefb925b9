# Input functions and the command line each rule runs; no computing happens here.
import json
import os
import re
import shlex
import sys

from snakemake.settings.types import DeploymentMethod


# A command line that rules run, handed to each as a param ({params.hfpipe}), so that
# each names all its shell uses (snakemake --lint). It is not a str, so Snakemake leaves
# it out of the params it compares to decide a rerun, as it did when the shell read HFPIPE
# directly (where the interpreter lives is no input of the results).
class CommandLine:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    def __format__(self, spec):
        return format(self.text, spec)


# Jobs run hfpipe with the interpreter that runs Snakemake (and its jobs), so the hfpipe
# they use is the one installed next to Snakemake — whatever PATH a batch node has. With
# `--sdm conda`, a job runs the hfpipe of its rule's environment (workflow/envs/hfpipe.yaml).
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    HFPIPE = CommandLine("python -m hfpipe")
else:
    HFPIPE = CommandLine(f"{shlex.quote(sys.executable)} -m hfpipe")
#: the software environment of every rule, for `--sdm conda`
ENVIRONMENT = "../envs/hfpipe.yaml"

ANALYSES = {analysis["name"]: analysis for analysis in config["analyses"]}
ALL_OUTPUTS = ["scan.parquet", "contour.png", "contour.pdf"]


wildcard_constraints:
    analysis="|".join(map(re.escape, ANALYSES)),
    chunk=r"\d\d\d+",


def analysis_inputs(wildcards):
    """The workspace and the points of an analysis: its patchset, or its signal table
    (and the table's config)."""
    analysis = ANALYSES[wildcards.analysis]
    inputs = {"workspace": analysis["workspace"]}
    for key in ("patchset", "signals", "signals_config"):
        if analysis.get(key):
            inputs[key] = analysis[key]
    return inputs


def points_source(wildcards):
    """Where an hfpipe command finds the points: PATCHSET, or `--signals TABLE`
    (`--signals-config YAML`)."""
    analysis = ANALYSES[wildcards.analysis]
    if analysis.get("patchset"):
        return shlex.quote(analysis["patchset"])
    source = f"--signals {shlex.quote(analysis['signals'])}"
    if analysis.get("signals_config"):
        source += f" --signals-config {shlex.quote(analysis['signals_config'])}"
    return source


def points_option(wildcards):
    """`--points a,b,c` for a chosen list of points; nothing for `all`."""
    points = ANALYSES[wildcards.analysis]["points"]
    return "" if points == "all" else f"--points {shlex.quote(','.join(points))}"


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
    from which a job loads the fits an earlier job compiled instead of compiling them.
    """
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


def rank_options():
    """`hfpipe rank` options from the config's settings (interpolation codes, measurement)."""
    settings = config["settings"]
    options = [
        f"--normsys-code {settings['normsys_code']}",
        f"--histosys-code {settings['histosys_code']}",
        f"--top {settings['rank_top']}",
    ]
    if settings.get("measurement"):
        options.append(f"--measurement {shlex.quote(settings['measurement'])}")
    return " ".join(options)


def ranking_outputs(wildcards):
    """Every ranked point's table and plot (part of the default target)."""
    return [
        f"results/{name}/ranking/{point}.{suffix}"
        for name, analysis in ANALYSES.items()
        for point in analysis.get("rank", [])
        for suffix in ("parquet", "png")
    ]
