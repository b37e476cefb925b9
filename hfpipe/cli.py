"""The ``hfpipe`` command line: one module per command in :mod:`hfpipe.commands`,
registered here.

Bad input ends in one line on stderr (file, JSON path, problem) and exit code 2; pass
``--debug`` for the traceback.
"""

from __future__ import annotations

import click

from hfpipe.commands.campaign import campaign
from hfpipe.commands.cls import cls
from hfpipe.commands.contour import brazil, contour
from hfpipe.commands.convert import convert
from hfpipe.commands.discovery import discovery_table
from hfpipe.commands.fit import fit
from hfpipe.commands.inspect import inspect
from hfpipe.commands.profile import profile
from hfpipe.commands.rank import rank
from hfpipe.commands.scan import scan
from hfpipe.commands.serve import serve
from hfpipe.commands.submit import submit
from hfpipe.commands.toys import merge_toys
from hfpipe.commands.upper_limit import upper_limit
from hfpipe.commands.workflow import merge, prepare
from hfpipe.commands.workspace import patchset, workspace
from hfpipe.commands.yields import yields

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hfpipe")
def main() -> None:
    """Large-scale HistFactory limit scans with a batched JAX engine."""


main.add_command(cls)
main.add_command(fit)
main.add_command(scan)
main.add_command(inspect)
main.add_command(contour)
main.add_command(brazil)
main.add_command(convert)
main.add_command(prepare)
main.add_command(merge)
main.add_command(campaign)
main.add_command(merge_toys)
main.add_command(upper_limit)
main.add_command(serve)
main.add_command(submit)
main.add_command(workspace)
main.add_command(patchset)
main.add_command(rank)
main.add_command(yields)
main.add_command(profile)
main.add_command(discovery_table)

if __name__ == "__main__":
    main()
