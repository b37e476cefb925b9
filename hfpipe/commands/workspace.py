"""``hfpipe workspace …`` and ``hfpipe patchset …``: workspace surgery on the command line.

The commands and options are pyhf's (``pyhf combine``, ``prune``, ``rename``, ``sort``,
``digest``, ``patchset extract|apply|verify|inspect``) and give the same JSON, written
as pyhf writes it (sorted keys, indent 4) to ``-o FILE`` (gzip-compressed for ``.gz``)
or to stdout; ``-`` reads a workspace from stdin. Added: ``prune --match all`` (remove
only what matches every filter), ``remove`` (modifiers by glob pattern within chosen
channels and samples), ``prune-size`` (negligible systematics, with a report) and
``patchset rebase`` (point a patchset at a pruned background). The work is done by the
pure functions of :mod:`hfpipe.spec`.
"""

from __future__ import annotations

import gzip
import json
import sys

import click

from hfpipe.commands import one_line_errors
from hfpipe.spec.modifiers import MODIFIER_TYPES
from hfpipe.spec.reduce import SIZE_TYPES

__all__ = ["patchset", "workspace"]

_OUTPUT = click.option(
    "-o",
    "--output",
    "--output-file",
    "output",
    type=click.Path(dir_okay=False),
    help="JSON file to write (.gz: compressed) [default: stdout].",
)


def _load(source: str) -> dict:
    """A validated workspace from a path (``.json``, ``.json.gz``) or ``-`` (stdin)."""
    from hfpipe import spec

    if source == "-":
        return spec.load_workspace(json.load(sys.stdin), name="<stdin>")
    return spec.load_workspace(source)


