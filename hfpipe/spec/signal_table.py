"""Signal hypotheses as a table: what a recast hands over instead of a patchset.

A reinterpretation (SModelS, MadAnalysis 5, CheckMATE, a theorist's scan) predicts, per
hypothesis, the signal yields in each bin of the analysis's channels. This module reads
such a table — Parquet, CSV or a pandas DataFrame — in one of two forms and brings it to
one normalised long form (:class:`SignalTable`), checked for everything that does not
need the workspace:

* **long**: one row per (hypothesis, channel, bin), columns ``point``, ``channel``,
  ``bin`` (0-based within the channel) and ``yield``;
* **wide**: one row per hypothesis, columns ``point`` and ``CHANNEL[BIN]`` (the yield),
  e.g. ``SR[0]``, ``SR[1]``; every other per-bin value as ``FIELD:CHANNEL[BIN]``
  (``uncertainty:SR[0]``). A channel whose yields are all empty is absent at that point.

Per-bin values beside ``yield`` (the same names in both forms):

* ``uncertainty``: the absolute per-bin uncertainty of the signal yield (MC statistics);
  what it becomes is set by the signal config (default: a staterror per channel);
* ``TYPE:NAME`` (staterror, shapesys): absolute per-bin uncertainties, as pyhf's data;
* ``TYPE:NAME:KEY`` (normsys, histosys): ``hi``/``lo`` as pyhf writes them (normsys
  factors; histosys varied yields), or ``up``/``down``, relative shifts (``0.05`` is
  +5 %: normsys ``hi = 1 + up``, histosys ``hi_data = yield * (1 + up)``).

An empty cell means the modifier is absent from that point's sample in that channel (all
bins of the channel empty, or none). ``NAME`` may hold ``{column}`` placeholders, filled
per row from ``point``, ``channel``, ``sample`` or any other column (per-point names, such
as ``shape_mcstat_{sample}_SR``). An optional ``sample`` column names each point's signal
sample. Every other column is a *label* of the hypothesis (masses, couplings): constant
within a point, carried into the results table like a patchset's labels.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hfpipe.errors import InputError

__all__ = [
    "InvalidSignals",
    "ModifierColumn",
    "SignalTable",
    "read_signal_table",
]

#: columns with a fixed meaning; ``channel`` and ``bin`` exist in the long form only
RESERVED = ("point", "channel", "bin", "sample", "yield", "uncertainty")
#: modifier types a table column can carry, and the keys each takes
_KEYS = {
    "staterror": (None,),
    "shapesys": (None,),
    "normsys": ("hi", "lo", "up", "down"),
    "histosys": ("hi", "lo", "up", "down"),
}
_WIDE = re.compile(r"^(?:(?P<field>.+):)?(?P<channel>[^:\[\]]+)\[(?P<bin>\d+)\]$")
#: read CSV numbers back to the last bit, as written: pandas 3 does by default (and
#: deprecates the option), pandas 2's default parser is off by an ulp now and then
_EXACT_CSV = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


class InvalidSignals(InputError):
    """A signal table or signal config that cannot become signal patches."""

    def __init__(self, problem: str, *, file: str | None = None, path=""):
        super().__init__(problem, file=file, path=path)


@dataclass(frozen=True)
class ModifierColumn:
    """One modifier column of a table: ``TYPE:NAME[:KEY]``."""

    column: str
    type: str
    name: str  # may hold {column} placeholders
    key: str | None

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns its ``{placeholders}`` refer to."""
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.name) if f)


def _modifier_column(column: str, file: str) -> ModifierColumn | None:
    parts = column.split(":")
    if len(parts) < 2 or parts[0] not in _KEYS:
        return None
    kind = parts[0]
    key = parts[2] if len(parts) == 3 else None
    if len(parts) > 3 or key not in _KEYS[kind] or not parts[1]:
        wanted = (
            "TYPE:NAME"
            if _KEYS[kind] == (None,)
            else f"TYPE:NAME:KEY with KEY one of {', '.join(_KEYS[kind])}"
        )
        raise InvalidSignals(f"column '{column}': a {kind} column is {wanted}", file=file)
    return ModifierColumn(column, kind, parts[1], key)


