"""JSON-schema checks of workspaces, patches and patchsets, with readable one-line errors.

The schemas are hfpipe's own (``hfpipe/spec/schemas/*.json``, JSON Schema draft 7), written
to accept what pyhf's 1.0.0 schemas accept but to fail with specific errors: modifiers are
dispatched on ``type`` with a chain of ``if``/``then``/``else`` instead of pyhf's ``anyOf``,
so a bad normsys reports the normsys problem rather than "is not valid under any of the
given schemas" (the chain tries the commonest types first: each failed ``if`` costs the
compiled validator an exception, and 1Lbb has 10k modifiers).
jsonschema's messages are reworded here; a schema node may carry ``x-message`` (replaces
the wording, ``{value}`` is the offending value) and ``x-noun`` (what an enum value is).
Valid documents are recognised first by a validator that ``fastjsonschema`` compiles to
Python code, which is over an order of magnitude faster than jsonschema on a published
background model of 10k modifiers (docs/performance.md). Its errors are terser (no ``x-message``,
no best match among alternatives), so a document it rejects is checked again by jsonschema,
whose error is the one reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from hfpipe.errors import InputError

__all__ = ["SCHEMAS", "check_schema", "describe", "is_valid"]

SCHEMAS = ("workspace.json", "patchset.json", "jsonpatch.json")

_TYPE_NAMES = {
    "number": "a number",
    "integer": "an integer",
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "null": "null",
    "boolean": "true or false",
}


def _load(name: str) -> dict:
    text = resources.files("hfpipe.spec").joinpath("schemas", name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _registry() -> Registry:
    schemas = [_load(name) for name in SCHEMAS]
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas
    )


def _schema(name: str) -> dict:
    """A schema file (``workspace.json``) or one of its definitions
    (``workspace.json#/definitions/sample``, a reference to it)."""
    if "#" not in name:
        return _load(name)
    file, _ = name.split("#", 1)
    return {"$ref": _load(file)["$id"].rsplit("/", 1)[0] + "/" + name}


@cache
def _validator(name: str) -> Draft7Validator:
    schema = _schema(name)
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, registry=_registry())


@cache
def _fast_validator(name: str) -> Callable[[Any], Any]:
    """The schema compiled by fastjsonschema (raises ``JsonSchemaException`` on a no)."""
    by_id = {schema["$id"]: schema for schema in map(_load, SCHEMAS)}
    return fastjsonschema.compile(
        _schema(name), handlers={"https": by_id.__getitem__}, use_default=False
    )


def is_valid(doc: Any, schema: str) -> bool:
    """Whether ``doc`` is valid under the named schema (fast; no explanation)."""
    try:
        _fast_validator(schema)(doc)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def describe(value: Any) -> str:
    """Short human wording of a JSON value for error messages (``'abc'``, ``an object``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        count = len(value)
        return (
            "an empty array"
            if not count
            else f"an array of {count} entr{'y' if count == 1 else 'ies'}"
        )
    return f"a {type(value).__name__}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _generic(error: ValidationError) -> str:
    """jsonschema's error, reworded."""
    kind, expected, value = error.validator, error.validator_value, error.instance
    noun = error.schema.get("x-noun", "value") if isinstance(error.schema, dict) else "value"
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return f"expected {wanted}, got {describe(value)}"
    if kind == "required":
        missing = [key for key in expected if key not in value]
        return f"missing required key {missing[0]!r}" if missing else error.message
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(key for key in value if key not in allowed)
        keys = ", ".join(repr(key) for key in extra)
        known = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{'s' if len(extra) > 1 else ''} {keys}{known}"
    if kind == "enum":
        known = ", ".join(sorted(str(v) for v in expected))
        return f"unknown {noun} {describe(value)} (known: {known})"
    if kind == "const":
        if noun != "value":
            return f"unsupported {noun} {describe(value)} (expected {describe(expected)})"
        return f"expected {describe(expected)}, got {describe(value)}"
    if kind == "minItems":
        if expected == 1:
            return "must not be empty"
        return f"needs at least {expected} entries, got {len(value)}"
    if kind == "maxItems":
        return f"needs at most {expected} entries, got {len(value)}"
    if kind == "minLength":
        return "must not be an empty string"
    if kind == "minProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return (
            f"must not be empty (give at least one of: {allowed})"
            if allowed
            else "must not be empty"
        )
    if kind == "pattern":
        return f"{describe(value)} does not match the pattern {expected}"
    return error.message.splitlines()[0]


def explain(error: ValidationError) -> str:
    """The one-line problem text for a jsonschema error."""
    generic = _generic(error)
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if not custom:
        return generic
    if "{value}" in custom and error.validator != "type":
        return custom.format(value=describe(error.instance))
    if "{value}" in custom:
        return generic
    return f"{custom} ({generic})"


def check_schema(
    doc: Any,
    schema: str,
    *,
    file: str,
    error: type[InputError],
    prefix: Sequence[str | int] = (),
    hint: str = "",
) -> None:
    """Validate ``doc`` against the named schema; raise ``error`` for the most relevant problem.

    ``schema`` is a file name (``workspace.json``) or a definition in one
    (``workspace.json#/definitions/sample``).
    ``prefix`` is prepended to the JSON path (for documents nested in others) and ``hint``
    appended to problems at the document root (e.g. "this looks like a patchset").
    """
    if is_valid(doc, schema):
        return
    found = best_match(_validator(schema).iter_errors(doc))
    if found is None:
        return
    problem = explain(found)
    if hint and not found.absolute_path:
        problem = f"{problem}; {hint}"
    raise error(problem, file=file, path=[*prefix, *found.absolute_path])
