"""Workspace surgery (hfpipe.spec combine/prune/rename/remove/sort, size and impact
pruning, patchset tools, ``hfpipe workspace`` and ``hfpipe patchset``): equal to pyhf
0.7.6 where pyhf has the operation (same JSON after sorting, same digest, same CLI
output), and the additions do what they promise."""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path

import pandas as pd
import pyhf
import pyhf.cli
import pytest
from click.testing import CliRunner

from hfpipe import spec
from hfpipe.cli import main
from hfpipe.errors import InputError, InvalidPatch, InvalidWorkspace

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "example"


@pytest.fixture
def example() -> dict:
    return spec.load_workspace(EXAMPLE / "BkgOnly.json")


def assert_same_as_pyhf(ours: dict, theirs: dict) -> None:
    """The same JSON after sorting (sort_workspace equals pyhf's sort: tested below) and
    the same digest (which sees the order of every list too) as pyhf's result."""
    mine = json.dumps(spec.sort_workspace(ours), sort_keys=True)
    assert mine == json.dumps(spec.sort_workspace(dict(theirs)), sort_keys=True)
    assert spec.workspace_digest(ours) == pyhf.utils.digest(theirs)


def _pyhf(ws: dict) -> pyhf.Workspace:
    """pyhf's Workspace of a workspace hfpipe validated (pyhf's schema check, 2 s on 1Lbb,
    runs on the results of pyhf's operations)."""
    return pyhf.Workspace(copy.deepcopy(ws), validate=False)


# ---------------------------------------------------------------------------------------
# pyhf's operations on the example


def test_sort_equals_pyhf(example):
    reordered = copy.deepcopy(example)
    reordered["channels"].reverse()
    for channel in reordered["channels"]:
        channel["samples"].reverse()
        for sample in channel["samples"]:
            sample["modifiers"].reverse()
    ours = spec.sort_workspace(reordered)
    theirs = pyhf.Workspace.sorted(_pyhf(reordered))
    assert json.dumps(ours) == json.dumps(dict(theirs))  # the same order, keys included
    assert_same_as_pyhf(ours, theirs)
    assert spec.workspace_digest(ours) == spec.workspace_digest(spec.sort_workspace(example))


PRUNES = [
    {"modifiers": ["jes"]},
    {"modifier_types": ["normsys"]},
    {"modifier_types": ["staterror", "histosys"]},
    {"samples": ["wjets"]},
    {"channels": ["CR"]},
    {"modifiers": ["mu_ttbar"], "samples": ["wjets"], "modifier_types": ["normsys"]},
]


@pytest.mark.parametrize("filters", PRUNES, ids=lambda f: "-".join(f))
def test_prune_equals_pyhf(example, filters):
    assert_same_as_pyhf(spec.prune_workspace(example, **filters), _pyhf(example).prune(**filters))


def test_prune_and_rename_refuse_unknown_names(example):
    with pytest.raises(InvalidWorkspace, match=r"no modifier 'jesx'.*did you mean 'jes'"):
        spec.prune_workspace(example, modifiers=["jesx"])
    with pytest.raises(InvalidWorkspace, match="no modifier type 'shapesys'"):
        spec.prune_workspace(example, modifier_types=["shapesys"])
    with pytest.raises(InvalidWorkspace, match="no channel 'VR'"):
        spec.rename_workspace(example, channels={"VR": "SR2"})


def test_rename_equals_pyhf(example):
    """On a signal point's workspace, so that renaming the POI's modifier renames the POI."""
    points = spec.load_patchset(EXAMPLE / "patchset.json")
    example = spec.apply_patches(example, [points["sig_300_100"]])
    renames = {
        "modifiers": {"jes": "JES", "mu_SIG": "mu"},
        "samples": {"ttbar": "top"},
        "channels": {"SR": "SR_mct2"},
        "measurements": {"NormalMeasurement": "meas"},
    }
    ours = spec.rename_workspace(example, **renames)
    assert ours["measurements"][0]["config"]["poi"] == "mu"
    assert ours["observations"][1]["name"] == "SR_mct2"
    assert_same_as_pyhf(ours, _pyhf(example).rename(**renames))


def test_rename_onto_a_used_name_is_one_line(example):
    with pytest.raises(InvalidWorkspace) as caught:
        spec.rename_workspace(example, channels={"CR": "SR"})
    assert str(caught.value) == (
        "<workspace>: channels[0].name: after renaming, channels 'CR' (channels[0]) and "
        "'SR' (channels[1]) would both be 'SR'"
    )


