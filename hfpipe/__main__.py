"""``python -m hfpipe``: the ``hfpipe`` command line (what workflow jobs run).

The import waits for ``__main__``: a process a scan spawns (where it cannot fork one)
imports this module again (as ``__mp_main__``) and needs none of the command line.
"""

if __name__ == "__main__":
    from hfpipe.cli import main

    main()
