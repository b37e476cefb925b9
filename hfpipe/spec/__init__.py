"""Reading and checking hfpipe's inputs: pyhf workspaces, JSON Patches, patchsets and
signal tables.

Everything here raises :mod:`hfpipe.errors` exceptions whose text is one line,
``file: json.path: problem``, so the command line can show it instead of a traceback.
"""

from .combine import JOINS, combine_workspaces, sort_workspace
from .hs3 import from_hs3, to_hs3
from .io import load_json
from .measurements import SpecWarning, find_measurement, measurement_config
from .patches import PatchBase, apply_patches, load_patch
from .patchset import Patch, PatchSet, load_patchset, verify_patchset
from .patchset_tools import extract_patch, rebase_patchset
from .reduce import PruneReport, Removal, prune_by_impact, prune_by_size
from .signals import InvalidSignals, SignalPatches, SignalSet, load_signals
from .surgery import prune_workspace, remove_modifiers, rename_workspace
from .workspace import load_workspace, validate_workspace, workspace_digest

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
