"""Reading and checking hfpipe's inputs: pyhf workspaces, JSON Patches, patchsets and
signal tables.

Everything here raises :mod:`hfpipe.errors` exceptions whose text is one line,
``file: json.path: problem``, so the command line can show it instead of a traceback.
"""

from __future__ import annotations

import sys

from hfpipe._lazy import lazy_names

from .combine import JOINS, combine_workspaces, sort_workspace
from .hs3 import from_hs3, to_hs3
from .io import load_json
from .measurements import SpecWarning, find_measurement, measurement_config
from .patches import PatchBase, apply_patches, load_patch
from .patchset import Patch, PatchSet, load_patchset, verify_patchset
from .patchset_tools import extract_patch, rebase_patchset
from .reduce import PruneReport, Removal, prune_by_impact, prune_by_size
from .surgery import prune_workspace, remove_modifiers, rename_workspace
from .workspace import load_workspace, validate_workspace, workspace_digest

#: the signal-table names, imported on first use: they read tables with pandas, which
#: a process that only patches and checks workspaces (a scan's worker) does not need
_SIGNALS = {"InvalidSignals", "SignalPatches", "SignalSet", "load_signals"}
#: the classes of signal hypotheses (:func:`is_signals`)
_SIGNAL_KINDS = ("SignalSet", "SignalPatches")

__all__ = [
    "JOINS",
    "InvalidSignals",
    "Patch",
    "PatchBase",
    "PatchSet",
    "PruneReport",
    "Removal",
    "SignalPatches",
    "SignalSet",
    "SpecWarning",
    "apply_patches",
    "combine_workspaces",
    "extract_patch",
    "find_measurement",
    "from_hs3",
    "is_signals",
    "load_json",
    "load_patch",
    "load_patchset",
    "load_signals",
    "load_workspace",
    "measurement_config",
    "prune_by_impact",
    "prune_by_size",
    "prune_workspace",
    "rebase_patchset",
    "remove_modifiers",
    "rename_workspace",
    "sort_workspace",
    "to_hs3",
    "validate_workspace",
    "verify_patchset",
    "workspace_digest",
]


__getattr__, __dir__ = lazy_names(__name__, dict.fromkeys(_SIGNALS, "signals"))


def is_signals(value, *kinds: str) -> bool:
    """Whether ``value`` is signal hypotheses: an instance of the named ``kinds``
    (``"SignalSet"``, ``"SignalPatches"``; default: either), asked without importing the
    signal-table module (and pandas) where no such object can have been made: a scan of
    a patchset asks before it starts."""
    module = sys.modules.get(f"{__name__}.signals")
    if module is None:
        return False
    return isinstance(value, tuple(getattr(module, k) for k in kinds or _SIGNAL_KINDS))