# ---------------------------------------------------------------------------------------
# combine: join modes on a case with clashes


def _sides(example) -> tuple[dict, dict]:
    """Left: the example. Right: the same CR, a new channel VR (the SR renamed), the same
    measurement with one more setting. Their SR/VR and CR have the same observations."""
    right = spec.rename_workspace(spec.prune_workspace(example, channels=["SR"]), modifiers={})
    vr = spec.rename_workspace(
        spec.prune_workspace(example, channels=["CR"]),
        channels={"SR": "VR"},
        modifiers={"staterror_SR": "staterror_VR"},
    )
    right["channels"].append(vr["channels"][0])
    right["observations"].append(vr["observations"][0])
    right["measurements"][0]["config"]["parameters"].append({"name": "xsec_wjets", "inits": [0.5]})
    spec.validate_workspace(right)
    return example, right


def _clashing(example) -> tuple[dict, dict]:
    """As _sides, but the right CR's jes is another systematic (jes_B): CR clashes."""
    left, right = _sides(example)
    for sample in right["channels"][0]["samples"]:
        for modifier in sample["modifiers"]:
            if modifier["name"] == "jes":
                modifier["name"] = "jes_B"
    return left, right


def _combine_both(left, right, join, merge):
    """(ours, pyhf's): a workspace or the exception type each raised."""
    results = []
    for combine in (
        lambda: spec.combine_workspaces(left, right, join=join, merge_channels=merge),
        lambda: pyhf.Workspace.combine(_pyhf(left), _pyhf(right), join=join, merge_channels=merge),
    ):
        try:
            results.append(combine())
        except (InvalidWorkspace, pyhf.exceptions.InvalidWorkspaceOperation) as error:
            results.append(type(error))
    return results


JOIN_MODES = [(join, False) for join in spec.JOINS] + [(join, True) for join in spec.JOINS[1:]]


@pytest.mark.parametrize("case", [_sides, _clashing], ids=["compatible", "clashing-CR"])
@pytest.mark.parametrize(
    ("join", "merge"), JOIN_MODES, ids=lambda v: {True: "merge", False: "plain"}.get(v, v)
)
def test_combine_join_modes_equal_pyhf(example, case, join, merge):
    left, right = case(example)
    ours, theirs = _combine_both(left, right, join, merge)
    if isinstance(theirs, type):
        assert ours is InvalidWorkspace, (join, merge)
        return
    assert_same_as_pyhf(ours, theirs)


def test_combine_merging_channels_needs_an_outer_join(example):
    with pytest.raises(ValueError, match="needs an outer join"):
        spec.combine_workspaces(example, example, merge_channels=True)


def test_combine_outcomes_of_the_clash_case(example):
    """What the joins do with the clashing CR: none and outer refuse, left (right) outer
    keep the left (right) CR, and merging adds nothing to CR (same sample names)."""
    left, right = _clashing(example)
    for join in ("none", "outer"):
        with pytest.raises(InvalidWorkspace):
            spec.combine_workspaces(left, right, join=join)
    kept = {
        join: spec.combine_workspaces(left, right, join=join)["channels"]
        for join in ("left outer", "right outer")
    }
    assert kept["left outer"][0] == left["channels"][0]
    assert kept["right outer"][0] == right["channels"][0]
    assert [c["name"] for c in kept["left outer"]] == ["CR", "SR", "VR"]
    assert [c["name"] for c in kept["right outer"]] == ["CR", "VR", "SR"]
    outer = spec.combine_workspaces(*_sides(example), join="outer")
    settings = outer["measurements"][0]["config"]["parameters"]
    assert [s["name"] for s in settings] == ["mu_SIG", "mu_ttbar", "xsec_wjets"]


def _one_line_error(left, right, **options) -> str:
    with pytest.raises(InvalidWorkspace) as caught:
        spec.combine_workspaces(left, right, left_name="A.json", right_name="B.json", **options)
    text = str(caught.value)
    assert "\n" not in text and "A.json" in text and "B.json" in text, text
    return text


