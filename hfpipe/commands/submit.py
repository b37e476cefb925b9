"""``hfpipe submit``: send a job to an ``hfpipe serve`` service and print its result."""

from __future__ import annotations

import json
import os
import sys

import click

from hfpipe.commands import fail, one_line_errors, warn
from hfpipe.commands.report import FAILED_EXIT_CODE
from hfpipe.errors import HfpipeError
from hfpipe.infer.teststats import TEST_STATISTICS
from hfpipe.spec.modifiers import HISTOSYS_CODES, NORMSYS_CODES

__all__ = ["submit"]

#: options passed on as the job's settings when given (the service has the defaults)
_SETTINGS = [
    click.option("--poi-value", type=float, help="Tested POI value (hypotest, scan)."),
    click.option("--test-stat", type=click.Choice(TEST_STATISTICS)),
    click.option("--calctype", type=click.Choice(["asymptotics", "toybased"])),
    click.option("--ntoys", type=click.IntRange(1)),
    click.option("--seed", type=int),
    click.option("--fixed-poi", type=float, help="Hold the POI at this value (fit)."),
    click.option("--cl", type=float, help="Confidence level (upper_limits, scan)."),
    click.option("--upper-limits", is_flag=True, default=None, help="Scan: also limits."),
    click.option("--batch-size", type=click.IntRange(1), help="Scan: points per batch."),
    click.option("--measurement"),
    click.option("--normsys-code", type=click.Choice(NORMSYS_CODES)),
    click.option("--histosys-code", type=click.Choice(HISTOSYS_CODES)),
    click.option("--clip-negative-yields", is_flag=True, default=None),
]


def _with_settings(command):
    for option in reversed(_SETTINGS):
        command = option(command)
    return command


def _token(token_file: str | None) -> str | None:
    if token_file is None:
        return None
    from hfpipe.service.auth import load_tokens

    tokens = load_tokens(token_file, {})
    if not tokens:
        raise HfpipeError(f"{token_file}: no token in the file")
    return tokens[0]


def _point_patch(workspace: str, patchset: str, point: str) -> list:
    """The operations of a patchset point, the patchset checked against the workspace."""
    from hfpipe import spec

    loaded = spec.load_patchset(patchset)
    spec.verify_patchset(loaded, spec.load_workspace(workspace), file=patchset)
    return list(loaded[point].operations)


@click.command()
@click.argument("url")
@click.argument("workspace", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--task",
    type=click.Choice(["hypotest", "fit", "upper_limits", "scan"]),
    default="hypotest",
    show_default=True,
)
@click.option(
    "-p",
    "--patch",
    "patches",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="JSON Patch file applied to WORKSPACE (repeatable, in order).",
)
@click.option(
    "--patchset",
    type=click.Path(dir_okay=False, exists=True),
    help="Patchset: with --point for one model, the signal points of a scan.",
)
@click.option("--point", help="The patchset's point to apply (hypotest, fit, upper_limits).")
@click.option("--points", help="Scan: comma-separated patch names (default: all).")
@click.option("--analysis", help="Scan: analysis name in the table.")
@_with_settings
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File whose first token is sent (default: $HFPIPE_SERVICE_TOKEN).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the result, or print the job id and return.",
)
@click.option("--timeout", type=float, help="Seconds to wait at most.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Scan: write the job's Parquet table here.",
)
@one_line_errors
def submit(
    url,
    workspace,
    task,
    patches,
    patchset,
    point,
    points,
    analysis,
    token_file,
    wait,
    timeout,
    output,
    **settings,
):
    """Submit a TASK on WORKSPACE (for a scan: the background) to the service at URL and
    print the result as the command would (hfpipe cls, fit, upper-limit), or the job id.

    Exits 1 if the job failed, 3 if its fits did not all converge.
    """
    from hfpipe.client import Client, JobFailed

    client = Client(url, _token(token_file) or os.environ.get("HFPIPE_SERVICE_TOKEN"))
    given = {name: value for name, value in settings.items() if value is not None}
    if output and task != "scan":
        raise HfpipeError("-o is for the table of a scan (--task scan)")
    if task == "scan":
        if patchset is None:
            raise HfpipeError("--task scan needs --patchset")
        chosen = [p.strip() for p in points.split(",")] if points else None
        job = client.submit(
            task="scan",
            background=workspace,
            patchset=patchset,
            points=chosen,
            analysis=analysis,
            settings=given,
        )
    else:
        if (patchset is None) != (point is None):
            raise HfpipeError("--patchset and --point go together")
        operations = [*patches] + ([_point_patch(workspace, patchset, point)] if point else [])
        job = client.submit(workspace, task=task, patches=operations, settings=given)
    if not wait:
        click.echo(json.dumps({"id": job}))
        return
    try:
        result = client.wait(job, timeout)
    except (JobFailed, TimeoutError) as error:
        fail(f"error: {error}", 1)
    status = client.status(job)
    for text in status["warnings"]:
        warn(text)
    if output:
        client.table(job, output)
    click.echo(json.dumps(result))
    sys.exit(0 if status["ok"] in (True, None) else FAILED_EXIT_CODE)
