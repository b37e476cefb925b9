"""Loading, validating and fingerprinting pyhf workspaces (schema 1.0.0)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any

from hfpipe.errors import InvalidWorkspace

from .io import first_path, is_non_finite, is_path, load_json, source_label
from .measurements import check_measurements
from .rules import CheckedModel, ModelInfo, check_model, check_observations, check_patched_model
from .schema import check_schema, describe

__all__ = ["load_workspace", "validate_workspace", "workspace_digest"]


def _validate(
    ws: Any,
    file: str,
    *,
    strict: bool,
    warn: bool,
    rules_only: bool = False,
    base: CheckedModel | None = None,
) -> None:
    """validate_workspace, with the measurements' warnings optional (for re-checks; the
    warnings about what pyhf ignores in the model and the observations are always given,
    as a patch can make them, e.g. by removing a channel) and, with ``rules_only``,
    without the schema and finiteness checks (for a patched workspace whose base and
    patch values were checked already). With ``base`` (a
    patched workspace's checked base), the model rules skip what the base's check
    covered (:func:`~hfpipe.spec.rules.check_patched_model`); errors are the same."""
    if not rules_only:
        if not isinstance(ws, dict):
            raise InvalidWorkspace(
                f"a workspace is a JSON object, got {describe(ws)}", file=file, path=()
            )
        hint = "this looks like a patchset, not a workspace" if "patches" in ws else ""
        check_schema(ws, "workspace.json", file=file, error=InvalidWorkspace, hint=hint)
        where = first_path(ws, is_non_finite)
        if where is not None:
            raise InvalidWorkspace("not a finite number (NaN or infinity)", file=file, path=where)
    if base is not None:
        try:
            _check_rules(ws, check_patched_model(ws, file, base), file, strict=strict, warn=warn)
            return
        except InvalidWorkspace:
            pass  # the full check below finds the same first problem and words it as ever
    _check_rules(ws, check_model(ws, file), file, strict=strict, warn=warn)


def _check_rules(ws: dict, model: ModelInfo, file: str, *, strict: bool, warn: bool) -> None:
    """The rules beyond the model's: observations and measurements."""
    check_observations(ws, model, file)
    check_measurements(ws, model, file, strict=strict, warn=warn)


def validate_workspace(ws: dict, *, file: str = "<workspace>", strict: bool = False) -> None:
    """Check a workspace against the pyhf 1.0.0 schema and pyhf's semantic rules.

    Beyond the schema: finite numbers only; consistent bin counts (samples, per-bin
    modifier data, observations); an observation for every channel, with non-negative
    counts; modifier names shared only as pyhf allows; valid measurement settings (see
    :mod:`hfpipe.spec.measurements`). What pyhf silently ignores or overwrites (repeated
    channel, sample, modifier, observation and measurement names, observations of
    channels the model lacks; see :mod:`hfpipe.spec.leniency`) is accepted as pyhf
    accepts it, with a :class:`~hfpipe.spec.SpecWarning` naming what is ignored. With
    ``strict`` the POI must be in the model and settings of unknown parameters are errors
    (otherwise they warn with :class:`~hfpipe.spec.SpecWarning`, as background-only and
    some published workspaces need). Raises :class:`~hfpipe.errors.InvalidWorkspace`
    naming ``file`` and the JSON path of the first problem found. Never modifies ``ws``.
    """
    _validate(ws, file, strict=strict, warn=True)


def load_workspace(
    source: str | os.PathLike | dict, *, name: str | None = None, strict: bool = False
) -> dict:
    """Load (from a ``.json``/``.json.gz`` path) or take a workspace dict, and validate it.

    Returns a deep copy, so the caller's dict is never shared or modified. ``name`` labels
    errors (default: the path, or ``"<workspace>"`` for a dict); ``strict`` as in
    :func:`validate_workspace`.
    """
    label = source_label(source, name, "<workspace>")
    if is_path(source):
        ws = load_json(source)
    else:  # a plain dict even for dict subclasses such as pyhf.Workspace
        ws = copy.deepcopy(dict(source) if isinstance(source, dict) else source)
    _validate(ws, label, strict=strict, warn=True)
    return ws


def workspace_digest(ws: dict, algorithm: str = "sha256") -> str:
    """Hex digest of a workspace, identical to ``pyhf.utils.digest`` (patchset digests).

    pyhf hashes ``json.dumps(ws, sort_keys=True, ensure_ascii=False)`` (default
    separators) encoded as UTF-8; any change, even int 1 versus float 1.0, changes it.
    """
    text = json.dumps(ws, sort_keys=True, ensure_ascii=False)
    try:
        hasher = hashlib.new(algorithm)
    except ValueError:
        raise ValueError(f"unknown hash algorithm {algorithm!r}") from None
    hasher.update(text.encode("utf-8"))
    return hasher.hexdigest()
