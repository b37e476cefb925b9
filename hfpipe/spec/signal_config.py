"""The signal config: how a signal table's rows become each hypothesis's signal sample.

A small YAML file (or a dict); every key is optional, and the defaults write samples the
way the HEPData patchsets do (ATLAS 1Lbb's: the sample named after the point, ``lumi``,
the per-channel ``staterror_<channel>``, the table's systematics, then the POI's
normfactor):

.. code-block:: yaml

    sample: "{point}"          # the signal sample's name (a table column 'sample' wins)
    poi: mu_SIG                # its normfactor; default: the measurement's POI
    lumi: lumi                 # default: the workspace's lumi modifier, if it has one;
                               # null: none
    uncertainty:               # what the table's 'uncertainty' column becomes
      type: staterror          # or shapesys
      name: "staterror_{channel}"
    modifiers:                 # the same for every hypothesis and channel
      - {name: SigXSec, type: normsys, data: {hi: 1.05, lo: 0.95}}
    order: [lumi, table, modifiers, poi]

``order`` lists where each group goes in a sample's modifier list: ``lumi``, ``poi``,
``modifiers`` (the shared ones above), ``uncertainty``, a modifier type (``staterror``,
``shapesys``, ``normsys``, ``histosys``: the table's columns of that type, in column
order) and ``table`` (the table's remaining columns). Groups left out follow in the
default order. The order changes nothing in the model (pyhf and hfpipe order parameters
by name); it makes the patched workspace equal, item for item, to one published as a
patchset (3L-eRJR's: ``[lumi, normsys, poi, histosys, uncertainty]``). Names may hold
``{point}``, ``{channel}``, ``{sample}`` or ``{column}`` of any table column.
"""

from __future__ import annotations

import copy
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hfpipe.spec.signal_table import InvalidSignals

__all__ = ["GROUPS", "SignalConfig", "load_signal_config"]

#: the groups ``order`` places, in their default order
DEFAULT_ORDER = ("lumi", "table", "modifiers", "poi")
#: table columns by type, placeable on their own
TYPE_GROUPS = ("uncertainty", "staterror", "shapesys", "normsys", "histosys")
GROUPS = DEFAULT_ORDER + TYPE_GROUPS
_KEYS = ("sample", "poi", "lumi", "uncertainty", "modifiers", "order")
_UNSET = object()


@dataclass(frozen=True)
class SignalConfig:
    """A parsed signal config; ``poi`` and ``lumi`` of ``None`` mean "the workspace's"
    until :meth:`resolved` (``lumi`` resolves to ``""`` where there is none)."""

    sample: str = "{point}"
    poi: str | None = None
    lumi: str | None = None
    uncertainty_type: str = "staterror"
    uncertainty_name: str = "staterror_{channel}"
    modifiers: tuple[dict, ...] = ()
    order: tuple[str, ...] = DEFAULT_ORDER
    source: str = field(default="<signal config>", compare=False)

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns its names refer to (``{column}``)."""
        names = [self.sample, self.uncertainty_name, *(m["name"] for m in self.modifiers)]
        return tuple(
            dict.fromkeys(f for text in names for _, f, _, _ in string.Formatter().parse(text) if f)
        )


def load_signal_config(source: str | os.PathLike | Mapping | None) -> SignalConfig:
    """Read a signal config from YAML (a path) or a dict; ``None`` gives the defaults.

    Raises :class:`~hfpipe.spec.signal_table.InvalidSignals` naming the file and key.
    """
    if source is None:
        return SignalConfig()
    file = os.fspath(source) if isinstance(source, str | os.PathLike) else "<signal config>"
    doc = _read(source, file)
    unknown = sorted(set(doc) - set(_KEYS))
    if unknown:
        raise InvalidSignals(f"unknown key '{unknown[0]}' (known: {', '.join(_KEYS)})", file=file)
    lumi = doc.get("lumi", _UNSET)
    uncertainty = _uncertainty(doc.get("uncertainty") or {}, file)
    return SignalConfig(
        sample=_name(doc.get("sample", "{point}"), "sample", file),
        poi=None if doc.get("poi") is None else _name(doc["poi"], "poi", file),
        lumi=None if lumi is _UNSET else ("" if lumi is None else _name(lumi, "lumi", file)),
        uncertainty_type=uncertainty[0],
        uncertainty_name=uncertainty[1],
        modifiers=_modifiers(doc.get("modifiers") or [], file),
        order=_order(doc.get("order") or list(DEFAULT_ORDER), file),
        source=file,
    )


def _read(source, file: str) -> dict:
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    import yaml

    path = Path(source)
    if not path.is_file():
        raise InvalidSignals("no such file", file=file)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InvalidSignals(f"not YAML: {' '.join(str(error).split())}", file=file) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InvalidSignals("a signal config is a mapping of keys", file=file)
    return doc


def _name(value, key: str, file: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidSignals(f"'{key}' is a name (text), not {value!r}", file=file)
    try:
        list(string.Formatter().parse(value))
    except ValueError as error:
        raise InvalidSignals(f"'{key}': {value!r}: {error}", file=file) from None
    return value


def _uncertainty(value, file: str) -> tuple[str, str]:
    if not isinstance(value, Mapping) or set(value) - {"type", "name"}:
        raise InvalidSignals("'uncertainty' takes 'type' and 'name'", file=file)
    kind = value.get("type", "staterror")
    if kind not in ("staterror", "shapesys"):
        raise InvalidSignals(
            f"'uncertainty.type' is staterror or shapesys, not {kind!r}", file=file
        )
    default = "staterror_{channel}" if kind == "staterror" else "shapesys_{sample}_{channel}"
    return kind, _name(value.get("name", default), "uncertainty.name", file)


def _modifiers(value, file: str) -> tuple[dict, ...]:
    """Shared modifiers, checked against the workspace schema when a patch is made; here
    only their shape."""
    if not isinstance(value, list):
        raise InvalidSignals("'modifiers' is a list of pyhf modifiers", file=file)
    for k, modifier in enumerate(value):
        if not isinstance(modifier, Mapping) or not {"name", "type"} <= set(modifier):
            raise InvalidSignals(
                f"'modifiers[{k}]' is a pyhf modifier: name, type and data", file=file
            )
        _name(modifier["name"], f"modifiers[{k}].name", file)
    return tuple({"data": None, **dict(m)} for m in value)


def _order(value, file: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSignals(f"'order' is a list of groups: {', '.join(GROUPS)}", file=file)
    unknown = [v for v in value if v not in GROUPS]
    if unknown:
        raise InvalidSignals(
            f"'order': unknown group '{unknown[0]}' (known: {', '.join(GROUPS)})", file=file
        )
    if len(set(value)) != len(value):
        raise InvalidSignals("'order' names a group twice", file=file)
    return tuple(value) + tuple(g for g in DEFAULT_ORDER if g not in value)
