"""Plain JSON Patches (RFC 6902): loading them and applying them to workspaces."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import jsonpatch
import jsonpointer

from hfpipe.errors import InvalidPatch, InvalidWorkspace, json_path

from .io import copy_json, first_path, is_non_finite, is_path, load_json, source_label
from .leniency import SpecWarning
from .patchset import Patch
from .rules import CheckedModel
from .schema import check_schema
from .workspace import _validate

__all__ = ["PatchBase", "apply_patches", "load_patch"]

_MAX_REASON = 160


def load_patch(source: str | os.PathLike | list, *, name: str | None = None) -> list[dict]:
    """Load (from a path) or take a JSON Patch list and check its operations.

    Each operation needs ``op`` (add, remove, replace, move, copy, test) and a JSON pointer
    ``path``; add/replace/test need ``value``, move/copy need ``from``. Raises
    :class:`~hfpipe.errors.InvalidPatch`; ``name`` labels errors (default: the path or
    ``"<patch>"``). Returns a deep copy.
    """
    label = source_label(source, name, "<patch>")
    doc = load_json(source) if is_path(source) else copy.deepcopy(source)
    hint = (
        "this looks like a patchset: use load_patchset"
        if isinstance(doc, dict) and ("patches" in doc)
        else ""
    )
    check_schema(doc, "jsonpatch.json", file=label, error=InvalidPatch, hint=hint)
    bad = first_path(doc, is_non_finite)
    if bad is not None:
        raise InvalidPatch("not a finite number (NaN or infinity)", file=label, path=bad)
    return doc


#: what lands where in a workspace: (pattern of the JSON pointer's tokens, definition);
#: ``#`` stands for an array index (or ``-``, the end)
_LOCATIONS = (
    (("channels", "#"), "channel"),
    (("channels", "#", "samples", "#"), "sample"),
    (("channels", "#", "samples", "#", "data"), "counts"),
    (("channels", "#", "samples", "#", "data", "#"), "number"),
    (("channels", "#", "samples", "#", "modifiers", "#"), "modifier"),
    (("observations", "#"), "observation"),
    (("observations", "#", "data"), "counts"),
    (("observations", "#", "data", "#"), "number"),
    (("measurements", "#"), "measurement"),
)


def _location(pointer: str) -> str | None:
    """The workspace schema definition of what an operation's value becomes, if known."""
    tokens = pointer.split("/")[1:]
    for pattern, definition in _LOCATIONS:
        if len(tokens) == len(pattern) and all(
            token == want or (want == "#" and (token == "-" or token.isdigit()))
            for token, want in zip(tokens, pattern, strict=True)
        ):
            return definition
    return None


def _check_values(ops: list[dict], file: str, at: list) -> bool:
    """Schema-check the value each add/replace operation puts into the workspace.

    Returns whether every operation was an add or replace at a recognised location, in
    which case the unpatched rest of an already validated workspace needs no new schema
    check: only the cross-field rules. Errors point into the patch (``patch[1].value``).
    """
    complete = True
    for i, op in enumerate(ops):
        definition = _location(op["path"]) if op["op"] in ("add", "replace") else None
        if definition is None:
            complete = complete and op["op"] == "test"
            continue
        if definition == "number":
            schema = "workspace.json#/definitions/counts"
            value = [op["value"]]
        else:
            schema, value = f"workspace.json#/definitions/{definition}", op["value"]
        try:
            check_schema(value, schema, file=file, error=InvalidPatch, prefix=[*at, i, "value"])
        except InvalidPatch as error:
            if definition == "number":  # the error is about [value][0]: drop the index
                error = InvalidPatch(error.problem, file=file, path=json_path([*at, i, "value"]))
            raise InvalidPatch(
                f"{error.problem} (the {definition} this operation puts at {op['path']})",
                file=file,
                path=error.path,
            ) from None
    return complete


def _reason(exc: Exception) -> str:
    """jsonpatch's explanation, on one line and without the dumps of whole documents."""
    text = " ".join(str(exc).split())
    text = re.sub(r" (in|of) [\[{].*$", "", text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _own_path(doc: dict, pointer: str) -> None:
    """Shallow-copy the containers from the root to the parent of ``pointer`` in place.

    Patches change only the container that holds their target, so copying that chain
    (copy-on-write) keeps the caller's workspace untouched at a fraction of a deep copy's
    cost (docs/performance.md).
    """
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    container = doc
    for token in tokens[:-1]:
        key = int(token) if isinstance(container, list) and token.isdigit() else token
        try:
            child = container[key]
        except (KeyError, IndexError, TypeError):
            return  # jsonpatch reports the broken path
        if not isinstance(child, dict | list):
            return
        child = dict(child) if isinstance(child, dict) else list(child)
        container[key] = child
        container = child


def _apply_one(doc: dict, ops: list[dict], file: str, at: list, point: str) -> dict:
    for i, op in enumerate(ops):
        if isinstance(op, dict):
            for key in ("path", "from"):
                if isinstance(op.get(key), str):
                    _own_path(doc, op[key])
        try:
            doc = jsonpatch.apply_patch(doc, [op], in_place=True)
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            KeyError,
            IndexError,
            TypeError,
        ) as exc:
            target = op.get("path", "?") if isinstance(op, dict) else "?"
            verb = op.get("op", "apply") if isinstance(op, dict) else "apply"
            raise InvalidPatch(
                f"cannot {verb} {target or '(root)'}: {_reason(exc)}{point}",
                file=file,
                path=[*at, i],
            ) from None
    return doc


