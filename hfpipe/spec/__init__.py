"""Reading and checking hfpipe's inputs: pyhf workspaces, JSON Patches and patchsets.

Everything here raises :mod:`hfpipe.errors` exceptions whose text is one line,
``file: json.path: problem``, so the command line can show it instead of a traceback.
"""

from .hs3 import from_hs3, to_hs3
from .io import load_json
from .measurements import SpecWarning, find_measurement, measurement_config
from .patches import PatchBase, apply_patches, load_patch
from .patchset import Patch, PatchSet, load_patchset, verify_patchset
from .workspace import load_workspace, validate_workspace, workspace_digest

__all__ = [
    "Patch",
    "PatchBase",
    "PatchSet",
    "SpecWarning",
    "apply_patches",
    "find_measurement",
    "from_hs3",
    "load_json",
    "load_patch",
    "load_patchset",
    "load_workspace",
    "measurement_config",
    "to_hs3",
    "validate_workspace",
    "verify_patchset",
    "workspace_digest",
]
