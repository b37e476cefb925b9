"""Exclusion contours and Brazil plots from scan tables, and the post-fit figures.

Geometry (:mod:`~hfpipe.plot.contour`, :mod:`~hfpipe.plot.brazil`) is computed as data
and needs only scipy and contourpy; drawing (:mod:`~hfpipe.plot.draw`) needs the ``plot``
extra (matplotlib, mplhep) and is imported on use. So are the post-fit figures drawn from
the tables of :mod:`hfpipe.infer`: :func:`~hfpipe.plot.ranking.draw_ranking`,
:func:`~hfpipe.plot.pulls.draw_pulls` and :func:`~hfpipe.plot.yields.draw_yields`.
"""

from hfpipe.plot.brazil import Curves, brazil_curves, select_slice
from hfpipe.plot.contour import KINDS, Contours, choose_axes, exclusion_contours, write_contour_data

__all__ = [
    "KINDS",
    "Contours",
    "Curves",
    "brazil_curves",
    "choose_axes",
    "exclusion_contours",
    "select_slice",
    "write_contour_data",
]