def test_combine_clash_errors_name_both_sides(example):
    left, right = _clashing(example)
    text = _one_line_error(left, right)
    assert text.startswith("A.json: channels[0].name: channel 'CR' is also in B.json")
    text = _one_line_error(left, right, join="outer")
    assert "channel 'CR' differs from the one in B.json (channels[0])" in text
    assert "at samples[0].modifiers[2].name: jes here, jes_B there" in text
    poi = copy.deepcopy(_sides(example)[1])
    poi["measurements"][0]["config"]["poi"] = "mu_ttbar"
    assert "has POI 'mu_SIG' here but 'mu_ttbar' in B.json" in _one_line_error(
        left, poi, join="outer"
    )
    setting = copy.deepcopy(_sides(example)[1])
    setting["measurements"][0]["config"]["parameters"][1]["inits"] = [2.0]
    assert "sets parameter 'mu_ttbar' differently in B.json" in _one_line_error(
        left, setting, join="outer"
    )
    typed = spec.rename_workspace(
        _sides(example)[1], modifiers={"mu_ttbar": "mu_top", "xsec_wjets": "mu_ttbar"}
    )
    typed["measurements"][0]["config"]["parameters"].pop()
    text = _one_line_error(left, spec.prune_workspace(typed, channels=["CR"]), join="outer")
    assert "modifier 'mu_ttbar' is a normsys here but a normfactor in A.json" in text
    version = dict(_sides(example)[1], version="1.0.1")
    assert "schema version 1.0.0 here but 1.0.1 in B.json" in _one_line_error(
        left, version, join="outer"
    )


# ---------------------------------------------------------------------------------------
# AND semantics and remove


def _modifier_names(ws: dict) -> dict[tuple[str, str], list[str]]:
    return {
        (c["name"], s["name"]): [m["name"] for m in s["modifiers"]]
        for c in ws["channels"]
        for s in c["samples"]
    }


def test_prune_match_all_removes_only_the_intersection(example):
    before = _modifier_names(example)
    after = _modifier_names(
        spec.prune_workspace(example, modifier_types=["normsys"], samples=["ttbar"], match="all")
    )
    for key, names in before.items():
        expected = [n for n in names if n != "xsec_ttbar"] if key[1] == "ttbar" else names
        assert after[key] == expected, key
    # the same filters with pyhf's "any": all normsys and the whole ttbar sample go
    anything = spec.prune_workspace(example, modifier_types=["normsys"], samples=["ttbar"])
    assert set(_modifier_names(anything)) == {("CR", "wjets"), ("SR", "wjets")}
    assert "xsec_wjets" not in str(_modifier_names(anything))

    only_cr = _modifier_names(
        spec.prune_workspace(example, modifiers=["jes"], channels=["CR"], match="all")
    )
    assert all(("jes" in names) == (key[0] == "SR") for key, names in only_cr.items())
    samples = spec.prune_workspace(example, samples=["wjets"], channels=["SR"], match="all")
    assert [[s["name"] for s in c["samples"]] for c in samples["channels"]] == [
        ["ttbar", "wjets"],
        ["ttbar"],
    ]


def test_prune_match_all_drops_settings_of_vanished_parameters(example):
    pruned = spec.prune_workspace(example, modifiers=["mu_ttbar"], channels=["CR"], match="all")
    assert "mu_ttbar" in [s["name"] for s in pruned["measurements"][0]["config"]["parameters"]]
    gone = spec.prune_workspace(example, modifiers=["mu_ttbar"], samples=["ttbar"], match="all")
    assert [s["name"] for s in gone["measurements"][0]["config"]["parameters"]] == ["mu_SIG"]
    with pytest.raises(InvalidWorkspace, match="no modifier matches"):
        spec.prune_workspace(example, modifiers=["mu_ttbar"], samples=["wjets"], match="all")


def test_remove_changes_only_that_channel(example):
    original = copy.deepcopy(example)
    removed = spec.remove_modifiers(example, ["j?s"], channels=["SR"])
    assert example == original
    dump = json.dumps  # bit for bit: the JSON text of everything else is unchanged
    assert dump(removed["channels"][0]) == dump(example["channels"][0])
    for key in ("observations", "measurements", "version"):
        assert dump(removed[key]) == dump(example[key])
    for ours, theirs in zip(
        removed["channels"][1]["samples"], example["channels"][1]["samples"], strict=True
    ):
        expected = dict(theirs, modifiers=[m for m in theirs["modifiers"] if m["name"] != "jes"])
        assert dump(ours) == dump(expected)
    assert len(removed["channels"][1]["samples"][0]["modifiers"]) == 3


