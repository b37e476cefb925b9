"""Test helper: a published patchset's signal yields and modifiers written into a signal
table (long form) and a signal config, so that ``hfpipe scan --signals`` can be checked
against the patchset scan of the same points.

Every number of every published signal sample goes into the table; what the table
cannot say per row (the modifier order, the POI and lumi names) goes into the config,
derived from the patches themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hfpipe.spec import PatchSet

__all__ = ["patchset_to_signals"]

_GROUP = {"lumi": "lumi", "normfactor": "poi"}


def _samples(patchset: PatchSet, workspace: dict):
    """(patch, channel name, sample dict) of every added sample."""
    names = [c["name"] for c in workspace["channels"]]
    for patch in patchset:
        for op in patch.operations:
            assert op["op"] == "add" and op["path"].split("/")[3] == "samples", op
            yield patch, names[int(op["path"].split("/")[2])], op["value"]


def _uncertainty(sample: dict) -> dict | None:
    """The sample's one MC-statistics modifier (staterror or shapesys), if any."""
    found = [m for m in sample["modifiers"] if m["type"] in ("staterror", "shapesys")]
    assert len(found) <= 1, [m["name"] for m in found]
    return found[0] if found else None


def _group(modifier: dict, sample: dict) -> str:
    if modifier is _uncertainty(sample):
        return "uncertainty"
    return _GROUP.get(modifier["type"], modifier["type"])


def _order(samples) -> list[str]:
    """The groups of the modifier lists, in the order every sample has them."""
    order: list[str] = []
    for _, _, sample in samples:
        groups = list(dict.fromkeys(_group(m, sample) for m in sample["modifiers"]))
        merged = [g for g in order if g in groups]
        assert merged == [g for g in groups if g in order], (order, groups)
        for k, group in enumerate(groups):
            if group not in order:
                after = groups[k - 1] if k else None
                order.insert(order.index(after) + 1 if after else 0, group)
    return order


def _columns(samples) -> list[tuple[str, str]]:
    """Every (type, name) of the table's modifiers, in an order consistent with every
    sample's modifier list (a topological order of "comes before")."""
    before: dict[tuple[str, str], set] = {}
    for _, _, sample in samples:
        seq = [
            (m["type"], m["name"])
            for m in sample["modifiers"]
            if _group(m, sample) not in ("lumi", "poi", "uncertainty")
        ]
        for k, key in enumerate(seq):
            before.setdefault(key, set()).update(seq[:k])
    order: list[tuple[str, str]] = []
    while len(order) < len(before):
        ready = [k for k, deps in before.items() if k not in order and deps <= set(order)]
        order.append(ready[0])
    return order


def patchset_to_signals(patchset: PatchSet, workspace: dict) -> tuple[pd.DataFrame, dict]:
    """The long-form signal table and the signal config that reproduce ``patchset``."""
    samples = list(_samples(patchset, workspace))
    mc = [_uncertainty(s) for _, _, s in samples]
    kinds = {m["type"] for m in mc if m}
    assert len(kinds) <= 1
    default_names = all(
        m is None or m["name"] == f"staterror_{c}" for (_, c, _), m in zip(samples, mc, strict=True)
    )
    config: dict = {"order": _order(samples)}
    lumis = {m["name"] for _, _, s in samples for m in s["modifiers"] if m["type"] == "lumi"}
    config["lumi"] = lumis.pop() if lumis else None
    pois = {m["name"] for _, _, s in samples for m in s["modifiers"] if m["type"] == "normfactor"}
    config["poi"] = pois.pop()
    if kinds:
        config["uncertainty"] = {"type": kinds.pop()}
        config["uncertainty"]["name"] = "staterror_{channel}" if default_names else "{mc_name}"
    use_sample = any(s["name"] != p.name for p, _, s in samples)
    columns = _columns(samples)
    rows = []
    for (patch, channel, sample), unc in zip(samples, mc, strict=True):
        for b, value in enumerate(sample["data"]):
            row = {"point": patch.name, "channel": channel, "bin": b, "yield": value}
            row |= dict(zip(patchset.labels, patch.values, strict=True))
            if use_sample:
                row["sample"] = sample["name"]
            if unc is not None:
                row["uncertainty"] = unc["data"][b]
                if not default_names:
                    row["mc_name"] = unc["name"]
            for m in sample["modifiers"]:
                if m["type"] == "normsys":
                    row[f"normsys:{m['name']}:hi"] = m["data"]["hi"]
                    row[f"normsys:{m['name']}:lo"] = m["data"]["lo"]
                elif m["type"] == "histosys":
                    row[f"histosys:{m['name']}:hi"] = m["data"]["hi_data"][b]
                    row[f"histosys:{m['name']}:lo"] = m["data"]["lo_data"][b]
                elif m["type"] in ("staterror", "shapesys") and m is not unc:
                    row[f"{m['type']}:{m['name']}"] = m["data"][b]
            rows.append(row)
    leading = ["point", "channel", "bin", "yield", *patchset.labels]
    leading += [c for c in ("sample", "uncertainty", "mc_name") if any(c in r for r in rows)]
    keys = [
        f"{t}:{n}:{k}" if t in ("normsys", "histosys") else f"{t}:{n}"
        for t, n in columns
        for k in (("hi", "lo") if t in ("normsys", "histosys") else ("",))
    ]
    keys = [k.rstrip(":") for k in keys]
    frame = pd.DataFrame.from_records(rows, columns=leading + keys)
    for key in keys:
        frame[key] = frame[key].astype(float)
    assert not frame[["yield"]].isna().to_numpy().any()
    return frame, config


def same_float_bits(a, b) -> bool:
    """Whether two float arrays are equal bit for bit (NaN where NaN)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all(a.view(np.int64) == b.view(np.int64)))
