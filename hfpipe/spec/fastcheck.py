"""A fast yes/no JSON-schema check, so that valid documents skip jsonschema's slow walk.

jsonschema spends about 3 s on the ATLAS 1Lbb background model (10k modifiers, 60k
numbers), and every patched workspace of a scan is validated again. This module compiles
the small subset of draft 7 that hfpipe's schemas use into nested Python closures that
only answer "valid or not" (about 30x faster). :func:`~hfpipe.spec.schema.check_schema`
trusts a "valid"; on "not valid" it runs jsonschema, which stays the authority for the
error. The closures may be stricter than jsonschema (then jsonschema simply finds
nothing), never looser: any keyword outside the subset makes :func:`compile_schema`
return None, and the schema is then always checked by jsonschema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urldefrag, urljoin

__all__ = ["compile_schema"]

Check = Callable[[Any], bool]

#: keywords that never affect validity
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "title", "description", "definitions", "default", "x-message", "x-noun"}
)


def _is_number(value: Any) -> bool:
    """JSON numbers as the parser makes them (stricter than jsonschema: no bool, no numpy)."""
    return type(value) is float or type(value) is int


_TYPES: dict[str, Callable[[Any], bool]] = {
    "number": _is_number,
    "integer": lambda v: type(v) is int,
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
    "boolean": lambda v: type(v) is bool,
}


class _Unsupported(Exception):
    """The schema uses a keyword outside the compiled subset."""


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(test(value) for test in checks)


def _simple_condition(condition: Any) -> Check | None:
    """``{"required": [k], "properties": {k: {"const"|"enum": strings}}}`` (a dispatch on
    a discriminating key such as a modifier's type) as a single dictionary lookup."""
    if not isinstance(condition, dict) or set(condition) != {"required", "properties"}:
        return None
    if not isinstance(condition["properties"], dict):
        return None
    (key, sub), *others = condition["properties"].items() or [(None, None)]
    if others or condition["required"] != [key] or not isinstance(sub, dict) or len(sub) != 1:
        return None
    allowed = [sub["const"]] if "const" in sub else sub.get("enum")
    if not isinstance(allowed, list) or not all(isinstance(item, str) for item in allowed):
        return None
    options = frozenset(allowed)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True  # required and properties ignore non-objects
        item = value.get(key, options)  # a missing key fails "required"
        return isinstance(item, str) and item in options

    return check


class _Compiler:
    def __init__(self, documents: Mapping[str, dict]):
        self.documents = documents
        self.compiled: dict[int, Check] = {}

    def resolve(self, ref: str, base: str) -> tuple[dict, str]:
        url, fragment = urldefrag(urljoin(base, ref))
        if url not in self.documents:
            raise _Unsupported(ref)
        node: Any = self.documents[url]
        for part in filter(None, fragment.split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, url

    def compile(self, schema: Any, base: str) -> Check:
        if schema is True:
            return lambda value: True
        if schema is False:
            return lambda value: False
        if not isinstance(schema, dict):
            raise _Unsupported(schema)
        key = id(schema)
        if key not in self.compiled:
            # placeholder first, so a recursive schema refers to its own (finished) check
            cell: list[Check] = []
            self.compiled[key] = lambda value: cell[0](value)
            cell.append(self._build(schema, base))
            self.compiled[key] = cell[0]
        return self.compiled[key]

    def _build(self, schema: dict, base: str) -> Check:
        if "$ref" in schema:  # draft 7: siblings of $ref are ignored
            target, url = self.resolve(schema["$ref"], base)
            return self.compile(target, url)
        if urljoin(base, schema.get("$id", "")) != base:
            raise _Unsupported("$id inside a document")  # it would change the base URI
        # "then" and "else" are read by "if"
        skip = _ANNOTATIONS | {"then", "else"}
        keywords = {key: value for key, value in schema.items() if key not in skip}
        checks: list[Check] = []
        if keywords.get("type") == "object" and "properties" in keywords:
            checks.append(self._object(keywords, base))
        for keyword, value in keywords.items():
            builder = getattr(self, "_kw_" + keyword, None)
            if builder is None:
                raise _Unsupported(keyword)
            checks.append(builder(value, schema, base))
        return _all(checks)

    def _object(self, keywords: dict, base: str) -> Check:
        """type object + required + properties + additionalProperties as one function (a
        workspace has tens of thousands of such objects); removes them from ``keywords``."""
        del keywords["type"]
        required = tuple(keywords.pop("required", ()))
        props = tuple(
            (name, self.compile(sub, base)) for name, sub in keywords.pop("properties").items()
        )
        known = frozenset(name for name, _ in props)
        extra = keywords.pop("additionalProperties", True)
        closed = extra is False
        extra_check = None if extra is True or closed else self.compile(extra, base)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            for name in required:
                if name not in value:
                    return False
            if closed:
                for name in value:
                    if name not in known:
                        return False
            elif extra_check is not None:
                for name, item in value.items():
                    if name not in known and not extra_check(item):
                        return False
            return all(test(value[name]) for name, test in props if name in value)

        return check

    def _kw_type(self, expected: Any, schema: dict, base: str) -> Check:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not all(name in _TYPES for name in names):
            raise _Unsupported(f"type {expected}")
        tests = [_TYPES[name] for name in names]
        return lambda value: any(test(value) for test in tests)

    def _kw_required(self, keys: list, schema: dict, base: str) -> Check:
        return lambda value: not isinstance(value, dict) or all(key in value for key in keys)

    def _kw_properties(self, props: dict, schema: dict, base: str) -> Check:
        checks = {name: self.compile(sub, base) for name, sub in props.items()}

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(test(value[name]) for name, test in checks.items() if name in value)

        return check

    def _kw_additionalProperties(self, extra: Any, schema: dict, base: str) -> Check:
        if "patternProperties" in schema:
            raise _Unsupported("patternProperties")
        known = frozenset(schema.get("properties", ()))
        test = self.compile(extra, base)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(test(item) for name, item in value.items() if name not in known)

        return check

    def _kw_items(self, items: Any, schema: dict, base: str) -> Check:
        if isinstance(items, list):
            raise _Unsupported("items as an array")
        if items == {"type": "number"}:
            return lambda value: not isinstance(value, list) or all(map(_is_number, value))
        test = self.compile(items, base)
        return lambda value: not isinstance(value, list) or all(map(test, value))

    def _kw_minItems(self, limit: int, schema: dict, base: str) -> Check:
        return lambda value: not isinstance(value, list) or len(value) >= limit

    def _kw_maxItems(self, limit: int, schema: dict, base: str) -> Check:
        return lambda value: not isinstance(value, list) or len(value) <= limit

    def _kw_minLength(self, limit: int, schema: dict, base: str) -> Check:
        return lambda value: not isinstance(value, str) or len(value) >= limit

    def _kw_minProperties(self, limit: int, schema: dict, base: str) -> Check:
        return lambda value: not isinstance(value, dict) or len(value) >= limit

    def _kw_pattern(self, pattern: str, schema: dict, base: str) -> Check:
        search = re.compile(pattern).search
        return lambda value: not isinstance(value, str) or search(value) is not None

    def _kw_enum(self, options: list, schema: dict, base: str) -> Check:
        if not all(isinstance(option, str) for option in options):
            raise _Unsupported("enum of non-strings")
        allowed = frozenset(options)
        return lambda value: isinstance(value, str) and value in allowed

    def _kw_const(self, expected: Any, schema: dict, base: str) -> Check:
        if not isinstance(expected, str):
            raise _Unsupported("const of a non-string")
        return lambda value: isinstance(value, str) and value == expected

    def _kw_allOf(self, subschemas: list, schema: dict, base: str) -> Check:
        checks = [self.compile(sub, base) for sub in subschemas]
        return lambda value: all(check(value) for check in checks)

    def _kw_if(self, condition: Any, schema: dict, base: str) -> Check:
        test = _simple_condition(condition) or self.compile(condition, base)
        then = self.compile(schema.get("then", True), base)
        otherwise = self.compile(schema.get("else", True), base)
        return lambda value: then(value) if test(value) else otherwise(value)


def compile_schema(schema: dict, documents: Mapping[str, dict]) -> Check | None:
    """A function ``doc -> bool`` that is True only for documents valid under ``schema``.

    ``documents`` maps each schema's ``$id`` to the schema, for ``$ref`` across files.
    Returns None when the schema uses a keyword this compiler does not implement.
    """
    try:
        return _Compiler(documents).compile(schema, schema.get("$id", ""))
    except _Unsupported:
        return None
