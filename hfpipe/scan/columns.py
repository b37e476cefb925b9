"""Columns of a scan table (DESIGN.md §4), in their order."""

from __future__ import annotations

__all__ = ["EXPECTED_COLUMNS", "LIMIT_COLUMNS", "column_order", "label_columns"]

EXPECTED_COLUMNS = ["cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
LIMIT_COLUMNS = [
    "mu_up_obs",
    "mu_up_exp_m2",
    "mu_up_exp_m1",
    "mu_up_exp",
    "mu_up_exp_p1",
    "mu_up_exp_p2",
]
_LEADING = ["analysis", "point"]
_TRAILING = [
    "mu",
    "cls_obs",
    *EXPECTED_COLUMNS,
    *LIMIT_COLUMNS,
    "mu_hat",
    "twice_nll",
    "status",
    "message",
    "calctype",
    "test_stat",
    "ntoys",
    "seconds",
    "device",
]


def column_order(labels: list[str], columns) -> list[str]:
    """analysis, point, the patchset's labels, then the result columns present."""
    wanted = [*_LEADING, *labels, *_TRAILING]
    return [c for c in wanted if c in columns] + [c for c in columns if c not in wanted]


def label_columns(columns) -> list[str]:
    """The patchset-label columns of a scan table: those between ``point`` and the results."""
    known = {*_LEADING, *_TRAILING}
    return [c for c in columns if c not in known]
