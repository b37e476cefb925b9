"""Archives of published likelihoods: unpack them and pair workspaces with patchsets.

HEPData distributes an analysis' likelihoods as a ``.tar.gz`` (sometimes ``.zip``)
holding one or more background-only workspaces and patchsets, in any folder layout.
:func:`unpack` extracts an archive once into the cache (keyed by its sha256), and the
archives inside it one level deep, as in a whole HEPData submission whose resources are
archives themselves (the tar ``data`` filter refuses paths that escape the folder, links
outside it and device files). :func:`find_pairs` reads every ``.json``/``.json.gz`` file inside, and pairs each
patchset with the workspace whose digest (``workspace_digest``) equals the one the
patchset records — the digest check *is* the pairing, so a patchset whose workspace is
missing or altered is reported, never scanned against the wrong background.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hfpipe import spec
from hfpipe.errors import InputError
from hfpipe.spec.digests import file_sha256

__all__ = ["Pair", "find_pairs", "unpack"]

#: archives inside an archive that are unpacked too (one level deep)
_NESTED = (".tar.gz", ".tgz", ".tar", ".zip")


def unpack(path: str | os.PathLike, cache: str | os.PathLike) -> Path:
    """A folder with the content of ``path``: the folder itself, or the unpacked archive."""
    path = Path(path)
    if path.is_dir():
        return path
    is_tar, is_zip = tarfile.is_tarfile(path), zipfile.is_zipfile(path)
    if not (is_tar or is_zip):
        raise InputError("neither a folder nor a tar or zip archive", file=str(path), path="")
    target = Path(cache) / "unpacked" / file_sha256(path)[:32]
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=target.parent))
    try:
        _extract(path, staging, is_tar)
        # a whole HEPData submission holds each resource (the likelihoods) as an archive
        for inner in sorted(staging.rglob("*")):
            if inner.is_file() and inner.name.endswith(_NESTED):
                _extract(inner, inner.with_name(inner.name + ".d"), tarfile.is_tarfile(inner))
        os.replace(staging, target)  # a complete folder appears at once, or none
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise InputError(f"cannot unpack the archive: {error}", file=str(path), path="") from None
    return target


def _extract(path: Path, folder: Path, is_tar: bool) -> None:
    if is_tar:
        with tarfile.open(path, mode="r:*") as archive:
            archive.extractall(folder, filter="data")
    else:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)


@dataclass(frozen=True)
class Pair:
    """A background-only workspace and a patchset made for it (digests agree)."""

    workspace: Path
    patchset: Path
    #: the patchset's path inside the folder, without suffixes (names several pairs apart)
    label: str


def _json_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")  # includes macOS "._name" resource forks
        and (p.name.endswith(".json") or p.name.endswith(".json.gz"))
    )


def _stem(path: Path, folder: Path) -> str:
    relative = path.relative_to(folder).as_posix()
    return relative.removesuffix(".gz").removesuffix(".json")


def find_pairs(folder: str | os.PathLike) -> list[Pair]:
    """Every (workspace, patchset) pair in ``folder``, matched by the patchset's digest.

    Raises a one-line error if the folder has no patchset, or a patchset whose recorded
    workspace digest matches no workspace in the folder.
    """
    folder = Path(folder)
    workspaces: dict[str, Path] = {}
    patchsets: list[tuple[Path, str]] = []
    for path in _json_files(folder):
        try:
            doc = spec.load_json(path)
        except InputError:
            continue  # not JSON after all: archives carry other files too
        if not isinstance(doc, dict):
            continue
        if "patches" in doc and "metadata" in doc:
            digest = doc["metadata"].get("digests", {}).get("sha256")
            if digest is None:
                raise InputError(
                    "patchset records no sha256 digest", file=str(path), path="metadata.digests"
                )
            patchsets.append((path, digest))
        elif "channels" in doc and "observations" in doc:
            workspaces.setdefault(spec.workspace_digest(doc), path)
    if not patchsets:
        raise InputError("no patchset found", file=str(folder), path="")
    pairs = []
    for path, digest in patchsets:
        if digest not in workspaces:
            raise InputError(
                f"no workspace here has the digest the patchset records (sha256 {digest[:12]}…)",
                file=str(path),
                path="metadata.digests.sha256",
            )
        pairs.append(Pair(workspace=workspaces[digest], patchset=path, label=_stem(path, folder)))
    return pairs
