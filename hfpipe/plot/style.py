"""The drawing context of every figure: an mplhep style, files only.

:func:`styled` runs a drawing function inside an mplhep style context (``style=``
keyword, default ATLAS), so every artist gets the style and the caller's global
matplotlib style is untouched; matplotlib and mplhep (the ``plot`` extra) are imported
on use.
"""

from __future__ import annotations

import functools

from hfpipe.errors import InputError

__all__ = ["IMPACT_COLOURS", "styled"]

#: bar colours of the ranking plot: θ̂ + Δθ and θ̂ − Δθ
IMPACT_COLOURS = ("#1f5fbf", "#3fbfbf")


def styled(draw):
    """``draw`` run inside the mplhep style its ``style=`` keyword names."""

    @functools.wraps(draw)
    def wrapper(*args, style: str = "ATLAS", **kwargs):
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
        import mplhep

        if not hasattr(mplhep.style, style):
            raise InputError(f"unknown mplhep style {style!r}", path="")
        with plt.style.context(getattr(mplhep.style, style)):
            return draw(*args, **kwargs)

    return wrapper
