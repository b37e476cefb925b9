# Input functions of rules/discovery.smk, the model-independent limit table: its options
# from an analysis' `discovery` entry, and the outputs of the default target.


def discovery_options(wildcards):
    """`hfpipe discovery-table` options from the analysis' `discovery` entry and the
    settings (interpolation codes, measurement)."""
    entry = ANALYSES[wildcards.analysis]["discovery"]
    settings = config["settings"]
    options = [f"--region {shlex.quote(region)}" for region in entry["regions"]]
    if entry.get("lumi") is not None:
        options += [
            f"--lumi {entry['lumi']}",
            f"--lumi-unit {entry.get('lumi_unit', 'fb-1')}",
        ]
    options += [
        f"--cl {settings['cl']}",
        f"--calctype {entry.get('calctype', 'asymptotics')}",
        f"--normsys-code {settings['normsys_code']}",
        f"--histosys-code {settings['histosys_code']}",
    ]
    if entry.get("calctype") == "toybased":
        options += [
            f"--ntoys {entry.get('ntoys', 1000)}",
            f"--seed {entry.get('seed', 0)}",
        ]
    if settings.get("measurement"):
        options.append(f"--measurement {shlex.quote(settings['measurement'])}")
    return " ".join(options)


def discovery_outputs(wildcards):
    """Every listed analysis' discovery table (part of the default target)."""
    return [
        f"results/{name}/discovery.{suffix}"
        for name, analysis in ANALYSES.items()
        if analysis.get("discovery")
        for suffix in ("parquet", "md", "tex")
    ]