@dataclass(frozen=True)
class SignalTable:
    """A signal table in long form, rows sorted by point (in first-seen order), channel
    (first-seen) and bin; the per-bin value columns are float arrays."""

    frame: pd.DataFrame  # point, channel, bin, yield, [sample, uncertainty], modifiers, ...
    points: tuple[str, ...]
    labels: tuple[str, ...]  # label columns, in table order
    modifiers: tuple[ModifierColumn, ...]  # in table order
    source: str
    #: per point, the slice of its rows in ``frame``
    spans: dict[str, slice]

    @property
    def has_uncertainty(self) -> bool:
        return "uncertainty" in self.frame

    def label_values(self, point: str) -> tuple:
        """A point's label values (numbers as floats), in the order of :attr:`labels`."""
        row = self.frame.iloc[self.spans[point].start]
        return tuple(_label_value(row[label]) for label in self.labels)

    def channels(self) -> dict[str, int]:
        """Every channel the table names, with the highest bin index it uses."""
        highest = self.frame.groupby("channel", sort=False)["bin"].max()
        return {str(name): int(top) for name, top in highest.items()}


def _label_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float):
        return float(value)
    return value


def read_signal_table(
    source: str | os.PathLike | pd.DataFrame,
    *,
    attributes: Sequence[str] = (),
    name: str | None = None,
) -> SignalTable:
    """Read a signal table (``.parquet``, ``.csv`` or a DataFrame), long or wide form.

    ``attributes``: columns that modifier names of the signal config refer to
    (``{column}``), per-row values rather than labels. Raises :class:`InvalidSignals`
    naming the file and, where it helps, the column, point or channel at fault.
    ``name`` labels errors of a DataFrame.
    """
    file = name or (os.fspath(source) if not isinstance(source, pd.DataFrame) else "<signals>")
    frame = _read(source, file)
    frame.columns = [str(c) for c in frame.columns]
    if "point" not in frame:
        raise InvalidSignals("no 'point' column: every row needs its hypothesis's name", file=file)
    if frame.empty:
        raise InvalidSignals("the table has no rows", file=file)
    if "channel" not in frame:
        frame = _wide_to_long(frame, file)
    return _normalise(frame, set(attributes), file)


def _read(source, file: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if not path.is_file():
        raise InvalidSignals("no such file", file=file)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, **_EXACT_CSV)
    except Exception as error:
        raise InvalidSignals(f"cannot read the table: {error}", file=file) from None
    raise InvalidSignals(f"a signal table is .parquet or .csv, not '{suffix}'", file=file)


