"""Downloads of published likelihoods: cached on disk, checksummed, resumable.

A source is a local path (returned as is) or an ``http(s)`` URL. A URL is fetched once
into ``cache/downloads/<sha256 of the URL>``; later calls find it there and touch no
network. While downloading, bytes go to ``….part``; an interrupted download resumes
from where it stopped with an HTTP ``Range`` request (servers that ignore it send the
whole file, which then replaces the part). The file's sha256 is recorded next to it
(``….json``) and checked against the expected one when the campaign gives it.

HEPData serves a record's resource files (``https://www.hepdata.net/record/resource/<id>``
or its DOI ``https://doi.org/10.17182/hepdata.<record>.v<n>/r<k>``) by content
negotiation: asked with ``Accept: application/x-tar, application/zip`` it returns the
archive itself instead of the landing page (as ``pyhf contrib download`` does).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from hfpipe.errors import InputError
from hfpipe.spec.digests import file_sha256

__all__ = ["fetch", "is_url"]

_ACCEPT = "application/x-tar, application/gzip, application/zip, */*;q=0.1"
_CHUNK = 1 << 20


def is_url(source: str | os.PathLike) -> bool:
    """Whether ``source`` is an http(s) URL (anything else is a local path)."""
    return urlsplit(os.fspath(source)).scheme in ("http", "https")


def _cached(final: Path, record: Path, sha256: str | None, url: str) -> Path | None:
    if not (final.is_file() and record.is_file()):
        return None
    recorded = json.loads(record.read_text())
    if sha256 is not None and recorded.get("sha256") != sha256:
        raise InputError(
            f"cached download has sha256 {recorded.get('sha256')}, the campaign expects {sha256}"
            f" (delete {final} to download it again)",
            file=url,
            path="",
        )
    return final


def _download(url: str, part: Path, timeout: float) -> None:
    """Bytes of ``url`` into ``part``, appending to what an earlier attempt left."""
    import requests

    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept": _ACCEPT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:  # nothing left to fetch
                return
            if response.status_code not in (200, 206):
                raise InputError(
                    f"HTTP {response.status_code} {response.reason}", file=url, path=""
                )
            if "text/html" in response.headers.get("Content-Type", ""):
                raise InputError(
                    "the server sent a web page, not a file: give the resource's download URL",
                    file=url,
                    path="",
                )
            mode = "ab" if response.status_code == 206 else "wb"
            with open(part, mode) as f:
                for chunk in response.iter_content(_CHUNK):
                    f.write(chunk)
    except requests.RequestException as error:
        raise InputError(
            f"download failed (run again to resume): {error}", file=url, path=""
        ) from None


def fetch(
    source: str | os.PathLike,
    cache: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """A local path for ``source``: the path itself, or the cached download of a URL.

    ``sha256`` (optional) is the expected checksum of the file; a mismatch is an error
    and the bad download is removed, so the next run fetches it again.
    """
    if not is_url(source):
        path = Path(source)
        if not path.exists():
            raise InputError("no such file or directory", file=os.fspath(source), path="")
        if sha256 is not None and path.is_file() and file_sha256(path) != sha256:
            raise InputError(f"sha256 differs from the expected {sha256}", file=str(path), path="")
        return path
    url = os.fspath(source)
    folder = Path(cache) / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    final, part, record = folder / key, folder / f"{key}.part", folder / f"{key}.json"
    cached = _cached(final, record, sha256, url)
    if cached is not None:
        return cached
    _download(url, part, timeout)
    digest = file_sha256(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise InputError(
            f"downloaded file has sha256 {digest}, expected {sha256}", file=url, path=""
        )
    os.replace(part, final)
    record.write_text(json.dumps({"url": url, "sha256": digest, "size": final.stat().st_size}))
    return final
