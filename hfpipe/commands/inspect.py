"""``hfpipe inspect``: a summary of a workspace."""

from __future__ import annotations

from collections import Counter

import click

from hfpipe.commands import one_line_errors

__all__ = ["inspect", "summary"]


def summary(ws: dict, label: str) -> str:
    """Channels, samples, modifiers, parameters and measurements of a validated
    workspace, as lines of text (``label`` names it in the first)."""
    lines = [f"workspace: {label}"]
    lines.append(f"channels ({len(ws['channels'])}):")
    modifier_types: Counter = Counter()
    parameters: dict[str, str] = {}
    for channel in sorted(ws["channels"], key=lambda c: c["name"]):
        nbins = len(channel["samples"][0]["data"])
        samples = ", ".join(s["name"] for s in channel["samples"])
        lines.append(f"  {channel['name']}: {nbins} bin(s); samples: {samples}")
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                modifier_types[modifier["type"]] += 1
                parameters.setdefault(modifier["name"], modifier["type"])
    lines.append("modifiers: " + ", ".join(f"{k} {v}" for k, v in sorted(modifier_types.items())))
    by_type = Counter(parameters.values())
    lines.append(
        f"parameters ({len(parameters)} named): "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()))
    )
    for measurement in ws["measurements"]:
        config = measurement["config"]
        present = "" if config["poi"] in parameters else " (not in this workspace: add signal)"
        lines.append(f"measurement {measurement['name']}: POI {config['poi']}{present}")
    observed = sum(sum(o["data"]) for o in ws["observations"])
    lines.append(f"observed events: {observed:g}")
    return "\n".join(lines)


@click.command()
@click.argument("workspace", type=click.Path(dir_okay=False))
@one_line_errors
def inspect(workspace):
    """Summarise a workspace: channels, samples, modifiers, parameters, measurements."""
    from hfpipe import spec

    click.echo(summary(spec.load_workspace(workspace), workspace))
