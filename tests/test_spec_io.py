"""hfpipe.spec.io: load_json reads plain and gzipped JSON (by content) and turns every way a
file can be broken into one line naming the file and, where known, the JSON path.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hfpipe.errors import InputError
from hfpipe.spec import load_json
from hfpipe.spec.io import _may_overflow


def test_load_json_plain_and_gzip(tmp_path: Path):
    doc = {"a": [1, 2.5, "x"]}
    plain = tmp_path / "doc.json"
    plain.write_text(json.dumps(doc))
    assert load_json(plain) == doc
    assert load_json(str(plain)) == doc
    hidden_gzip = tmp_path / "really-gzip.json"  # detected by content, not suffix
    hidden_gzip.write_bytes(gzip.compress(json.dumps(doc).encode()))
    assert load_json(hidden_gzip) == doc


@pytest.mark.parametrize(
    ("content", "phrase", "path"),
    [
        pytest.param(None, "no such file", "", id="missing"),
        pytest.param(b"", "the file is empty", "", id="empty"),
        pytest.param(
            b'{\n  "a": [1, 2,]\n}',
            "invalid JSON: Expecting value at line 2, column 14",
            "",
            id="syntax",
        ),
        pytest.param(b'{"a": {"b": [1, NaN]}}', "NaN is not valid JSON", "a.b[1]", id="nan"),
        pytest.param(b"[-Infinity]", "-Infinity is not valid JSON", "[0]", id="infinity"),
        pytest.param(b"\x1f\x8b\x08\x00garbage", "corrupt gzip data", "", id="bad-gzip"),
        pytest.param(b'{"a": "\xff"}', "not UTF-8 text", "", id="binary"),
    ],
)
def test_load_json_errors(tmp_path: Path, content, phrase, path):
    target = tmp_path / "in.json"
    if content is not None:
        target.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_json(target)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{target}: "), text
    assert phrase in text
    assert info.value.path == path


@pytest.mark.parametrize("literal", ["1e999", "-1E+0400", "9" * 310 + ".0"])
def test_numbers_that_overflow_a_double_are_refused_with_their_path(tmp_path, literal):
    path = tmp_path / "doc.json"
    path.write_text('{"a": [1.5, {"b": ' + literal + '}], "c": 1e-999}')
    with pytest.raises(InputError, match="not a finite number") as refused:
        load_json(path)
    assert refused.value.path == ["a", 1, "b"] or "a[1].b" in str(refused.value)


def test_large_but_finite_numbers_parse_as_before(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"a": [1e308, 1e-400, 123e100, 12345678901234567890]}')
    assert load_json(path) == {"a": [1e308, 0.0, 123e100, 12345678901234567890]}


def test_only_a_number_that_may_overflow_turns_on_the_careful_parse():
    """The careful parse checks every float (twice json's time): digests holding
    ``e921`` and large exponents in strings do not turn it on without need, but an
    overflowing number next to them is still refused."""
    digest = b'{"digest": "2563672e1a165384faf49f1431e921d88c9c07ec", "v": [1e308, 2E-999]}'
    assert not _may_overflow(digest)
    assert _may_overflow(digest.replace(b"1e308", b"1e309"))
    assert _may_overflow(b'{"a": "' + b"7" * 309 + b'"}')  # a long digit run: at once


def test_overflow_next_to_a_digest_is_refused(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"digest": "ab31e921d88", "v": [1.0, 1E+0999]}')
    with pytest.raises(InputError, match="not a finite number") as refused:
        load_json(path)
    assert refused.value.path == ["v", 1] or "v[1]" in str(refused.value)
