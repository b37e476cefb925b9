"""``hfpipe discovery-table``: the model-independent upper limits of single-bin regions
(S_obs^95, S_exp^95 ± 1σ, ⟨εσ⟩_obs^95, CL_B, p(s = 0) and Z), as a Parquet table and as
Markdown or LaTeX for a paper."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import cl_option, compile_options, sampling_options
from hfpipe.commands.report import FAILED_EXIT_CODE
from hfpipe.results.discovery import LUMI_UNITS

__all__ = ["discovery_table"]


def _provenance(workspace: str, patches, settings: dict) -> dict:
    from hfpipe import __version__
    from hfpipe.spec.digests import file_sha256

    return {
        "hfpipe_version": __version__,
        "workspace": {"path": workspace, "sha256": file_sha256(workspace)},
        "patches": list(patches),
        "settings": settings,
    }


@click.command("discovery-table")
@click.argument("workspace", type=click.Path(dir_okay=False))
@click.option(
    "-p",
    "--patch",
    "patches",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="JSON Patch file applied to the workspace first (repeatable, in order).",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    required=True,
    help="A single-bin channel to compute the model-independent limits of (repeatable).",
)
@click.option("--lumi", type=click.FloatRange(0, min_open=True), help="Integrated luminosity.")
@click.option("--lumi-unit", type=click.Choice(LUMI_UNITS), default="fb-1", show_default=True)
@cl_option("Confidence level of the upper limits.")
@sampling_options
@click.option(
    "--signal-sample", default="signal", show_default=True, help="Name of the unit signal."
)
@click.option(
    "--poi", default="mu_Sig", show_default=True, help="Name of the signal's normalisation."
)
@compile_options
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Parquet table (written atomically)."
)
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the Markdown table here.")
@click.option("--latex", type=click.Path(dir_okay=False), help="Write the LaTeX tabular here.")
@one_line_errors
def discovery_table(
    workspace,
    patches,
    regions,
    lumi,
    lumi_unit,
    cl,
    calctype,
    ntoys,
    seed,
    signal_sample,
    poi,
    measurement,
    normsys_code,
    histosys_code,
    clip_negative_yields,
    output,
    markdown,
    latex,
):
    """Model-independent upper limits on the signal of each --region of the
    background-only WORKSPACE (a unit-yield signal with a free normalisation added to
    that region), printed as a Markdown table."""
    from hfpipe import spec
    from hfpipe.infer.calctypes import ToySettings
    from hfpipe.results.discovery import format_latex, format_markdown
    from hfpipe.scanning.discovery import discovery_table as make_table

    compile_settings = {
        "measurement": measurement,
        "normsys_code": normsys_code,
        "histosys_code": histosys_code,
        "clip_negative_yields": clip_negative_yields,
    }
    frame = make_table(
        workspace,
        list(regions),
        patches=[
            spec.Patch(path, (), tuple(spec.load_patch(path)), source=path) for path in patches
        ],
        cl=cl,
        lumi=lumi,
        lumi_unit=lumi_unit,
        calctype=calctype,
        toys=ToySettings(ntoys=ntoys, seed=seed),
        signal_sample=signal_sample,
        poi=poi,
        **compile_settings,
    )
    if output:
        from hfpipe.results import write_table

        settings = {**compile_settings, **frame.attrs, "regions": list(regions)}
        write_table(frame, output, _provenance(workspace, patches, settings))
    text = format_markdown(frame)
    if markdown:
        Path(markdown).write_text(text + "\n")
    if latex:
        Path(latex).write_text(format_latex(frame) + "\n")
    click.echo(text)
    failed = frame[frame["status"] != "ok"]
    for row in failed.itertuples():
        warn(f"{row.region}: {row.message}")
    if len(failed):
        sys.exit(FAILED_EXIT_CODE)