@dataclass(frozen=True, eq=False)
class PatchBase:
    """A validated workspace prepared for many patches: the background of a scan.

    Make it with :meth:`of`. It keeps what validating the workspace found
    (:class:`~hfpipe.spec.rules.CheckedModel`), so that :func:`apply_patches` checks of
    each patched result only what the patches added or changed. Never modify
    ``workspace`` (nor the results of :func:`apply_patches`, which share its parts).
    """

    workspace: dict
    checked: CheckedModel

    @classmethod
    def of(cls, workspace: dict, *, file: str = "<workspace>") -> PatchBase:
        """Prepare ``workspace``, validated before (:func:`~hfpipe.spec.load_workspace`).

        Takes a copy: changing the caller's dict afterwards cannot make the kept checks
        stale. ``file`` labels errors of a workspace that was not valid after all.
        """
        ws = copy_json(workspace)
        return cls(ws, CheckedModel.of(ws, file))


def apply_patches(
    workspace: dict | PatchBase,
    patches: list[list[dict]] | list[Patch],
    *,
    file: str = "<patch>",
    validate: bool = True,
    base_valid: bool = False,
    share_values: bool = False,
) -> dict:
    """Apply JSON Patches in order to a copy of ``workspace`` and return the result.

    ``patches`` are operation lists (checked like :func:`load_patch`) or :class:`Patch`
    objects of a patchset; ``file`` labels errors of operation lists (a ``Patch`` names
    its own patchset file, and errors give the JSON path in it: ``patches[3].patch[1]``).
    A patch that does not apply raises :class:`~hfpipe.errors.InvalidPatch` naming the
    failing operation and jsonpatch's reason; a value that would break the workspace's
    schema (a string among a sample's yields) raises it with the path into the patch.

    Unless ``validate`` is false, the result is then validated (see
    :func:`~hfpipe.spec.validate_workspace`); an :class:`~hfpipe.errors.InvalidWorkspace`
    says it is the patched workspace. With ``base_valid`` (``workspace`` came from
    :func:`~hfpipe.spec.load_workspace`), or a :class:`PatchBase` (which implies it), the
    checks skip what the base's validation covered, with the same errors: the schema
    check covers the patches' values only when they only add or replace whole samples,
    modifiers, channels and the like (as signal patchsets do), and the model rules walk
    the modifiers of the samples the patches added or changed only. A ``PatchBase``
    keeps the base's checks from call to call: a point then costs a small fraction of
    validating the whole result (docs/performance.md).

    Unlike ``pyhf.PatchSet.apply``, this does not check the patchset's digest on every
    call: use :func:`~hfpipe.spec.verify_patchset` once per workspace. Returns a plain
    ``dict`` that shares unpatched parts with ``workspace``: treat both as read-only.
    The values the operations put in are copies, unless ``share_values``: then the
    result holds the patches' own values (no operation writes into them: the
    containers on an operation's path are copied first), for a caller that only reads
    the result, as a scan compiling a point does (a fifth of a 1Lbb point's
    preparation is the copy).
    """
    base = workspace if isinstance(workspace, PatchBase) else None
    base_valid = base_valid or base is not None
    doc = dict(base.workspace if base else workspace)  # paths patched are copied on write
    applied = []
    values_checked = True
    for k, patch in enumerate(patches):
        if isinstance(patch, Patch):
            ops, label, applied_name = list(patch.operations), patch.source or file, patch.name
            at = list(patch.path)
            point = f" (point {patch.name})" if patch.values else ""
        else:
            ops, label = patch, file
            at = ["patches", k, "patch"] if len(patches) > 1 else ["patch"]
            applied_name = f"{file} {json_path(at[:-1])}" if len(patches) > 1 else file
            point = ""
            check_schema(ops, "jsonpatch.json", file=file, error=InvalidPatch, prefix=at)
            bad = first_path(ops, is_non_finite)
            if bad is not None:
                raise InvalidPatch(
                    "not a finite number (NaN or infinity)", file=file, path=at + bad
                )
        values_checked &= _check_values(ops, label, at)
        # jsonpatch inserts the op's value itself, which would alias the patch
        doc = _apply_one(doc, ops if share_values else copy_json(ops), label, at, point)
        applied.append(applied_name)
    if validate:
        with _about_the_patched_workspace():
            _validate_patched(doc, workspace, base, file, base_valid, values_checked, applied)
    return doc


@contextlib.contextmanager
def _about_the_patched_workspace() -> Iterator[None]:
    """SpecWarnings raised inside say that their JSON path is in the patched workspace
    (their file is the patch's or the patchset's); the same for every point, so a scan
    repeats none. Other warnings pass on unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        if issubclass(warning.category, SpecWarning):
            message = f"{warning.message} (in the patched workspace)"
            warnings.warn(message, warning.category, stacklevel=3)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _validate_patched(
    doc: dict,
    workspace: dict | PatchBase,
    base: PatchBase | None,
    file: str,
    base_valid: bool,
    values_checked: bool,
    applied: list[str],
) -> None:
    """Validate a patched workspace (see :func:`apply_patches`); an error says it is the
    patched workspace."""
    try:
        checked = None
        if base_valid:
            checked = base.checked if base else CheckedModel.of(workspace, file)
        _validate(
            doc,
            file,
            strict=False,
            warn=False,
            rules_only=base_valid and values_checked,
            base=checked,
        )
    except InvalidWorkspace as exc:
        raise InvalidWorkspace(
            f"{exc.problem} (in the workspace patched with {', '.join(applied)})",
            file=file,
            path=exc.path,
        ) from None
