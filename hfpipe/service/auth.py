"""Who gets in: bearer tokens, checked in constant time, and a bound on request bodies.

Tokens come from a file (one a line; blank lines and ``#`` comments skipped) and the
environment variable ``HFPIPE_SERVICE_TOKEN``. A request names its token as
``Authorization: Bearer TOKEN``; the service keeps only the tokens' sha256 digests and
compares a request's digest with every one of them by :func:`hmac.compare_digest`, so
neither the answer's timing nor an early exit says how much of a token was right. A
job belongs to its token's *owner* (a digest prefix, never the token itself): only that
owner sees or cancels it.

:class:`Guard` is the ASGI middleware in front of every route: it answers 401 before
reading any of an uninvited request's body, and 413 for a body over the limit before
anything parses it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path

from hfpipe.errors import InputError

__all__ = [
    "ANONYMOUS",
    "MIN_TOKEN_LENGTH",
    "TOKEN_VARIABLE",
    "Guard",
    "Tokens",
    "load_tokens",
]

TOKEN_VARIABLE = "HFPIPE_SERVICE_TOKEN"
#: shorter tokens are refused: a guessable token is no lock
MIN_TOKEN_LENGTH = 16
#: the owner of every job of a service started with ``--no-auth``
ANONYMOUS = "anonymous"
#: routes anyone may read: the OpenAPI schema and its browser page
OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})


def load_tokens(token_file: str | os.PathLike | None, environ: Mapping[str, str]) -> tuple:
    """The tokens of ``token_file`` and of ``environ[TOKEN_VARIABLE]``, each checked to be
    at least :data:`MIN_TOKEN_LENGTH` characters."""
    found: list[tuple[str, str]] = []
    if token_file is not None:
        label = os.fspath(token_file)
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as error:
            raise InputError(f"cannot read the token file: {error.strerror}", file=label) from None
        found += [(line.strip(), label) for line in lines if line.strip()[:1] not in ("", "#")]
    if environ.get(TOKEN_VARIABLE, "").strip():
        found.append((environ[TOKEN_VARIABLE].strip(), TOKEN_VARIABLE))
    for token, label in found:
        if len(token) < MIN_TOKEN_LENGTH:
            raise InputError(f"a token must be at least {MIN_TOKEN_LENGTH} characters", file=label)
    return tuple(dict.fromkeys(token for token, _ in found))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """The accepted tokens, kept as digests."""

    def __init__(self, tokens: tuple):
        if not tokens:
            raise ValueError("no tokens")
        self._digests = [(_digest(token), _digest(token).hex()[:16]) for token in tokens]

    def owner(self, authorization: str | None) -> str | None:
        """The owner of the token in an ``Authorization`` header value, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        candidate = _digest(token.strip())
        owner = None
        for digest, name in self._digests:  # every one compared: no early exit
            if hmac.compare_digest(candidate, digest):
                owner = name
        return owner


class Guard:
    """ASGI middleware: 401 without a valid token, 413 for a body over ``max_body`` bytes.

    The body is read here, whole, before any route parses it, and handed on; a request
    without a token is answered before its body is read at all. ``tokens=None`` lets
    every request in as :data:`ANONYMOUS` (``hfpipe serve --no-auth``).
    """

    def __init__(self, app, *, tokens: Tokens | None, max_body: int):
        self.app, self.tokens, self.max_body = app, tokens, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] not in OPEN_PATHS:
            owner = (
                ANONYMOUS
                if self.tokens is None
                else self.tokens.owner(headers.get("authorization"))
            )
            if owner is None:
                return await _answer(
                    send, 401, "missing or unknown bearer token", [(b"www-authenticate", b"Bearer")]
                )
            scope.setdefault("state", {})["owner"] = owner
        declared = headers.get("content-length", "0")
        if not declared.isdigit():
            return await _answer(send, 400, "Content-Length is not a number")
        if int(declared) > self.max_body:
            await _drain(receive, 16 * self.max_body)
            return await _answer(send, 413, self._too_large())
        body, complete = await _read(receive, self.max_body)
        if not complete:
            await _drain(receive, 16 * self.max_body)
            return await _answer(send, 413, self._too_large())
        return await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"request: the body is over the limit of {self.max_body} bytes"


async def _read(receive, limit: int) -> tuple[bytes, bool]:
    """The request body, and False if it went over ``limit`` (then it is cut there)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _drain(receive, limit: int) -> None:
    """Read and drop the rest of a refused body (up to ``limit`` bytes), so that the
    client, still sending, reads the answer instead of a reset connection."""
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        size += len(message.get("body", b""))


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()  # after the body: the disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send, status: int, error: str, headers: list | None = None) -> None:
    content = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
