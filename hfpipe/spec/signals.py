"""Signal hypotheses from a table, as in-memory patches on a background-only workspace.

:func:`load_signals` reads a signal table (:mod:`hfpipe.spec.signal_table`) and a signal
config (:mod:`hfpipe.spec.signal_config`) into a :class:`SignalSet`; its
:meth:`~SignalSet.bind` checks it against a workspace (every channel and bin the table
names must exist, and every channel a point has must be given in full) and returns
:class:`SignalPatches`, which acts as a patchset: point names, label columns, and one
:class:`~hfpipe.spec.Patch` per point, made when asked for and never kept — a scan of
10,000 hypotheses holds the table, not 10,000 patches.

Each point's patch adds one sample to every channel the point has rows in, at the end
of the channel's samples, in the workspace's channel order, as HEPData patchsets do: its
yields, then its modifiers in the config's ``order``. A patch made from a published
patchset's numbers (``tests/signal_tables.py`` writes them into a table) is the
published patch, operation for operation, so the two scans are the same computation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hfpipe.spec.digests import file_sha256
from hfpipe.spec.measurements import find_measurement
from hfpipe.spec.patchset import Patch
from hfpipe.spec.signal_config import TYPE_GROUPS, SignalConfig, load_signal_config
from hfpipe.spec.signal_table import InvalidSignals, ModifierColumn, SignalTable, read_signal_table

__all__ = ["InvalidSignals", "SignalPatches", "SignalSet", "load_signals"]

_SHOWN = 5


@dataclass(frozen=True)
class SignalSet:
    """A signal table with its config, not yet tied to a workspace."""

    table: SignalTable
    config: SignalConfig
    #: what the scan's provenance records: the files (or, for a DataFrame or dict, None)
    table_path: str | None = None
    config_path: str | None = None

    def bind(self, workspace: Mapping, *, measurement: str | None = None) -> SignalPatches:
        """Check the table against ``workspace`` (validated before) and resolve the
        config's defaults (the POI of ``measurement``, default the first; the
        workspace's lumi modifier). Raises :class:`InvalidSignals` naming the channels
        or bins the workspace lacks."""
        channels = {c["name"]: k for k, c in enumerate(workspace["channels"])}
        bins = {c["name"]: len(c["samples"][0]["data"]) for c in workspace["channels"]}
        _check_channels(self.table, bins, self.table.source)
        _check_bins(self.table, bins, self.table.source)
        poi = self.config.poi
        if poi is None:
            poi = find_measurement(workspace, measurement)["config"]["poi"]
        lumi = self.config.lumi
        if lumi is None:
            lumi = _workspace_lumi(workspace)
        samples = {c["name"]: len(c["samples"]) for c in workspace["channels"]}
        return SignalPatches(self, poi, lumi, channels, samples)

    def provenance(self) -> dict:
        """Paths and sha256 of the table and the config: the scan's signal input. The
        digest covers the files' bytes, or the table's and config's contents where they
        were given as a DataFrame or dict."""
        h = hashlib.sha256()
        if self.table_path is not None:
            h.update(file_sha256(self.table_path).encode())
        else:
            h.update(pd.util.hash_pandas_object(self.table.frame, index=False).to_numpy().tobytes())
        h.update(json.dumps(_config_document(self.config), sort_keys=True).encode())
        return {
            "path": self.table_path,
            "sha256": h.hexdigest(),
            "kind": "signals",
            "config": self.config_path,
        }


def load_signals(
    table: str | os.PathLike | pd.DataFrame,
    config: str | os.PathLike | Mapping | None = None,
) -> SignalSet:
    """Read a signal table (``.parquet``, ``.csv`` or a DataFrame; long or wide form) and
    its signal config (a YAML path, a dict, or ``None`` for the defaults)."""
    parsed = load_signal_config(config)
    return SignalSet(
        read_signal_table(table, attributes=parsed.fields),
        parsed,
        table_path=os.fspath(table) if isinstance(table, str | os.PathLike) else None,
        config_path=os.fspath(config) if isinstance(config, str | os.PathLike) else None,
    )


def _config_document(config: SignalConfig) -> dict:
    return {
        "sample": config.sample,
        "poi": config.poi,
        "lumi": config.lumi,
        "uncertainty": {"type": config.uncertainty_type, "name": config.uncertainty_name},
        "modifiers": list(config.modifiers),
        "order": list(config.order),
    }


def _workspace_lumi(workspace: Mapping) -> str:
    """The name of the workspace's lumi modifier ('' if its samples carry none)."""
    for channel in workspace["channels"]:
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                if modifier["type"] == "lumi":
                    return modifier["name"]
    return ""


def _listed(names) -> str:
    names = list(names)
    return ", ".join(names[:_SHOWN]) + (f" … ({len(names)})" if len(names) > _SHOWN else "")


