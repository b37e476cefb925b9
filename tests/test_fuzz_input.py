"""Fuzzing: random mutations of the example's workspace and signal patch through ``hfpipe cls``.

Whatever hypothesis does to the inputs (replace any node by another JSON value, delete
a key or an entry), ``hfpipe cls`` must end with a clean exit code (0, 2 for bad input,
3 for a failed fit), write at most one line per message on stderr, never show a
traceback or an internal error, and finish (bounded examples; a hang fails the run).
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfpipe.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
BKG: dict = json.loads((EXAMPLE / "BkgOnly.json").read_text())
SIGNAL: list = next(
    p["patch"]
    for p in json.loads((EXAMPLE / "patchset.json").read_text())["patches"]
    if p["metadata"]["name"] == "sig_400_100"
)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*prefix, index))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _all_paths(which: str, doc) -> list[tuple]:
    return [(which, path) for path in list(_paths(doc))[1:]]


def _node(doc, path):
    for part in path:
        doc = doc[part]
    return doc


NODES = _all_paths("ws", BKG) + _all_paths("patch", SIGNAL)
DOCS = {"ws": BKG, "patch": SIGNAL}
NUMBERS = [(which, path) for which, path in NODES if _is_number(_node(DOCS[which], path))]

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, 0.0, -1.0, 1e-300, 1e308, -1e308]),
)
scalars = st.one_of(numbers, st.text(max_size=8), st.none(), st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# numbers at numeric leaves keep the model's structure (and its compiled fits), so the
# fits themselves get fuzzed; any node may also be replaced by any JSON value or deleted
number_change = st.tuples(st.just("replace"), st.sampled_from(NUMBERS), numbers)
any_change = st.tuples(st.just("replace"), st.sampled_from(NODES), values)
deletion = st.tuples(st.just("delete"), st.sampled_from(NODES), st.none())
mutation = st.one_of(number_change, number_change, any_change, deletion)


def _mutate(docs: dict, action: str, node: tuple, value) -> None:
    which, path = node
    parent = _node(docs[which], path[:-1])
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


#: one run taking longer than this counts as a hang (the slowest seen take ~10 s, most
#: of it compiling the fits once)
_HANG_SECONDS = 180


class Hang(BaseException):
    """Raised into a run that exceeds its time (BaseException: the CLI must not catch it)."""


@contextlib.contextmanager
def _time_limit(seconds: int):
    def interrupt(signum, frame):
        raise Hang(f"hfpipe cls took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_inputs_never_crash(mutations):
    docs = {"ws": copy.deepcopy(BKG), "patch": copy.deepcopy(SIGNAL)}
    for action, node, value in mutations:
        # an earlier mutation may have removed or retyped this node
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _mutate(docs, action, node, value)
    with tempfile.TemporaryDirectory() as folder:
        ws, patch = Path(folder) / "ws.json", Path(folder) / "patch.json"
        ws.write_text(json.dumps(docs["ws"]))
        patch.write_text(json.dumps(docs["patch"]))
        with _time_limit(_HANG_SECONDS):
            result = CliRunner().invoke(main, ["cls", str(ws), "-p", str(patch)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2, 3), (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    for line in result.stderr.splitlines():
        assert line.startswith("hfpipe: "), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hfpipe: error:")]
    if result.exit_code == 2:
        assert len(errors) == 1 and errors[0].startswith(f"hfpipe: error: {folder}/"), errors
    else:
        assert not errors
        output = json.loads(result.stdout)
        assert set(output) >= {"CLs_obs", "CLs_exp"}