def _wide_to_long(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """One row per (point, channel, bin) from one row per point; a channel whose yields
    are all empty at a point is left out there."""
    cells: dict[tuple[str, str, int], str] = {}
    for column in frame.columns:
        match = _WIDE.match(column)
        if match:
            field = match["field"] or "yield"
            cells[(field, match["channel"], int(match["bin"]))] = column
    if not any(field == "yield" for field, _, _ in cells):
        raise InvalidSignals(
            "neither a 'channel' column (long form) nor yield columns CHANNEL[BIN] "
            "(wide form, e.g. 'SR[0]')",
            file=file,
        )
    orphan = next((col for (_, c, b), col in cells.items() if ("yield", c, b) not in cells), None)
    if orphan is not None:
        raise InvalidSignals(f"column '{orphan}' has no yield column beside it", file=file)
    per_point = [c for c in frame.columns if c not in cells.values()]
    channels = list(dict.fromkeys(c for f, c, _ in cells if f == "yield"))  # first seen
    bins = sorted((c, b) for f, c, b in cells if f == "yield")
    bins.sort(key=lambda cb: channels.index(cb[0]))  # stable: bins stay sorted
    fields = list(dict.fromkeys(f for f, _, _ in cells if f != "yield"))
    pieces = []
    for channel, b in bins:
        piece = frame[per_point].copy()
        piece["channel"], piece["bin"] = channel, b
        piece["yield"] = frame[cells[("yield", channel, b)]].to_numpy()
        for field in fields:
            column = cells.get((field, channel, b))
            piece[field] = np.nan if column is None else frame[column].to_numpy()
        piece["_row"] = np.arange(len(frame))
        pieces.append(piece)
    long = pd.concat(pieces, ignore_index=True)
    present = long.groupby(["_row", "channel"], sort=False)["yield"].transform("count") > 0
    long = long[present.to_numpy()]
    return long.sort_values(["_row"], kind="stable").drop(columns="_row")


def _normalise(frame: pd.DataFrame, attributes: set[str], file: str) -> SignalTable:
    for column in ("channel", "bin", "yield"):
        if column not in frame:
            raise InvalidSignals(f"no '{column}' column (long form)", file=file)
    frame = frame.reset_index(drop=True)
    frame["point"] = frame["point"].astype(str)
    frame["channel"] = frame["channel"].astype(str)
    if "sample" in frame:
        frame["sample"] = frame["sample"].astype(str)
    frame["bin"] = _bins(frame["bin"], file)
    modifiers = tuple(m for c in frame.columns if (m := _modifier_column(c, file)))
    values = ["yield", *(["uncertainty"] if "uncertainty" in frame else [])]
    values += [m.column for m in modifiers]
    for column in values:
        frame[column] = _numbers(frame[column], column, file)
    _check_yields(frame, file)
    placeholders = attributes | {f for m in modifiers for f in m.fields}
    unknown = sorted(placeholders - set(frame.columns) - {"sample"})  # {sample}: its name
    if unknown:
        raise InvalidSignals(
            f"a modifier name refers to {{{unknown[0]}}}, which is not a column", file=file
        )
    labels = tuple(
        c for c in frame.columns if c not in RESERVED and c not in values and c not in placeholders
    )
    frame = _sorted(frame)
    _check_unique_bins(frame, file)
    _check_constant(frame, labels + (("sample",) if "sample" in frame else ()), file)
    _check_modifier_cells(frame, modifiers, file)
    names = frame["point"].to_numpy()
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    ends = np.r_[starts[1:], len(names)]
    spans = {names[a]: slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
    points = tuple(spans)
    return SignalTable(frame, points, labels, modifiers, file, spans)


def _bins(column: pd.Series, file: str) -> np.ndarray:
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(numbers) | (numbers < 0) | (numbers != np.round(numbers))
    if bad.any():
        raise InvalidSignals(
            f"column 'bin': {column.iloc[int(np.argmax(bad))]!r} is not a bin index "
            "(0, 1, 2, … within the channel)",
            file=file,
        )
    return numbers.astype(int)


def _numbers(column: pd.Series, name: str, file: str) -> np.ndarray:
    try:
        numbers = pd.to_numeric(column).to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InvalidSignals(
            f"column '{name}' holds text where numbers belong", file=file
        ) from None
    if np.isinf(numbers).any():
        raise InvalidSignals(f"column '{name}': not a finite number (infinity)", file=file)
    return numbers


def _check_yields(frame: pd.DataFrame, file: str) -> None:
    empty = frame["yield"].isna().to_numpy()
    if empty.any():
        row = frame.iloc[int(np.argmax(empty))]
        raise InvalidSignals(
            f"point '{row['point']}', channel '{row['channel']}', bin {row['bin']}: no yield",
            file=file,
        )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by point and channel in first-seen order, then by bin."""
    point = pd.factorize(frame["point"])[0]
    channel = pd.factorize(frame["channel"])[0]
    order = np.lexsort((frame["bin"].to_numpy(), channel, point))
    return frame.iloc[order].reset_index(drop=True)


def _check_unique_bins(frame: pd.DataFrame, file: str) -> None:
    repeated = frame.duplicated(["point", "channel", "bin"])
    if repeated.any():
        row = frame[repeated].iloc[0]
        raise InvalidSignals(
            f"point '{row['point']}', channel '{row['channel']}', bin {row['bin']} "
            "appears more than once",
            file=file,
        )


def _check_constant(frame: pd.DataFrame, columns: Sequence[str], file: str) -> None:
    """Labels (and the sample name) are one value a point."""
    for column in columns:
        varies = frame.groupby("point", sort=False)[column].nunique(dropna=False) > 1
        if varies.any():
            point = varies.index[int(np.argmax(varies.to_numpy()))]
            raise InvalidSignals(
                f"column '{column}' varies within point '{point}': a label (or sample name) "
                "is one value a hypothesis",
                file=file,
            )


def _check_modifier_cells(
    frame: pd.DataFrame, modifiers: Sequence[ModifierColumn], file: str
) -> None:
    """Per (point, channel): a modifier column is empty in all bins or in none; normsys
    values are one a channel; hi/lo (or up/down) come in pairs."""
    group = frame.groupby(["point", "channel"], sort=False).ngroup().to_numpy()
    size = np.bincount(group)
    first_row = np.r_[0, np.cumsum(size)[:-1]]  # rows are sorted by point and channel
    per_bin = [*(["uncertainty"] if "uncertainty" in frame else []), *(m.column for m in modifiers)]
    for column in per_bin:
        values = frame[column].to_numpy()
        empty = np.bincount(group, weights=np.isnan(values), minlength=len(size))
        partly = (empty > 0) & (empty < size)
        if partly.any():
            _cell_error(
                frame,
                first_row[np.argmax(partly)],
                f"column '{column}': empty in "
                "some bins of {where} but not all (empty cells mean: no such "
                "modifier there)",
                file,
            )
    for m in modifiers:
        values = frame[m.column].to_numpy()
        if m.type == "normsys":
            varies = (values != values[first_row[group]]) & ~np.isnan(values)
            if varies.any():
                _cell_error(
                    frame,
                    int(np.argmax(varies)),
                    f"column '{m.column}' varies over "
                    "the bins of {where}: a normsys is one factor a sample (use "
                    "histosys for a shape)",
                    file,
                )
    _check_pairs(frame, modifiers, file)


def _cell_error(frame: pd.DataFrame, row: int, message: str, file: str):
    where = f"point '{frame['point'].iat[row]}', channel '{frame['channel'].iat[row]}'"
    raise InvalidSignals(message.format(where=where), file=file)


def _check_pairs(frame: pd.DataFrame, modifiers: Sequence[ModifierColumn], file: str) -> None:
    keys: dict[tuple[str, str], dict[str, str]] = {}
    for m in modifiers:
        if m.key is not None:
            keys.setdefault((m.type, m.name), {})[m.key] = m.column
    for (kind, name), found in keys.items():
        style = "up/down" if {"up", "down"} & set(found) else "hi/lo"
        if {"up", "down"} & set(found) and {"hi", "lo"} & set(found):
            raise InvalidSignals(f"{kind} '{name}': give hi/lo or up/down, not both", file=file)
        wanted = ("up", "down") if style == "up/down" else ("hi", "lo")
        missing = [k for k in wanted if k not in found]
        if missing:
            raise InvalidSignals(
                f"column '{kind}:{name}:{missing[0]}' is missing beside "
                f"'{next(iter(found.values()))}'",
                file=file,
            )
        first, second = (frame[found[k]].isna().to_numpy() for k in wanted)
        if (first != second).any():
            row = frame.iloc[int(np.argmax(first != second))]
            raise InvalidSignals(
                f"{kind} '{name}': {wanted[0]} and {wanted[1]} are not empty in the same "
                f"cells (point '{row['point']}', channel '{row['channel']}')",
                file=file,
            )
