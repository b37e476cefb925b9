"""pyhf patchsets (schema 1.0.0): signal patches for one background-only workspace.

A patchset holds, per signal point, a name, its coordinates (``values``, one per entry of
``labels``, e.g. two masses) and a JSON Patch; its metadata records the digest of the
workspace it was made for, so a patch cannot be applied to the wrong background model.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hfpipe.errors import DigestMismatch, InvalidPatchset

from .io import first_path, is_non_finite, is_path, load_json, source_label
from .schema import check_schema
from .workspace import workspace_digest

__all__ = ["Patch", "PatchSet", "load_patchset", "verify_patchset"]

_SHOWN_NAMES = 5


@dataclass(frozen=True)
class Patch:
    """One signal point: its name, label values and JSON Patch operations."""

    name: str
    values: tuple[float | str, ...]
    operations: tuple[dict, ...]
    #: where the patch comes from, for errors: the patchset file and the JSON path of the
    #: operation list in it (``patches[3].patch``)
    source: str = field(default="", compare=False)
    path: tuple = field(default=(), compare=False)


@dataclass(frozen=True)
class PatchSet:
    """A validated patchset; look patches up by name (or by their tuple of values)."""

    labels: tuple[str, ...]
    patches: tuple[Patch, ...]
    digests: dict[str, str]
    description: str
    analysis_id: str
    references: dict
    version: str
    source: str
    name: str = ""
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict = {}
        for patch in self.patches:
            index.setdefault(patch.name, patch)
            index.setdefault(tuple(patch.values), patch)
        object.__setattr__(self, "_index", index)

    @property
    def names(self) -> tuple[str, ...]:
        """Patch names, in file order."""
        return tuple(patch.name for patch in self.patches)

    def __len__(self) -> int:
        return len(self.patches)

    def __iter__(self) -> Iterator[Patch]:
        return iter(self.patches)

    def __getitem__(self, key: str | tuple | list) -> Patch:
        """The patch with this name, or with these values (a tuple or list)."""
        lookup = tuple(key) if isinstance(key, list | tuple) else key
        try:
            return self._index[lookup]
        except (KeyError, TypeError):
            pass
        names = self.names
        shown = ", ".join(names[:_SHOWN_NAMES]) + ("…" if len(names) > _SHOWN_NAMES else "")
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        what = f"values {lookup!r}" if isinstance(lookup, tuple) else f"named {key!r}"
        raise InvalidPatchset(
            f"no patch {what}; {hint}known ({len(names)}): {shown}", file=self.source, path=""
        )


def _check_patches(doc: dict, label: str) -> None:
    """pyhf's rules beyond the schema: unique names, unique values, one value per label."""
    labels = doc["metadata"]["labels"]
    names: dict[str, int] = {}
    values: dict[tuple, int] = {}
    for i, spec in enumerate(doc["patches"]):
        meta = spec["metadata"]
        at = ["patches", i, "metadata"]
        if meta["name"] in names:
            raise InvalidPatchset(
                f"duplicate patch name '{meta['name']}' (first: patches[{names[meta['name']]}])",
                file=label,
                path=[*at, "name"],
            )
        names[meta["name"]] = i
        point = tuple(meta["values"])
        if len(point) != len(labels):
            raise InvalidPatchset(
                f"{len(point)} value{'s' if len(point) != 1 else ''} but the patchset has "
                f"{len(labels)} label{'s' if len(labels) != 1 else ''} "
                f"({', '.join(labels)})",
                file=label,
                path=[*at, "values"],
            )
        if point in values:
            first = values[point]
            raise InvalidPatchset(
                f"values {list(point)} repeat those of patches[{first}] "
                f"('{doc['patches'][first]['metadata']['name']}')",
                file=label,
                path=[*at, "values"],
            )
        values[point] = i


def _value(item: Any) -> float | str:
    return item if isinstance(item, str) else float(item)


def load_patchset(source: str | os.PathLike | dict, *, name: str | None = None) -> PatchSet:
    """Load (from a path) or take a patchset dict, validate it, return a :class:`PatchSet`.

    Checks pyhf's patchset schema 1.0.0 (with at least one digest: ``sha256`` or ``md5``),
    finite numbers only, and pyhf's rules (unique patch names, unique values, as many
    values as labels).
    Numeric values become floats. Raises :class:`~hfpipe.errors.InvalidPatchset` with
    the JSON path of the problem; ``name`` labels errors (default: the path).
    """
    label = source_label(source, name, "<patchset>")
    doc = load_json(source) if is_path(source) else copy.deepcopy(source)
    hint = (
        "this looks like a workspace, not a patchset"
        if isinstance(doc, dict) and ("channels" in doc)
        else ""
    )
    check_schema(doc, "patchset.json", file=label, error=InvalidPatchset, hint=hint)
    # a parsed file's numbers are finite (load_json); a caller's dict may hold NaN or inf
    bad = None if is_path(source) else first_path(doc, is_non_finite)
    if bad is not None:
        raise InvalidPatchset("not a finite number (NaN or infinity)", file=label, path=bad)
    _check_patches(doc, label)
    meta = doc["metadata"]
    patches = tuple(
        Patch(
            name=spec["metadata"]["name"],
            values=tuple(_value(v) for v in spec["metadata"]["values"]),
            operations=tuple(spec["patch"]),
            source=label,
            path=("patches", i, "patch"),
        )
        for i, spec in enumerate(doc["patches"])
    )
    return PatchSet(
        labels=tuple(meta["labels"]),
        patches=patches,
        digests={alg: digest.lower() for alg, digest in meta["digests"].items()},
        description=meta["description"],
        analysis_id=meta.get("analysis_id", ""),
        references=dict(meta.get("references", {})),
        version=doc["version"],
        source=label,
        name=meta.get("name", ""),
    )


def verify_patchset(patchset: PatchSet, workspace: dict, *, file: str | None = None) -> None:
    """Check that ``workspace`` is the one the patchset was made for (by its digests).

    Raises :class:`~hfpipe.errors.DigestMismatch` (labelled ``file``, default the
    patchset's source) when any recorded digest differs from the workspace's.
    """
    for algorithm in sorted(patchset.digests, key=lambda alg: alg != "sha256"):
        expected = patchset.digests[algorithm]
        actual = workspace_digest(workspace, algorithm)
        if actual != expected:
            raise DigestMismatch(
                f"patchset was made for workspace {algorithm}:{expected[:16]}… but this "
                f"workspace is {algorithm}:{actual[:16]}…",
                file=file or patchset.source,
                path=["metadata", "digests", algorithm],
            )
