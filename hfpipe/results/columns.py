"""The schema of a scan table: its columns, in their order (docs/cli.md describes
them), and the status of rows that hold an error instead of a result."""

from __future__ import annotations

__all__ = [
    "ERROR_STATUS",
    "EXPECTED_COLUMNS",
    "LIMIT_COLUMNS",
    "SIGNIFICANCE_COLUMNS",
    "column_order",
    "label_column_names",
    "label_columns",
]

#: status of the rows of a batch that raised: an error of the run, not a result (a
#: resumed scan recomputes them)
ERROR_STATUS = "error"

EXPECTED_COLUMNS = ["cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
LIMIT_COLUMNS = [
    "mu_up_obs",
    "mu_up_exp_m2",
    "mu_up_exp_m1",
    "mu_up_exp",
    "mu_up_exp_p1",
    "mu_up_exp_p2",
]
#: the discovery test (``hfpipe scan --significance``): observed and median expected p0
#: and Z = Φ⁻¹(1 − p0) of the background-only hypothesis (q0)
SIGNIFICANCE_COLUMNS = ["p0_obs", "p0_exp", "z_obs", "z_exp"]
_LEADING = ["analysis", "point"]
_TRAILING = [
    "mu",
    "cls_obs",
    *EXPECTED_COLUMNS,
    *LIMIT_COLUMNS,
    *SIGNIFICANCE_COLUMNS,
    "mu_hat",
    "twice_nll",
    "status",
    "message",
    "calctype",
    "test_stat",
    "ntoys",
    "n_failed",
    "seconds",
    "device",
]
#: names a patchset label cannot take as a column: the table's own columns
RESERVED = frozenset({*_LEADING, *_TRAILING})


def column_order(labels: list[str], columns) -> list[str]:
    """analysis, point, the patchset's labels, then the result columns present."""
    wanted = [*_LEADING, *labels, *_TRAILING]
    return [c for c in wanted if c in columns] + [c for c in columns if c not in wanted]


def label_column_names(labels) -> list[str]:
    """The column of each patchset label: its name, or ``label_<name>`` where the name is
    one of the table's own columns (a label ``point`` would overwrite the patch names)."""
    names: list[str] = []
    for label in labels:
        name = str(label)
        while name in RESERVED or name in names:
            name = f"label_{name}"
        names.append(name)
    return names


def label_columns(columns) -> list[str]:
    """The patchset-label columns of a scan table: those between ``point`` and the results."""
    return [c for c in columns if c not in RESERVED]
