"""``python -m hfpipe``: the ``hfpipe`` command line (what workflow jobs run)."""

from hfpipe.cli import main

main()