def test_remove_by_sample_and_type_and_its_errors(example):
    removed = spec.remove_modifiers(example, ["*"], samples=["wjets"], types=["normsys"])
    names = _modifier_names(removed)
    assert names[("SR", "wjets")] == ["jes", "staterror_SR"]
    assert names[("SR", "ttbar")] == _modifier_names(example)[("SR", "ttbar")]
    settings = removed["measurements"][0]["config"]["parameters"]
    assert settings == example["measurements"][0]["config"]["parameters"]
    with pytest.raises(InvalidWorkspace, match=r"no modifier matching 'xsec_t\*' among samples"):
        spec.remove_modifiers(example, ["xsec_t*"], samples=["wjets"])


# ---------------------------------------------------------------------------------------
# pruning by size and by impact


def _sized() -> dict:
    """One channel, three bins, every kind of small and large systematic."""
    nominal_a, nominal_b = [100.0, 50.0, 0.0], [10.0, 20.0, 5.0]
    a = [
        {"name": "mu", "type": "normfactor", "data": None},
        {"name": "tiny_norm", "type": "normsys", "data": {"hi": 1.0004, "lo": 0.9995}},
        {"name": "big_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
        {
            "name": "tiny_shape",  # below 1e-3 in every bin; the empty bin stays empty
            "type": "histosys",
            "data": {"hi_data": [100.05, 50.02, 0.0], "lo_data": [99.95, 49.99, 0.0]},
        },
        {
            "name": "one_bin_shape",  # large in bin 1 only: kept
            "type": "histosys",
            "data": {"hi_data": [100.0, 51.0, 0.0], "lo_data": [100.0, 50.0, 0.0]},
        },
        {"name": "stat", "type": "staterror", "data": [0.05, 2.0, 0.0]},
    ]
    b = [
        {"name": "tiny_norm", "type": "normsys", "data": {"hi": 1.01, "lo": 0.99}},
        {"name": "stat", "type": "staterror", "data": [0.05, 1.0, 0.5]},
        {"name": "mcstat_b", "type": "shapesys", "data": [0.001, 5.0, 0.01]},
        {"name": "mcstat_c", "type": "shapesys", "data": [0.001, 0.01, 0.0]},
    ]
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {"name": "a", "data": nominal_a, "modifiers": a},
                    {"name": "b", "data": nominal_b, "modifiers": b},
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [110.0, 70.0, 5.0]}],
        "measurements": [
            {
                "name": "m",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {"name": "tiny_shape", "inits": [0.0]},
                        {"name": "big_norm", "inits": [0.0]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }


def test_prune_by_size_removes_the_right_things_and_reports_them():
    ws = spec.load_workspace(_sized())
    original = copy.deepcopy(ws)
    pruned, report = spec.prune_by_size(ws, 1e-3)
    assert ws == original
    names = _modifier_names(pruned)
    assert names[("SR", "a")] == ["mu", "big_norm", "one_bin_shape", "stat"]
    assert names[("SR", "b")] == ["tiny_norm", "stat", "mcstat_b"]
    found = {(r.samples, r.modifier, r.type, r.bins) for r in report.removals}
    assert found == {
        (("a",), "tiny_norm", "normsys", ()),
        (("a",), "tiny_shape", "histosys", ()),
        # bin 0: sqrt(0.05² + 0.05²) / 110 = 6.4e-4; bins 1 and 2: 0.032 and 0.1
        (("a", "b"), "stat", "staterror", (0,)),
        (("b",), "mcstat_b", "shapesys", (0,)),  # 0.001/10; bins 1, 2: 0.25, 2e-3
        (("b",), "mcstat_c", "shapesys", ()),
    }
    by_name = {r.modifier: r for r in report.removals}
    assert math.isclose(by_name["tiny_norm"].effect, 5e-4)
    assert math.isclose(by_name["stat"].effect, math.sqrt(0.05**2 * 2) / 110)
    assert report.parameters == ("mcstat_c", "tiny_shape")
    assert report.counts() == {
        "histosys": 1,
        "normsys": 1,
        "shapesys": 1,
        "shapesys bins": 1,
        "staterror bins": 1,
    }
    assert report.summary() == (
        "removed 1 histosys, 1 normsys, 1 shapesys, 1 shapesys bins, 1 staterror bins; "
        "2 parameters gone"
    )
    samples = pruned["channels"][0]["samples"]
    assert samples[0]["modifiers"][3]["data"] == [0.0, 2.0, 0.0]
    assert samples[1]["modifiers"][1]["data"] == [0.0, 1.0, 0.5]
    assert samples[1]["modifiers"][2]["data"] == [0.0, 5.0, 0.01]
    assert [p["name"] for p in pruned["measurements"][0]["config"]["parameters"]] == ["big_norm"]
    assert len(report.records()) == len(report.removals)


def test_prune_by_size_types_and_stat_threshold():
    ws = spec.load_workspace(_sized())
    _, report = spec.prune_by_size(ws, 1e-3, types=["normsys"])
    assert {r.modifier for r in report.removals} == {"tiny_norm"}
    _, loose = spec.prune_by_size(ws, 1e-3, stat_threshold=1e-6)
    assert {r.type for r in loose.removals} == {"normsys", "histosys"}
    # all staterror bins below a loose threshold: the staterror goes from both samples
    pruned, everything = spec.prune_by_size(ws, 1e-3, stat_threshold=0.5, types=["staterror"])
    assert [r for r in everything.removals if r.bins] == []
    assert everything.counts() == {"staterror": 2}
    assert all("stat" not in names for names in _modifier_names(pruned).values())


@pytest.mark.slow
def test_prune_by_size_removes_the_stalling_gamma_of_3l(atlas):
    """3L-eRJR's shapesys with relative width 2.3e-6 (DESIGN.md §1) is pruned at 1e-3."""
    workspace, _ = atlas["atlas-3l-erjr"]
    _, report = spec.prune_by_size(workspace, 1e-3)
    shapesys = [r for r in report.removals if r.type == "shapesys"]
    assert [r.modifier for r in shapesys] == ["shape_mcstat_diboson3LISR_CRISR_obs_cuts"]
    assert shapesys[0].effect == pytest.approx(2.3e-6, rel=0.01)


def _ranking(rows: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "parameter": list(rows),
            "prefit_up": [2 * v for v in rows.values()],
            "prefit_down": [-2 * v for v in rows.values()],
            "postfit_up": list(rows.values()),
            "postfit_down": [-0.5 * v for v in rows.values()],
        }
    )


def test_prune_by_impact_with_a_hand_made_ranking(example):
    ranking = _ranking(
        {
            "jes": 0.05,
            "xsec_ttbar": 0.003,  # below 0.01 × 0.4: goes
            "xsec_wjets": math.nan,  # a failed fit: kept
            "mu_ttbar": 0.0001,  # free: kept
            "staterror_SR[0]": 0.001,
            "staterror_SR[1]": 0.002,
            "staterror_SR[2]": 0.0039,  # all three components below: goes
            "staterror_CR[0]": 0.0,  # one bin, so listed in full: goes
        }
    )
    pruned, report = spec.prune_by_impact(example, ranking, 0.4, 0.01)
    assert report.parameters == ("staterror_CR", "staterror_SR", "xsec_ttbar")
    names = {n for ms in _modifier_names(pruned).values() for n in ms}
    assert names == {"mu_ttbar", "jes", "xsec_wjets"}
    assert {r.effect for r in report.removals if r.modifier == "staterror_SR"} == {0.0039}
    partial = _ranking({"staterror_SR[0]": 0.0, "staterror_SR[1]": 0.0})
    assert spec.prune_by_impact(example, partial, 0.4, 0.01)[1].removals == ()
    with pytest.raises(InputError, match=r"<ranking>: rows\[1\]: parameter 'nope\[0\]' is not"):
        spec.prune_by_impact(example, _ranking({"jes": 1.0, "nope[0]": 0.0}), 0.4, 0.01)


# ---------------------------------------------------------------------------------------
# patchsets


@pytest.fixture
def patchset_document() -> dict:
    return spec.load_json(EXAMPLE / "patchset.json")


def test_patchset_extract_apply_equal_pyhf(example, patchset_document):
    theirs = pyhf.PatchSet(copy.deepcopy(patchset_document))
    patch = spec.extract_patch(patchset_document, "sig_500_200")
    assert json.dumps(patch, sort_keys=True) == json.dumps(
        theirs["sig_500_200"].patch, sort_keys=True
    )
    with_metadata = spec.extract_patch(patchset_document, "sig_500_200", with_metadata=True)
    pyhf_metadata = {**theirs["sig_500_200"].metadata, **theirs.metadata}
    # pyhf lets the patchset's metadata "name" replace the point's; the point's name wins here
    assert with_metadata["metadata"] == dict(pyhf_metadata, name="sig_500_200")
    points = spec.load_patchset(patchset_document)
    ours = spec.apply_patches(example, [points["sig_500_200"]])
    assert_same_as_pyhf(ours, theirs.apply(_pyhf(example), "sig_500_200"))
    with pytest.raises(InputError, match="did you mean sig_500_200"):
        spec.extract_patch(patchset_document, "sig_500_20")


def test_rebase_patchset_for_a_pruned_background(example, patchset_document):
    pruned, _ = spec.prune_by_size(example, 0.05)
    rebased = spec.rebase_patchset(patchset_document, pruned)
    spec.verify_patchset(spec.load_patchset(rebased), pruned)
    assert rebased["patches"] == patchset_document["patches"]
    assert patchset_document["metadata"]["digests"]["sha256"] == spec.workspace_digest(example)
    with pytest.raises(InvalidPatch, match="point sig_300_100"):
        spec.rebase_patchset(patchset_document, spec.prune_workspace(example, channels=["CR"]))


# ---------------------------------------------------------------------------------------
# the command line: byte for byte pyhf's output


def _run(cli, args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["prune", "{ws}", "-t", "normsys", "-c", "CR"],
        [
            "rename",
            "{ws}",
            "-m",
            "jes",
            "JES",
            "-c",
            "SR",
            "SR2",
            "--measurement",
            "NormalMeasurement",
            "m",
        ],
        ["sort", "{ws}"],
        ["digest", "{ws}", "-a", "sha256", "-a", "md5"],
        ["digest", "{ws}", "--json"],
        ["combine", "{ws}", "{ws}", "--join", "outer"],
        ["combine", "{ws}", "{ws}", "--join", "left outer", "--merge-channels"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_workspace_cli_prints_what_pyhf_prints(args):
    args = [str(EXAMPLE / "BkgOnly.json") if a == "{ws}" else a for a in args]
    assert _run(main, ["workspace", *args]) == _run(pyhf.cli.cli, args)


def test_patchset_cli_matches_pyhf(tmp_path):
    ws, ps = str(EXAMPLE / "BkgOnly.json"), str(EXAMPLE / "patchset.json")
    for args in (
        ["extract", ps, "--name", "sig_700_300"],
        ["apply", ws, ps, "--name", "sig_700_300"],
    ):
        assert _run(main, ["patchset", *args]) == _run(pyhf.cli.cli, ["patchset", *args])
    listed = _run(main, ["patchset", "inspect", ps]).splitlines()[4:]
    theirs = _run(pyhf.cli.cli, ["patchset", "inspect", ps]).split()[-6:]
    assert [line.split()[0] for line in listed] == theirs
    assert listed[0].split() == ["sig_300_100", "300", "100"]
    assert "All good" in _run(main, ["patchset", "verify", ws, ps])


def test_cli_writes_gzip_and_reports_pruning(tmp_path):
    ws = str(EXAMPLE / "BkgOnly.json")
    out, report = tmp_path / "pruned.json.gz", tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        [
            "workspace",
            "prune-size",
            ws,
            "--threshold",
            "0.05",
            "--report",
            str(report),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "removed 1 histosys, 2 staterror; 1 parameter gone" in result.stderr
    pruned = json.loads(gzip.decompress(out.read_bytes()))
    assert spec.workspace_digest(pruned) == spec.workspace_digest(
        spec.prune_by_size(spec.load_workspace(ws), 0.05)[0]
    )
    assert json.loads(report.read_text())["counts"] == {"histosys": 1, "staterror": 2}


def test_cli_clash_is_one_line_and_exit_2():
    ws = str(EXAMPLE / "BkgOnly.json")
    result = CliRunner().invoke(main, ["workspace", "combine", ws, ws])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"hfpipe: error: {ws}: channels[0].name: channel 'CR' is also in {ws}"
    )


# ---------------------------------------------------------------------------------------
# the ATLAS workspaces


@pytest.fixture(scope="module")
def atlas(shared_data):
    """Both ATLAS backgrounds, loaded once: (hfpipe dict, pyhf Workspace)."""
    cache = {}
    for name, file in (("atlas-1lbb", "BkgOnly.json.gz"), ("atlas-3l-erjr", "BkgOnly.json")):
        ws = spec.load_workspace(shared_data / name / file)
        cache[name] = (ws, _pyhf(ws))
    return cache


def _first(ws: dict, kind: str) -> str:
    names = {
        "channel": [c["name"] for c in ws["channels"]],
        "sample": [s["name"] for c in ws["channels"] for s in c["samples"]],
        "modifier": [
            m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]
        ],
    }
    return sorted(names[kind])[-1]


@pytest.mark.slow
@pytest.mark.parametrize("analysis", ["atlas-1lbb", "atlas-3l-erjr"])
def test_atlas_operations_equal_pyhf(atlas, analysis):
    ws, theirs = atlas[analysis]
    assert spec.workspace_digest(ws) == pyhf.utils.digest(theirs)
    ours, sorted_by_pyhf = spec.sort_workspace(ws), pyhf.Workspace.sorted(theirs)
    assert json.dumps(ours) == json.dumps(dict(sorted_by_pyhf))
    assert_same_as_pyhf(ours, sorted_by_pyhf)
    channel, sample, modifier = (_first(ws, kind) for kind in ("channel", "sample", "modifier"))
    for filters in (
        {"modifier_types": ["histosys"]},
        {"channels": [channel], "samples": [sample], "modifiers": [modifier]},
    ):
        assert_same_as_pyhf(spec.prune_workspace(ws, **filters), theirs.prune(**filters))
    renames = {"channels": {channel: "X"}, "samples": {sample: "Y"}, "modifiers": {modifier: "Z"}}
    assert_same_as_pyhf(spec.rename_workspace(ws, **renames), theirs.rename(**renames))


@pytest.mark.slow
def test_atlas_combinations_equal_pyhf(atlas):
    (one, one_pyhf), (three, three_pyhf) = atlas["atlas-1lbb"], atlas["atlas-3l-erjr"]
    assert_same_as_pyhf(
        spec.combine_workspaces(one, three), pyhf.Workspace.combine(one_pyhf, three_pyhf)
    )
    control = [c["name"] for c in one["channels"] if not c["name"].startswith("SR")]
    regions = spec.prune_workspace(one, channels=control)
    rest = spec.prune_workspace(
        one, channels=[c["name"] for c in one["channels"] if c["name"] not in control]
    )
    for join in ("outer", "left outer", "right outer"):
        ours = spec.combine_workspaces(regions, rest, join=join)
        theirs = pyhf.Workspace.combine(_pyhf(regions), _pyhf(rest), join=join)
        assert_same_as_pyhf(ours, theirs)
    assert spec.workspace_digest(spec.sort_workspace(ours)) == spec.workspace_digest(
        spec.sort_workspace(one)
    )


@pytest.mark.slow
def test_atlas_patch_apply_and_extract_equal_pyhf(atlas, shared_data):
    ws, theirs = atlas["atlas-3l-erjr"]
    document = spec.load_json(shared_data / "atlas-3l-erjr" / "patchset.json")
    patches = pyhf.PatchSet(copy.deepcopy(document))
    name = document["patches"][7]["metadata"]["name"]
    extracted = spec.extract_patch(document, name, with_metadata=True)
    assert extracted["metadata"] == {**patches[name].metadata, **patches.metadata}
    ours = spec.apply_patches(ws, [spec.load_patchset(document)[name]])
    assert_same_as_pyhf(ours, patches.apply(theirs, name))


@pytest.mark.slow
def test_1lbb_size_pruning_keeps_cls(atlas, shared_data):
    """At 0.1 %: the report lists what went, and CLs at three points move < 1e-3."""
    from hfpipe.scanning import scan

    ws, _ = atlas["atlas-1lbb"]
    pruned, report = spec.prune_by_size(ws, 1e-3)
    assert report.counts() == {"histosys": 4335, "normsys": 713}
    assert len(report.parameters) == 12 and "JES_BJES_Response" in report.parameters
    assert all(r.effect < 1e-3 for r in report.removals)
    document = spec.load_json(shared_data / "atlas-1lbb" / "patchset.json.gz")
    rebased = spec.load_patchset(spec.rebase_patchset(document, pruned))
    names = list(rebased.names)
    points = [names[0], names[len(names) // 2], names[-1]]
    columns = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
    full = scan(ws, spec.load_patchset(document), points=points).set_index("point")
    reduced = scan(pruned, rebased, points=points).set_index("point")
    assert (full["status"] == "ok").all() and (reduced["status"] == "ok").all()
    assert (reduced.loc[points, columns] - full.loc[points, columns]).abs().to_numpy().max() < 1e-3
