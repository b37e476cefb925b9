"""Exclusion contours and Brazil plots from scan tables.

Geometry (:mod:`~hfpipe.plot.contour`, :mod:`~hfpipe.plot.brazil`) is computed as data
and needs only scipy and contourpy; drawing (:mod:`~hfpipe.plot.draw`) needs the ``plot``
extra (matplotlib, mplhep) and is imported on use.
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
