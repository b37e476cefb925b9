"""``hfpipe scan``: CLs (and upper limits) for every point of a patchset, or every
hypothesis of a signal table, → Parquet."""

from __future__ import annotations

import click

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import (
    cl_option,
    compile_options,
    sampling_options,
    toy_batch_size_option,
)
from hfpipe.errors import HfpipeError
from hfpipe.infer.teststats import LIMIT_TEST_STATISTICS

__all__ = ["scan", "signal_source"]


def signal_source(patchset: str | None, signals: str | None, signals_config: str | None):
    """PATCHSET, or the --signals table with its --signals-config: exactly one of the two."""
    if (patchset is None) == (signals is None):
        raise HfpipeError("give either PATCHSET or --signals TABLE (exactly one)")
    if signals is None:
        if signals_config is not None:
            raise HfpipeError("--signals-config goes with --signals")
        return patchset
    from hfpipe.spec import load_signals

    return load_signals(signals, signals_config)


@click.command()
@click.argument("background", type=click.Path(dir_okay=False))
@click.argument("patchset", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--signals",
    type=click.Path(dir_okay=False),
    help="Signal hypotheses as a table (.parquet or .csv, long or wide form; see"
    " docs/reinterpretation.md), instead of PATCHSET.",
)
@click.option(
    "--signals-config",
    type=click.Path(dir_okay=False),
    help="YAML: how the table's rows become signal samples (sample name, POI, lumi,"
    " uncertainty, shared modifiers, order). Default: as HEPData patchsets are written.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Parquet file to write (atomically).",
)
@click.option("--points", help="Comma-separated patch names (default: all).")
@click.option("--analysis", help="Analysis name in the table (default: the patchset's).")
@click.option("--upper-limits", is_flag=True, help="Also compute upper limits on the POI.")
@click.option(
    "--significance",
    is_flag=True,
    help="Also the discovery p0 and Z, observed and expected (columns p0_obs, p0_exp, "
    "z_obs, z_exp; a q0 test of every point).",
)
@cl_option("Confidence level of the upper limits.")
@click.option(
    "--test-stat", type=click.Choice(LIMIT_TEST_STATISTICS), default="qtilde", show_default=True
)
@click.option("--poi-value", type=float, default=1.0, show_default=True)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Points per compiled call (default: 1 on a CPU, 64 on a GPU).",
)
@compile_options
@click.option(
    "--scheduler",
    help="Run the batches on Dask: local (a LocalCluster), slurm, condor (dask-jobqueue,"
    " see --cluster-config) or a scheduler address (tcp://host:8786). Default: in this process.",
)
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML cluster config for --scheduler local|slurm|condor (cores, memory, gpus, ...).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    help="Processes of this machine that run the batches [default: every core the batches "
    "keep busy]; with --scheduler, Dask workers (local) or batch jobs to start.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip points that an earlier run with the same output, inputs and settings finished.",
)
@sampling_options
@toy_batch_size_option
@one_line_errors
def scan(
    background,
    patchset,
    signals,
    signals_config,
    output,
    points,
    analysis,
    upper_limits,
    significance,
    cl,
    test_stat,
    poi_value,
    batch_size,
    measurement,
    normsys_code,
    histosys_code,
    clip_negative_yields,
    scheduler,
    cluster_config,
    workers,
    resume,
    calctype,
    ntoys,
    seed,
    toy_batch_size,
):
    """CLs (and upper limits) for every point of PATCHSET, or every hypothesis of a
    --signals table, on BACKGROUND → Parquet.

    Finished batches are kept next to the output (OUTPUT.parts/) as they come in; a
    killed scan rerun with the same output computes only the missing points.
    """
    from hfpipe.scanning import ScanSettings, scan_to_parquet
    from hfpipe.scanning.cluster import connect

    points_source = signal_source(patchset, signals, signals_config)

    overrides = {"batch_size": batch_size} if batch_size else {}
    settings = ScanSettings(
        mu=poi_value,
        test_stat=test_stat,
        upper_limits=upper_limits,
        significance=significance,
        cl=cl,
        normsys_code=normsys_code,
        histosys_code=histosys_code,
        measurement=measurement,
        calctype=calctype,
        ntoys=ntoys,
        seed=seed,
        toy_batch_size=toy_batch_size,
        clip_negative_yields=clip_negative_yields,
        **overrides,
    )
    chosen = [p.strip() for p in points.split(",")] if points else None
    with connect(scheduler, cluster_config, workers) as client:
        frame = scan_to_parquet(
            background,
            points_source,
            output,
            points=chosen,
            analysis=analysis,
            settings=settings,
            resume=resume,
            client=client,
            workers=workers if client is None else None,
            progress=True,
        )
    bad = frame[frame["status"] != "ok"]
    for _, row in frame[(frame["status"] != "ok") | (frame["message"] != "")].iterrows():
        warn(f"{row['point']}: {row['status']}: {row['message']}")
    click.echo(
        f"{len(frame)} points ({frame.attrs['computed']} computed,"
        f" {frame.attrs['reused']} from an earlier run), {len(bad)} not ok → {output}",
        err=True,
    )
