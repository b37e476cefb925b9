"""Plain JSON Patches (RFC 6902): loading them and applying them to workspaces."""

from __future__ import annotations

import copy
import os
import re

import jsonpatch
import jsonpointer

from hfpipe.errors import InvalidPatch, InvalidWorkspace

from .io import is_path, load_json, source_label
from .patchset import Patch
from .schema import check_schema
from .workspace import _validate

__all__ = ["apply_patches", "load_patch"]

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
    return doc


def _reason(exc: Exception) -> str:
    """jsonpatch's explanation, on one line and without the dumps of whole documents."""
    text = " ".join(str(exc).split())
    text = re.sub(r" (in|of) [\[{].*$", "", text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _own_path(doc: dict, pointer: str) -> None:
    """Shallow-copy the containers from the root to the parent of ``pointer`` in place.

    Patches change only the container that holds their target, so copying that chain
    (copy-on-write) keeps the caller's workspace untouched at a fraction of a deep copy's
    cost — the difference between 0.05 s and 1 s per signal point on ATLAS 1Lbb.
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


def _apply_one(doc: dict, ops: list[dict], file: str, where: str) -> dict:
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
                f"cannot {verb} {target or '(root)'}: {_reason(exc)}",
                file=file,
                path=f"{where}patch[{i}]",
            ) from None
    return doc


def apply_patches(
    workspace: dict,
    patches: list[list[dict]] | list[Patch],
    *,
    file: str = "<patch>",
    validate: bool = True,
) -> dict:
    """Apply JSON Patches in order to a copy of ``workspace`` and return the result.

    ``patches`` are operation lists (checked like :func:`load_patch`) or :class:`Patch`
    objects of a patchset; ``file`` labels errors. A patch that does not apply raises
    :class:`~hfpipe.errors.InvalidPatch` naming the patch, the failing operation
    (``patch[3]``) and jsonpatch's reason. Unless ``validate`` is false, the result is then
    validated (:func:`~hfpipe.spec.validate_workspace`), and an
    :class:`~hfpipe.errors.InvalidWorkspace` says it is the patched workspace. Unlike
    ``pyhf.PatchSet.apply``, this does not check the patchset's digest on every call: use
    :func:`~hfpipe.spec.verify_patchset` once per workspace. Returns a plain ``dict``
    that shares unpatched parts with ``workspace``: treat both as read-only.
    """
    doc = dict(workspace)  # containers on each patched path are copied on write
    applied = []
    for k, patch in enumerate(patches):
        if isinstance(patch, Patch):
            ops, where, applied_name = list(patch.operations), f"{patch.name}: ", patch.name
        else:
            ops = patch
            where = f"patches[{k}]." if len(patches) > 1 else ""
            applied_name = f"{file} {where.rstrip('.')}".strip()
            prefix = ["patches", k, "patch"] if where else ["patch"]
            check_schema(ops, "jsonpatch.json", file=file, error=InvalidPatch, prefix=prefix)
        # jsonpatch inserts an op's value itself, so the result shares it with the patch;
        # both are read-only, and later ops copy containers on their path before writing
        doc = _apply_one(doc, ops, file, where)
        applied.append(applied_name)
    if validate:
        try:
            _validate(doc, file, strict=False, warn=False)
        except InvalidWorkspace as exc:
            raise InvalidWorkspace(
                f"{exc.problem} (in the workspace patched with {', '.join(applied)})",
                file=file,
                path=exc.path,
            ) from None
    return doc
