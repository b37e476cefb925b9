"""Reading JSON inputs (plain or gzip-compressed) with one-line, file-naming errors.

pyhf workspaces and patchsets are JSON; HEPData ships many of them gzip-compressed, often
without a ``.gz`` suffix, so compression is detected from the content. Python's ``json``
module accepts ``NaN`` and ``Infinity``, which are not JSON and would poison a fit much
later: they are rejected here, with the JSON path of the offending value.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hfpipe.errors import InputError

__all__ = ["copy_json", "first_path", "is_non_finite", "is_path", "load_json", "source_label"]

_GZIP_MAGIC = b"\x1f\x8b"
#: what a number must have to overflow a double: an exponent of three digits or more
#: (1e309 and beyond) or 309 digits before it, as they read once every digit is made a
#: zero and every E an e (cheap searches of that text find the candidates before any
#: float is checked)
_LARGE_EXPONENTS, _LONG_DIGIT_RUN = (b"e000", b"e+000"), b"0" * 309
_NUMBER_OUTLINE = bytes.maketrans(b"123456789E", b"000000000e")
#: the bytes a JSON number is made of (and, around a candidate, of words and digests
#: that only look like one: a sha1 ``...1431e921d88...`` holds ``e921``)
_NUMBER_BYTES = frozenset(b"0123456789+-.eE") | frozenset(b"abcdfABCDF_")
_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class _NonFinite:
    """Placeholder the parser puts where the text had ``NaN``, ``Infinity`` or ``-Infinity``."""

    def __init__(self, literal: str):
        self.literal = literal


def is_path(source: Any) -> bool:
    """Whether ``source`` names a file (``str`` or ``os.PathLike``) rather than parsed JSON."""
    return isinstance(source, str | os.PathLike)


def source_label(source: Any, name: str | None, default: str) -> str:
    """The label errors use for ``source``: ``name`` if given, else the path, else ``default``."""
    if name is not None:
        return name
    if is_path(source):
        return os.fspath(source)
    return default


def first_path(doc: Any, predicate: Callable[[Any], bool]) -> list | None:
    """JSON path (keys and indices) of the first leaf of ``doc`` matching ``predicate``, or None."""
    path: list = []

    def visit(node: Any) -> bool:
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list | tuple):
            items = enumerate(node)
        else:
            return predicate(node)
        for key, value in items:
            path.append(key)
            if visit(value):
                return True
            path.pop()
        return False

    return path if visit(doc) else None


def copy_json(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, numbers, strings; tuples too), two to
    three times faster than ``copy.deepcopy``: JSON has no cycles or shared nodes to
    remember, and its numbers and strings are immutable, so they are shared."""
    if isinstance(value, dict):
        return {
            key: item if type(item) in _LEAVES else copy_json(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [item if type(item) in _LEAVES else copy_json(item) for item in value]
    if isinstance(value, tuple):
        return tuple(item if type(item) in _LEAVES else copy_json(item) for item in value)
    return value


#: the immutable values of parsed JSON
_LEAVES = frozenset({float, int, str, bool, type(None)})


def is_non_finite(value: Any) -> bool:
    """True for float NaN and infinities (the values JSON cannot represent)."""
    return isinstance(value, float) and not math.isfinite(value)


def _read_bytes(path: Path, label: str) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", file=label, path="") from None
    except IsADirectoryError:
        raise InputError("is a directory, not a JSON file", file=label, path="") from None
    except PermissionError:
        raise InputError("cannot read the file: permission denied", file=label, path="") from None
    except OSError as exc:
        raise InputError(
            f"cannot read the file: {exc.strerror or exc}", file=label, path=""
        ) from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"corrupt gzip data: {exc}", file=label, path="") from None
    return raw


def load_json(source: str | os.PathLike) -> Any:
    """Read and parse a ``.json`` or gzip-compressed ``.json.gz`` file.

    Compression is recognised by the gzip magic bytes, whatever the suffix. Raises
    :class:`~hfpipe.errors.InputError` naming the file for a missing or unreadable file,
    an empty file, invalid JSON (with line and column), the non-JSON literals ``NaN``,
    ``Infinity`` and ``-Infinity`` and numbers that overflow a double, such as ``1e999``
    (with their JSON path): a document it returns holds finite numbers only.
    """
    label = os.fspath(source)
    raw = _read_bytes(Path(source), label)
    if not raw.strip():
        raise InputError("the file is empty", file=label, path="")

    seen_constant = False

    def parse_constant(literal: str) -> _NonFinite:
        nonlocal seen_constant
        seen_constant = True
        return _NonFinite(literal)

    def parse_float(literal: str) -> float | _NonFinite:
        value = float(literal)
        return value if math.isfinite(value) else parse_constant(literal)

    checked_floats = {"parse_float": parse_float} if _may_overflow(raw) else {}
    try:
        doc = json.loads(raw, parse_constant=parse_constant, **checked_floats)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", file=label, path=""
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte {exc.start}): is this really a JSON file?", file=label, path=""
        ) from None
    if seen_constant:
        where = first_path(doc, lambda node: isinstance(node, _NonFinite))
        literal = _lookup(doc, where).literal
        if literal in ("NaN", "Infinity", "-Infinity"):
            problem = f"{literal} is not valid JSON: use a finite number (or null)"
        else:
            problem = f"{literal} is not a finite number in double precision (it overflows)"
        raise InputError(problem, file=label, path=where)
    return doc


def _may_overflow(raw: bytes) -> bool:
    """Whether the text may hold a number a double cannot hold. A run of 309 digits
    counts at once; a large exponent (three digits or more) is widened to the whole
    token around it, and counts only where that token is a JSON number (in a string or
    not: either way the careful parse then runs) that overflows. Checking every float as
    it is parsed instead doubles the time ``json`` takes, which a patchset's digests made
    happen on every read. Both are looked for in the text with every digit made a zero
    and every E an e, where plain searches find them (a regular expression over 1Lbb's
    patchset took a tenth of a second: its keys are full of e's)."""
    outline = raw.translate(_NUMBER_OUTLINE)
    if outline.find(_LONG_DIGIT_RUN) != -1:
        return True
    for exponent in _LARGE_EXPONENTS:
        at = outline.find(exponent)
        while at != -1:
            if _overflows(raw, at, at + len(exponent)):
                return True
            at = outline.find(exponent, at + len(exponent))
    return False


def _overflows(raw: bytes, start: int, end: int) -> bool:
    """Whether the token around ``raw[start:end]`` is a JSON number a double cannot hold."""
    while start > 0 and raw[start - 1] in _NUMBER_BYTES:
        start -= 1
    while end < len(raw) and raw[end] in _NUMBER_BYTES:
        end += 1
    token = raw[start:end]
    return bool(_JSON_NUMBER.fullmatch(token)) and not math.isfinite(float(token))


def _lookup(doc: Any, path: list) -> Any:
    for part in path:
        doc = doc[part]
    return doc
