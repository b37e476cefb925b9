"""Error types of hfpipe.

Every problem with a user's input is an :class:`InputError` that knows the file, the
JSON path inside it and what is wrong, so the command line can print it as one line
(``file: path: problem``) instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "DigestMismatch",
    "FitFailed",
    "HfpipeError",
    "InputError",
    "InvalidPatch",
    "InvalidPatchset",
    "InvalidSettings",
    "InvalidWorkspace",
    "UnphysicalModel",
    "json_path",
]


def json_path(parts) -> str:
    """Render a sequence of keys and indices as ``channels[0].samples[1].name``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document root)"


class HfpipeError(Exception):
    """Base class of all errors hfpipe raises on purpose."""


class InputError(HfpipeError):
    """Bad input: names the file, the JSON path inside it and the problem."""

    def __init__(self, problem: str, *, file: str | None = None, path=()):
        self.problem = problem
        self.file = file
        self.path = json_path(path) if not isinstance(path, str) else path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.file or "<input>"]
        if self.path:
            where.append(self.path)
        return ": ".join([*where, self.problem])


class InvalidWorkspace(InputError):
    """A workspace that breaks the pyhf schema or pyhf's semantic rules."""


class InvalidPatch(InputError):
    """A JSON Patch that is malformed or does not apply."""


class InvalidPatchset(InputError):
    """A patchset that is malformed or does not belong to the workspace."""


class DigestMismatch(InvalidPatchset):
    """The patchset's recorded workspace digest differs from the workspace's."""


class UnphysicalModel(InputError):
    """A model whose expected yields are negative, or zero where events were observed."""


class InvalidSettings(HfpipeError):
    """Settings that do not fit the model, such as a tested POI value outside the POI's
    bounds."""


class FitFailed(HfpipeError):
    """A fit that did not converge after every retry."""
