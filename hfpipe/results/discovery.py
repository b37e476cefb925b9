"""The model-independent limit table as a paper prints it: Markdown and LaTeX.

The columns are HistFitter's UpperLimitTable's: the region, ⟨εσ⟩_obs^95 (where a
luminosity is known), S_obs^95, S_exp^95 with its ±1σ band as super- and subscripts,
CL_B and p(s = 0) with Z in parentheses. The table's numbers come from
:func:`hfpipe.scanning.discovery.discovery_table`; nothing here imports the engine.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["DISCOVERY_COLUMNS", "LUMI_UNITS", "format_latex", "format_markdown", "xsec_unit"]

#: the columns of a discovery table, in order
DISCOVERY_COLUMNS = [
    "region",
    "s_obs",
    "s_exp",
    "s_exp_m2",
    "s_exp_m1",
    "s_exp_p1",
    "s_exp_p2",
    "xsec_obs",
    "cl_b",
    "p0",
    "z",
    "status",
    "message",
]
#: integrated-luminosity units, and so the visible cross-section's (their inverse)
LUMI_UNITS = ("ab-1", "fb-1", "pb-1", "nb-1")


def xsec_unit(lumi_unit: str) -> str:
    """The unit of S / L for a luminosity in ``lumi_unit``: ``fb-1`` → ``fb``."""
    return lumi_unit.removesuffix("-1")


def _number(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _cells(row, xsec: bool, band) -> list[str]:
    """The printed cells of one row; ``band(median, up, down)`` writes S_exp^95."""
    cells = [str(row.region)]
    if xsec:
        cells.append(_number(row.xsec_obs))
    cells += [
        _number(row.s_obs, 1),
        band(
            _number(row.s_exp, 1),
            _number(row.s_exp_p1 - row.s_exp, 1),
            _number(row.s_exp - row.s_exp_m1, 1),
        ),
        _number(row.cl_b),
        f"{_number(row.p0)} ({_number(row.z)})",
    ]
    return cells


def format_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of a discovery table (``frame.attrs`` give the units)."""
    xsec = frame.attrs.get("lumi") is not None
    unit = frame.attrs.get("xsec_unit", "fb")
    header = ["Signal region"]
    if xsec:
        header.append(f"⟨εσ⟩_obs^95 [{unit}]")
    header += ["S_obs^95", "S_exp^95", "CL_B", "p(s = 0) (Z)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in frame.itertuples():
        cells = _cells(row, xsec, lambda m, up, down: f"{m} +{up} −{down}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _latex_text(text: str) -> str:
    for plain, escaped in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
    ):
        text = text.replace(plain, escaped)
    return text


def format_latex(frame: pd.DataFrame) -> str:
    """A LaTeX ``tabular`` of a discovery table, ready for ``\\input`` in a ``table``."""
    xsec = frame.attrs.get("lumi") is not None
    unit = frame.attrs.get("xsec_unit", "fb")
    header = ["Signal region"]
    if xsec:
        header.append(rf"$\langle\epsilon\sigma\rangle_{{\mathrm{{obs}}}}^{{95}}$ [{unit}]")
    header += [
        r"$S_{\mathrm{obs}}^{95}$",
        r"$S_{\mathrm{exp}}^{95}$",
        r"$CL_{B}$",
        r"$p(s=0)$ ($Z$)",
    ]
    lines = [
        r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
        r"\hline",
        " & ".join(header) + r" \\",
        r"\hline",
    ]
    for row in frame.itertuples():
        cells = _cells(row, xsec, lambda m, up, down: f"${m}^{{+{up}}}_{{-{down}}}$")
        cells[0] = _latex_text(cells[0])
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)