def _check_channels(table: SignalTable, bins: dict[str, int], file: str) -> None:
    missing = [c for c in table.channels() if c not in bins]
    if missing:
        raise InvalidSignals(
            f"channel{'s' if len(missing) > 1 else ''} {_listed(missing)} not in the "
            f"workspace (its channels: {_listed(bins)})",
            file=file,
        )


def _check_bins(table: SignalTable, bins: dict[str, int], file: str) -> None:
    beyond = [(c, top) for c, top in table.channels().items() if top >= bins[c]]
    if beyond:
        shown = "; ".join(f"{c}: bin {top} of bins 0–{bins[c] - 1}" for c, top in beyond)
        raise InvalidSignals(f"bins the workspace lacks: {shown}", file=file)
    frame = table.frame
    given = frame.groupby(["point", "channel"], sort=False).size()
    wanted = given.index.get_level_values("channel").map(bins).to_numpy()
    short = given.to_numpy() != wanted
    if short.any():
        point, channel = given.index[int(np.argmax(short))]
        rows = frame[(frame["point"] == point) & (frame["channel"] == channel)]
        absent = sorted(set(range(bins[channel])) - set(rows["bin"]))
        raise InvalidSignals(
            f"point '{point}', channel '{channel}': bin{'s' if len(absent) > 1 else ''} "
            f"{_listed(map(str, absent))} missing (a channel is given in full, "
            f"bins 0–{bins[channel] - 1}, or not at all)",
            file=file,
        )


class SignalPatches:
    """A :class:`SignalSet` bound to a workspace: acts as a patchset for a scan."""

    def __init__(
        self,
        signals: SignalSet,
        poi: str,
        lumi: str,
        channels: dict[str, int],
        samples: dict[str, int],
    ) -> None:
        self.signals = signals
        self.poi = poi
        self.lumi = lumi
        self._channel_index = channels
        self._samples = samples
        table = signals.table
        self.labels = table.labels
        self.names = table.points
        self.source = table.source
        self.name = ""
        self.analysis_id = ""
        self._columns = _Columns.of(table)
        self._items = _ordered_groups(table, signals.config)
        self._row_hashes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Patch]:
        return (self[name] for name in self.names)

    def __getitem__(self, name: str) -> Patch:
        """The patch of point ``name``, made now."""
        span = self.signals.table.spans.get(name)
        if span is None:
            shown = _listed(self.names)
            raise InvalidSignals(f"no point named {name!r}; known: {shown}", file=self.source)
        operations = [
            self._operation(rows)
            for rows in sorted(self._columns.channel_runs(span), key=self._channel_order)
        ]
        return Patch(
            name=name,
            values=self.signals.table.label_values(name),
            operations=tuple(operations),
            source=self.source,
            path=("patch",),
        )

    def point_digest(self, name: str) -> str:
        """sha256 of everything the point's patch is made from: its rows and the config
        with its resolved defaults (resume takes a row back only if this is unchanged)."""
        if self._row_hashes is None:
            frame = self.signals.table.frame
            self._row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        h = hashlib.sha256(json.dumps([name, self.poi, self.lumi]).encode())
        h.update(json.dumps(_config_document(self.signals.config), sort_keys=True).encode())
        h.update(self._row_hashes[self.signals.table.spans[name]].tobytes())
        return h.hexdigest()

    def _channel_order(self, rows: slice) -> int:
        return self._channel_index[self._columns.channel[rows.start]]

    def _operation(self, rows: slice) -> dict:
        """The operation adding the signal sample of one channel's rows."""
        channel = self._columns.channel[rows.start]
        sample = self._columns.sample_name(rows.start, self.signals.config)
        names = self._columns.placeholders(rows.start) | {"sample": sample}
        modifiers = [m for item in self._items for m in self._modifiers(item, rows, names)]
        value = {"data": self._columns.values["yield"][rows].tolist(), "modifiers": modifiers}
        return {
            "op": "add",
            "path": f"/channels/{self._channel_index[channel]}/samples/{self._samples[channel]}",
            "value": {**value, "name": sample},
        }

    def _modifiers(self, item, rows: slice, names: dict) -> list[dict]:
        """The modifiers of one item of the order (none where the table's cells are
        empty): a sample's modifier list is these, item by item."""
        config = self.signals.config
        if item == "lumi":
            return [{"data": None, "name": self.lumi, "type": "lumi"}] if self.lumi else []
        if item == "poi":
            return [{"data": None, "name": self.poi, "type": "normfactor"}]
        if item == "modifiers":
            return [
                {**copy.deepcopy(m), "name": _fill(m["name"], names, self.source)}
                for m in config.modifiers
            ]
        if item == "uncertainty":
            values = self._columns.values["uncertainty"][rows]
            if np.isnan(values[0]):
                return []
            name = _fill(config.uncertainty_name, names, self.source)
            return [{"data": values.tolist(), "name": name, "type": config.uncertainty_type}]
        return self._table_modifier(item, rows, names)

    def _table_modifier(self, entry: tuple[ModifierColumn, ...], rows: slice, names: dict):
        values = self._columns.values
        first = entry[0]
        if np.isnan(values[first.column][rows.start]):
            return []
        name = _fill(first.name, names, self.source)
        by_key = {m.key: values[m.column][rows] for m in entry}
        if first.type in ("staterror", "shapesys"):
            data = by_key[None].tolist()
        elif first.type == "normsys":
            if "up" in by_key:
                data = {"hi": 1.0 + float(by_key["up"][0]), "lo": 1.0 + float(by_key["down"][0])}
            else:
                data = {"hi": float(by_key["hi"][0]), "lo": float(by_key["lo"][0])}
        elif "up" in by_key:
            nominal = values["yield"][rows]
            data = {
                "hi_data": (nominal * (1.0 + by_key["up"])).tolist(),
                "lo_data": (nominal * (1.0 + by_key["down"])).tolist(),
            }
        else:
            data = {"hi_data": by_key["hi"].tolist(), "lo_data": by_key["lo"].tolist()}
        return [{"data": data, "name": name, "type": first.type}]