def _write(doc, output: str | None) -> None:
    """As pyhf writes JSON (sorted keys, indent 4): to stdout, or atomically to a file."""
    text = json.dumps(doc, indent=4, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    from hfpipe.results.atomic import atomic_path

    with atomic_path(output) as temporary:
        data = text.encode("utf-8")
        temporary.write_bytes(gzip.compress(data, mtime=0) if output.endswith(".gz") else data)
    click.echo(f"→ {output}", err=True)


@click.group()
def workspace() -> None:
    """Combine, prune, rename, sort and fingerprint pyhf JSON workspaces."""


@workspace.command()
@click.argument("first", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("second", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-j",
    "--join",
    type=click.Choice(["none", "outer", "left outer", "right outer"]),
    default="none",
    show_default=True,
    help="How items of the same name on both sides are joined (pyhf's join).",
)
@click.option(
    "--merge-channels/--no-merge-channels",
    default=False,
    help="Merge the samples of same-named channels (outer joins only).",
)
@_OUTPUT
@one_line_errors
def combine(first, second, join, merge_channels, output):
    """Combine two workspaces into one (pyhf combine).

    Modifiers of the same name become one parameter (correlated). Clashes (a channel in
    both with join none, different channels of one name with an outer join, a modifier
    name used with incompatible types) end in one line naming both sides.
    """
    from hfpipe import spec
    from hfpipe.errors import HfpipeError

    if merge_channels and join == "none":
        raise HfpipeError("--merge-channels needs an outer join (--join outer …)")
    combined = spec.combine_workspaces(
        _load(first),
        _load(second),
        join=join,
        merge_channels=merge_channels,
        left_name=first,
        right_name=second,
    )
    _write(combined, output)


def _pairs(name: str, what: str):
    return click.option(
        *name.split(),
        multiple=True,
        type=(str, str),
        metavar="OLD NEW",
        help=f"Rename a {what} (repeatable).",
    )


@workspace.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@_pairs("-c --channel", "channel (and its observation)")
@_pairs("-s --sample", "sample in every channel")
@_pairs("-m --modifier", "modifier (its settings and the POI too)")
@_pairs("--measurement", "measurement")
@_OUTPUT
@one_line_errors
def rename(source, channel, sample, modifier, measurement, output):
    """Rename channels, samples, modifiers and measurements (pyhf rename)."""
    from hfpipe import spec

    renamed = spec.rename_workspace(
        _load(source),
        channels=dict(channel),
        samples=dict(sample),
        modifiers=dict(modifier),
        measurements=dict(measurement),
        file=source,
    )
    _write(renamed, output)


def _types_option(help_text: str, choices=MODIFIER_TYPES):
    return click.option(
        "-t", "--modifier-type", multiple=True, type=click.Choice(choices), help=help_text
    )


@workspace.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-c", "--channel", multiple=True, help="Channel to prune (repeatable).")
@click.option("-s", "--sample", multiple=True, help="Sample to prune (repeatable).")
@click.option("-m", "--modifier", multiple=True, help="Modifier name to prune (repeatable).")
@_types_option("Modifier type to prune (repeatable).")
@click.option("--measurement", multiple=True, help="Measurement to prune (repeatable).")
@click.option(
    "--match",
    type=click.Choice(["any", "all"]),
    default="any",
    show_default=True,
    help="any: prune whatever matches a filter (pyhf); all: only what matches every filter.",
)
@_OUTPUT
@one_line_errors
def prune(source, channel, sample, modifier, modifier_type, measurement, match, output):
    """Prune channels, samples, modifiers and measurements (pyhf prune).

    With --match all, `-t normsys -s ttbar` prunes the normsys modifiers of sample ttbar
    only, and `-m jes -c SR` the jes modifiers of channel SR only.
    """
    from hfpipe import spec

    pruned = spec.prune_workspace(
        _load(source),
        modifiers=modifier,
        modifier_types=modifier_type,
        samples=sample,
        channels=channel,
        measurements=measurement,
        match=match,
        file=source,
    )
    _write(pruned, output)


@workspace.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-m", "--modifier", "patterns", multiple=True, required=True, help="Name pattern (glob)."
)
@click.option("-c", "--channel", multiple=True, help="Only in channels matching (glob).")
@click.option("-s", "--sample", multiple=True, help="Only in samples matching (glob).")
@_types_option("Only modifiers of this type (repeatable).")
@_OUTPUT
@one_line_errors
def remove(source, patterns, channel, sample, modifier_type, output):
    """Remove the modifiers matching a pattern within the given channels and samples only.

    Everything else stays as it was. For example `-m 'sig_*' -s ttbar -s wjets` takes a
    signal-only systematic off the backgrounds.
    """
    from hfpipe import spec

    ws = _load(source)
    before = _count_modifiers(ws)
    reduced = spec.remove_modifiers(
        ws,
        patterns,
        channels=channel or None,
        samples=sample or None,
        types=modifier_type or None,
        file=source,
    )
    click.echo(f"removed {before - _count_modifiers(reduced)} modifiers", err=True)
    _write(reduced, output)


def _count_modifiers(ws: dict) -> int:
    return sum(len(s["modifiers"]) for c in ws["channels"] for s in c["samples"])


@workspace.command("prune-size")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--threshold",
    type=click.FloatRange(0),
    default=1e-3,
    show_default=True,
    help="Prune normsys/histosys whose relative effect is below this in every bin.",
)
@click.option(
    "--stat-threshold",
    type=click.FloatRange(0),
    help="Zero staterror/shapesys bins of relative width below this [default: --threshold].",
)
@_types_option(
    "Only these types (repeatable) [default: all four].",
    choices=SIZE_TYPES,
)
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Write what was removed as JSON here."
)
@_OUTPUT
@one_line_errors
def prune_size(source, threshold, stat_threshold, modifier_type, report, output):
    """Prune systematics too small to matter (see docs/workspace.md), and say what went.

    The summary goes to stderr; --report writes every removal (channel, samples,
    modifier, type, effect, bins). The pruned background no longer matches its
    patchset's digest: `hfpipe patchset rebase` makes a patchset for it.
    """
    from hfpipe import spec

    pruned, removed = spec.prune_by_size(
        _load(source),
        threshold,
        stat_threshold=stat_threshold,
        types=modifier_type or SIZE_TYPES,
        file=source,
    )
    click.echo(f"{source}: {removed.summary()}", err=True)
    if removed.parameters:
        click.echo(f"parameters gone: {', '.join(removed.parameters)}", err=True)
    if report:
        document = {
            "threshold": threshold,
            "stat_threshold": threshold if stat_threshold is None else stat_threshold,
            "counts": removed.counts(),
            "parameters": list(removed.parameters),
            "removals": removed.records(),
        }
        _write(document, report)
    _write(pruned, output)


