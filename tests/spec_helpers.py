"""Shared by the tests of hfpipe.spec (tests/test_spec_*.py): a small workspace using every
modifier type but shapefactor (valid for pyhf too), mutations of JSON documents, the check
of one-line errors, a signal patch and a patchset made for the workspace.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from hfpipe.errors import InvalidWorkspace
from hfpipe.spec import load_workspace, validate_workspace, workspace_digest

# a small workspace using every modifier type but shapefactor, valid for pyhf too

BASE: dict = {
    "channels": [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "signal",
                    "data": [5.0, 3.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
                {
                    "name": "bkg",
                    "data": [50.0, 30.0],
                    "modifiers": [
                        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        {
                            "name": "bkg_norm",
                            "type": "histosys",
                            "data": {"hi_data": [52.0, 31.0], "lo_data": [48.0, 29.0]},
                        },
                        {"name": "stat_SR", "type": "staterror", "data": [2.0, 1.5]},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
            ],
        },
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [100.0],
                    "modifiers": [
                        {"name": "uncorr", "type": "shapesys", "data": [5.0]},
                        {"name": "mu_bkg", "type": "normfactor", "data": None},
                    ],
                }
            ],
        },
    ],
    "observations": [{"name": "SR", "data": [53, 35]}, {"name": "CR", "data": [98]}],
    "measurements": [
        {
            "name": "meas",
            "config": {
                "poi": "mu",
                "parameters": [
                    {
                        "name": "lumi",
                        "auxdata": [1.0],
                        "sigmas": [0.02],
                        "bounds": [[0.5, 1.5]],
                        "inits": [1.0],
                    },
                    {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                ],
            },
        }
    ],
    "version": "1.0.0",
}

SR_BKG = ["channels", 0, "samples", 1]
MEAS = ["measurements", 0, "config"]


def base() -> dict:
    return copy.deepcopy(BASE)


def _walk_to(doc, path):
    for part in path[:-1]:
        doc = doc[part]
    return doc, path[-1]


def setp(path: list, value) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        parent, key = _walk_to(ws, path)
        parent[key] = value

    return mutate


def delp(path: list) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        parent, key = _walk_to(ws, path)
        del parent[key]

    return mutate


def appendp(path: list, value) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        parent, key = _walk_to(ws, path)
        parent[key].append(copy.deepcopy(value))

    return mutate


def both(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        for mutation in mutations:
            mutation(ws)

    return mutate


def assert_one_line(err: Exception, file: str, path: str, phrase: str) -> None:
    text = str(err)
    assert "\n" not in text, text
    assert text.startswith(f"{file}: "), text
    assert f": {path}: " in text, text
    assert phrase in text, text
    assert err.path == path


def assert_malformed(
    mutate: Callable[[dict], None], path: str, phrase: str, *, strict: bool = False
) -> None:
    """BASE changed by ``mutate`` is refused with one line naming ws.json, ``path`` and
    ``phrase``: by loading it, or with ``strict`` by the strict check."""
    ws = base()
    mutate(ws)
    with pytest.raises(InvalidWorkspace) as info:
        if strict:
            validate_workspace(ws, file="ws.json", strict=True)
        else:
            load_workspace(ws, name="ws.json")
    assert_one_line(info.value, "ws.json", path, phrase)


# a signal patch and a patchset of three points made for BASE

ADD_SIGNAL = [
    {
        "op": "add",
        "path": "/channels/1/samples/-",
        "value": {
            "name": "signal",
            "data": [2.0],
            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
        },
    },
]


def patchset_doc() -> dict:
    def point(name: str, values: list) -> dict:
        return {"metadata": {"name": name, "values": values}, "patch": copy.deepcopy(ADD_SIGNAL)}

    return {
        "metadata": {
            "description": "toy signal grid",
            "digests": {"sha256": workspace_digest(BASE)},
            "labels": ["m1", "m2"],
            "references": {"hepdata": "ins0000000"},
        },
        "patches": [
            point("p_100_0", [100, 0]),
            point("p_200_0", [200, 0]),
            point("p_200_50", [200, 50]),
        ],
        "version": "1.0.0",
    }