def _fill(template: str, names: Mapping, file: str) -> str:
    try:
        return template.format_map(names)
    except (KeyError, IndexError, ValueError) as error:
        raise InvalidSignals(f"cannot fill the name {template!r}: {error}", file=file) from None


@dataclass(frozen=True)
class _Columns:
    """The table's columns as arrays, for making patches without pandas."""

    channel: np.ndarray
    values: dict[str, np.ndarray]  # yield, uncertainty, modifier columns: floats
    text: dict[str, np.ndarray]  # every other column (labels, sample, placeholders)
    run_starts: np.ndarray  # first row of every (point, channel) run

    @classmethod
    def of(cls, table: SignalTable) -> _Columns:
        frame = table.frame
        numeric = ["yield", *(["uncertainty"] if table.has_uncertainty else [])]
        numeric += [m.column for m in table.modifiers]
        channel = frame["channel"].to_numpy()
        point = frame["point"].to_numpy()
        change = np.r_[True, (channel[1:] != channel[:-1]) | (point[1:] != point[:-1])]
        return cls(
            channel=channel,
            values={c: frame[c].to_numpy(dtype=float) for c in numeric},
            text={c: frame[c].to_numpy() for c in frame.columns if c not in numeric},
            run_starts=np.flatnonzero(change),
        )

    def channel_runs(self, span: slice) -> list[slice]:
        """The rows of each channel of a point (``span``: the point's rows)."""
        first, stop = np.searchsorted(self.run_starts, [span.start, span.stop])
        starts = self.run_starts[first:stop]
        ends = np.r_[starts[1:], span.stop]
        return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]

    def placeholders(self, row: int) -> dict:
        """What ``{column}`` in a name stands for at ``row``."""
        return {column: _text(values[row]) for column, values in self.text.items()}

    def sample_name(self, row: int, config: SignalConfig) -> str:
        """The signal sample's name: the table's ``sample`` column, else the config's."""
        if "sample" in self.text:
            return str(self.text["sample"][row])
        return _fill(config.sample, self.placeholders(row), config.source)


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ordered_groups(table: SignalTable, config: SignalConfig) -> list:
    """The config's order expanded into the items of a sample's modifier list: group
    names (lumi, poi, modifiers, uncertainty) and table modifiers, each a tuple of the
    columns of one modifier (its hi and lo, say)."""
    entries: dict[tuple[str, str], list[ModifierColumn]] = {}
    in_table: list = []  # uncertainty and the table's modifiers, in column order
    for column in table.frame.columns:
        if column == "uncertainty":
            in_table.append("uncertainty")
        for m in table.modifiers:
            if m.column == column:
                if (m.type, m.name) not in entries:
                    in_table.append((m.type, m.name))
                entries.setdefault((m.type, m.name), []).append(m)
    placed = {g for g in config.order if g in TYPE_GROUPS}
    items: list = []
    for group in config.order:
        if group in ("lumi", "poi", "modifiers"):
            items.append(group)
        elif group in TYPE_GROUPS:
            items += [i for i in in_table if (i if i == "uncertainty" else i[0]) == group]
        else:  # table: what no type group placed, in column order
            items += [i for i in in_table if (i if i == "uncertainty" else i[0]) not in placed]
    return [i if isinstance(i, str) else tuple(entries[i]) for i in items]