@workspace.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@_OUTPUT
@one_line_errors
def sort(source, output):
    """Sort a workspace (pyhf sort): channels, samples, modifiers, … by name."""
    from hfpipe import spec

    _write(spec.sort_workspace(_load(source), file=source), output)


@workspace.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-a", "--algorithm", multiple=True, default=["sha256"], show_default=True, help="hashlib name."
)
@click.option("-j/-p", "--json/--plaintext", "as_json", default=False, help="Output format.")
@one_line_errors
def digest(source, algorithm, as_json):
    """Print the workspace's digest, as pyhf digest (what patchsets record)."""
    from hfpipe import spec
    from hfpipe.errors import HfpipeError

    ws = _load(source)
    try:
        digests = {name: spec.workspace_digest(ws, name) for name in algorithm}
    except ValueError as error:
        raise HfpipeError(str(error)) from None
    if as_json:
        click.echo(json.dumps(digests, indent=4, sort_keys=True))
    else:
        click.echo("\n".join(f"{name}:{value}" for name, value in digests.items()))


@click.group()
def patchset() -> None:
    """Extract, apply, verify, inspect and rebase pyhf patchsets."""


def _patchset_document(source: str) -> dict:
    """A patchset's raw JSON (values spelled as in the file), checked by load_patchset."""
    from hfpipe import spec

    document = spec.load_json(source)
    spec.load_patchset(document, name=source)
    return document


@patchset.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="The point (patch name) to extract.")
@click.option("--with-metadata/--without-metadata", default=False, show_default=True)
@_OUTPUT
@one_line_errors
def extract(source, name, with_metadata, output):
    """Print one point's JSON Patch (pyhf patchset extract)."""
    from hfpipe import spec

    document = _patchset_document(source)
    _write(spec.extract_patch(document, name, with_metadata=with_metadata, file=source), output)


@patchset.command()
@click.argument("background", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="The point (patch name) to apply.")
@_OUTPUT
@one_line_errors
def apply(background, source, name, output):
    """Apply one point's patch to the background it was made for (pyhf patchset apply)."""
    from hfpipe import spec

    ws = _load(background)
    points = spec.load_patchset(source)
    spec.verify_patchset(points, ws)
    _write(spec.apply_patches(ws, [points[name]], base_valid=True), output)


@patchset.command()
@click.argument("background", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("source", type=click.Path(dir_okay=False))
@one_line_errors
def verify(background, source):
    """Check that the patchset was made for this background (its digests)."""
    from hfpipe import spec

    points = spec.load_patchset(source)
    spec.verify_patchset(points, _load(background))
    shown = ", ".join(f"{alg}:{value[:16]}…" for alg, value in points.digests.items())
    click.echo(f"All good: {source} was made for {background} ({shown}).")


@patchset.command()
@click.argument("source", type=click.Path(dir_okay=False))
@one_line_errors
def inspect(source):
    """List a patchset's points with their label values (pyhf patchset inspect)."""
    from hfpipe import spec

    document = spec.load_json(source)
    points = spec.load_patchset(document, name=source)
    lines = [
        f"patchset: {source}",
        f"description: {points.description}",
        "digests: " + ", ".join(f"{alg}:{value}" for alg, value in points.digests.items()),
        f"{len(points)} patches; labels: {', '.join(points.labels)}",
    ]
    rows = [
        [p["metadata"]["name"], *map(str, p["metadata"]["values"])] for p in document["patches"]
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    click.echo("\n".join(lines))


@patchset.command()
@click.argument("background", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("source", type=click.Path(dir_okay=False))
@_OUTPUT
@one_line_errors
def rebase(background, source, output):
    """Point the patchset SOURCE at BACKGROUND (e.g. a pruned one): new digests, after
    checking that every patch applies to it."""
    from hfpipe import spec

    rebased = spec.rebase_patchset(
        _patchset_document(source), _load(background), file=source, workspace_name=background
    )
    _write(rebased, output)
