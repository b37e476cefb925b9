"""What pyhf 0.7.6 accepts, hfpipe accepts and computes the same, with a SpecWarning.

Each case changes the bundled example (its background and the signal of one point) in a
way pyhf silently ignores or overwrites; pyhf's CLs (computed here, with its scipy
optimiser run to a tight tolerance) and hfpipe's must agree, hfpipe must say what it
ignored (file, JSON path, what), and ``hfpipe cls --strict`` must refuse the input with
that text. The slow test at the end scans the published ATLAS sbottom likelihood, whose
patches remove a validation channel and leave its observation.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import jsonpatch
import numpy as np
import pytest
from click.testing import CliRunner

from hfpipe import spec
from hfpipe.cli import main
from hfpipe.errors import InvalidWorkspace
from hfpipe.infer import hypotest
from hfpipe.model import compile_model
from hfpipe.scanning import scan
from hfpipe.spec import SpecWarning

pyhf = pytest.importorskip("pyhf")

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "example"
BKG: dict = json.loads((EXAMPLE / "BkgOnly.json").read_text())
PATCHSET: dict = json.loads((EXAMPLE / "patchset.json").read_text())
SIGNAL: list = PATCHSET["patches"][1]["patch"]  # sig_400_100
SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
SR = ["channels", 1]
SR_WJETS = [*SR, "samples", 1]
MEAS = ["measurements", 0, "config"]


def signal_workspace() -> dict:
    """The example's background with the signal of point sig_400_100."""
    return jsonpatch.apply_patch(copy.deepcopy(BKG), copy.deepcopy(SIGNAL))


@pytest.fixture
def tight_pyhf():
    """pyhf's numpy backend with its scipy optimiser run to tolerance 1e-10 (its default
    tolerance leaves the CLs ~1e-4 off), the previous backend restored afterwards."""
    before = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    yield
    pyhf.set_backend(*before)


def pyhf_cls(workspace: dict, measurement: str | None = None) -> np.ndarray:
    """pyhf's CLs_obs and expected band (q~mu, mu = 1, normsys code4, histosys code4p)."""
    ws = pyhf.Workspace(copy.deepcopy(workspace))
    model = ws.model(measurement_name=measurement, modifier_settings=SETTINGS)
    observed, expected = pyhf.infer.hypotest(
        1.0, ws.data(model), model, test_stat="qtilde", return_expected_set=True
    )
    return np.array([float(observed), *map(float, expected)])


def hfpipe_cls(workspace: dict, **options) -> tuple[np.ndarray, list[str]]:
    """hfpipe's CLs_obs and expected band, and the SpecWarnings raised on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = hypotest(compile_model(workspace, file="ws.json", **options), 1.0)
    messages = [str(w.message) for w in caught if issubclass(w.category, SpecWarning)]
    return np.array([result.cls_obs[0], *result.cls_exp[0]]), messages


# ---------------------------------------------------------------------------------------
# the cases: a change of the signal workspace, and the warning hfpipe gives


def at(doc: dict, path: list):
    for part in path:
        doc = doc[part]
    return doc


def append(path: list, value) -> Callable[[dict], None]:
    return lambda ws: at(ws, path).append(copy.deepcopy(value))


def insert(path: list, index: int, value) -> Callable[[dict], None]:
    return lambda ws: at(ws, path).insert(index, copy.deepcopy(value))


def set_at(path: list, value) -> Callable[[dict], None]:
    return lambda ws: at(ws, path[:-1]).__setitem__(path[-1], copy.deepcopy(value))


def setting(value: dict) -> Callable[[dict], None]:
    """Replace (or add) the measurement's setting of one parameter."""

    def mutate(ws: dict) -> None:
        parameters = at(ws, [*MEAS, "parameters"])
        parameters[:] = [p for p in parameters if p["name"] != value["name"]] + [value]

    return mutate


def doubled_wjets(ws: dict) -> None:
    """A second 'wjets' in SR with twice the yields (and its own modifiers)."""
    sample = copy.deepcopy(at(ws, SR_WJETS))
    sample["data"] = [2 * x for x in sample["data"]]
    for modifier in sample["modifiers"]:
        if modifier["type"] == "histosys":
            modifier["data"] = {
                "hi_data": [1.05 * x for x in sample["data"]],
                "lo_data": [0.95 * x for x in sample["data"]],
            }
    at(ws, [*SR, "samples"]).append(sample)


def split_signal_region(ws: dict) -> None:
    """SR's signal moved into a second channel named SR: pyhf joins them again."""
    samples = at(ws, [*SR, "samples"])
    signal = next(s for s in samples if s["name"] == "signal")
    samples.remove(signal)
    ws["channels"].append({"name": "SR", "samples": [signal]})


def second_measurement(config: dict, name: str = "Other") -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        ws["measurements"].append({"name": name, "config": copy.deepcopy(config)})

    return mutate


def shared_shapefactor(ws: dict) -> None:
    """A shapefactor on ttbar in SR (3 bins) and in a one-bin channel 'VR' after it by
    name: bin 0 of VR shares SR's first component, as pyhf builds it."""
    for sample in at(ws, [*SR, "samples"]):
        if sample["name"] == "ttbar":
            sample["modifiers"].append({"name": "sf", "type": "shapefactor", "data": None})
    ws["channels"].append(
        {
            "name": "VR",
            "samples": [
                {
                    "name": "ttbar",
                    "data": [20.0],
                    "modifiers": [{"name": "sf", "type": "shapefactor", "data": None}],
                }
            ],
        }
    )
    ws["observations"].append({"name": "VR", "data": [23.0]})


def lumi_without_sigmas(ws: dict) -> None:
    """A lumi modifier on every sample, set up by the measurement but for its width."""
    for channel in ws["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"].append({"name": "lumi", "type": "lumi", "data": None})
    lumi = {"name": "lumi", "auxdata": [1.0], "inits": [1.0], "bounds": [[0.5, 1.5]]}
    at(ws, [*MEAS, "parameters"]).append(lumi)


def renamed_modifier(old: str, new: str) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        for channel in ws["channels"]:
            for sample in channel["samples"]:
                for modifier in sample["modifiers"]:
                    if modifier["name"] == old:
                        modifier["name"] = new

    return mutate


NORMSYS = {"name": "xsec_wjets", "type": "normsys", "data": {"hi": 1.3, "lo": 0.7}}
HISTOSYS = {
    "name": "jes",
    "type": "histosys",
    "data": {"hi_data": [5.9, 3.3, 1.3], "lo_data": [4.5, 2.5, 0.9]},
}
NORMFACTOR = {"name": "k", "type": "normfactor", "data": None}
STATERROR = {"name": "staterror_SR", "type": "staterror", "data": [2.0, 2.0, 2.0]}
REPEATED = "is ignored: modifiers[{}] repeats it, and pyhf keeps the last"

#: id -> (change, JSON path of the warning, phrase of the warning)
CASES = {
    "observation-of-unknown-channel": (
        append(["observations"], {"name": "VR", "data": [-3.0, 7.0]}),
        "observations[2].name",
        "observation of channel 'VR' is ignored: the model has no such channel",
    ),
    "observation-repeated": (
        append(["observations"], {"name": "SR", "data": [10.0, 5.0, 2.0]}),
        "observations[1].name",
        "observation of channel 'SR' is ignored: observations[2] is a later one",
    ),
    "observation-repeated-first-of-wrong-length": (
        insert(["observations"], 0, {"name": "SR", "data": [10.0]}),
        "observations[0].name",
        "observation of channel 'SR' is ignored: observations[2] is a later one",
    ),
    "normsys-repeated": (
        append([*SR_WJETS, "modifiers"], NORMSYS),
        "channels[1].samples[1].modifiers[0].name",
        "normsys modifier 'xsec_wjets' of sample 'wjets' " + REPEATED.format(3),
    ),
    "histosys-repeated": (
        append([*SR_WJETS, "modifiers"], HISTOSYS),
        "channels[1].samples[1].modifiers[1].name",
        "histosys modifier 'jes' of sample 'wjets' " + REPEATED.format(3),
    ),
    "staterror-repeated-first-of-wrong-length": (
        insert([*SR_WJETS, "modifiers"], 0, {**STATERROR, "data": [1.0]}),
        "channels[1].samples[1].modifiers[0].name",
        "staterror modifier 'staterror_SR' of sample 'wjets' " + REPEATED.format(3),
    ),
    "normfactor-repeated": (
        lambda ws: at(ws, [*SR_WJETS, "modifiers"]).extend([NORMFACTOR, NORMFACTOR]),
        "channels[1].samples[1].modifiers[3].name",
        "normfactor modifier 'k' of sample 'wjets' " + REPEATED.format(4),
    ),
    "sample-repeated": (
        doubled_wjets,
        "channels[1].samples[1].name",
        "sample 'wjets' of channel 'SR' is ignored: channels[1].samples[3] has the same name",
    ),
    "channel-name-repeated": (
        split_signal_region,
        "channels[2].name",
        "a second channel named 'SR' (first: channels[1]); pyhf joins their samples",
    ),
    "measurement-name-repeated": (
        second_measurement({"poi": "mu_SIG", "parameters": []}, name="NormalMeasurement"),
        "measurements[1].name",
        "a second measurement named 'NormalMeasurement' (first: measurements[0]) is never used",
    ),
    "measurement-unused-and-broken": (
        second_measurement(
            {"poi": "mu_SIG", "parameters": [{"name": "mu_SIG", "bounds": [[5, 1]]}]}
        ),
        "measurements[1].config.parameters[0].bounds[0]",
        "lower bound 5 is not below upper bound 1; measurement 'Other' cannot be used",
    ),
    "setting-of-unknown-parameter-never-read": (
        setting({"name": "nope", "bounds": [[3.0, 1.0], [1.0]], "inits": [9.0]}),
        "measurements[0].config.parameters[2].name",
        "no modifier named 'nope' in the model; setting ignored",
    ),
    "bound-of-three-numbers": (
        setting({"name": "mu_ttbar", "bounds": [[0.0, 5.0, 7.0]], "inits": [1.0]}),
        "measurements[0].config.parameters[1].bounds[0]",
        "a bound of 3 numbers; pyhf's fit reads the first two as [low, high]",
    ),
    "lumi-without-sigmas": (
        lumi_without_sigmas,
        "measurements[0].config.parameters[2]",
        "lumi has no sigmas: pyhf gives its constraint a width of 1",
    ),
    "empty-channel-name": (
        lambda ws: [set_at([*SR, "name"], "")(ws), set_at(["observations", 1, "name"], "")(ws)],
        "channels[1].name",
        "empty channel name (pyhf accepts it)",
    ),
    "empty-sample-name": (
        set_at([*SR_WJETS, "name"], ""),
        "channels[1].samples[1].name",
        "empty sample name (pyhf accepts it)",
    ),
    "empty-modifier-name": (
        renamed_modifier("jes", ""),
        "channels[0].samples[0].modifiers[2].name",
        "empty modifier name (pyhf accepts it)",
    ),
}


def changed(case: str) -> dict:
    ws = signal_workspace()
    CASES[case][0](ws)
    return ws


#: cases whose models pyhf and hfpipe compile anew (tens of seconds each): full suite only
SLOW_CASES = {"empty-channel-name", "lumi-without-sigmas", "normfactor-repeated"}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow if c in SLOW_CASES else ()) for c in CASES]
)
def test_pyhf_and_hfpipe_agree_and_hfpipe_warns(case, tight_pyhf):
    ws = changed(case)
    ours, messages = hfpipe_cls(ws)
    np.testing.assert_allclose(ours, pyhf_cls(ws), rtol=1e-4)
    _, path, phrase = CASES[case]
    assert any(m.startswith(f"ws.json: {path}: ") and phrase in m for m in messages), messages


@pytest.mark.parametrize("case", list(CASES))
def test_strict_refuses_what_pyhf_ignores(case, tmp_path):
    (tmp_path / "ws.json").write_text(json.dumps(changed(case)))
    runner = CliRunner()
    result = runner.invoke(main, ["cls", str(tmp_path / "ws.json"), "--strict"])
    assert result.exit_code == 2, result.output
    _, path, phrase = CASES[case]
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"hfpipe: error: {tmp_path / 'ws.json'}: {path}: "), lines
    assert phrase in lines[0], lines


def test_without_strict_the_cli_warns_in_one_line(tmp_path):
    (tmp_path / "ws.json").write_text(json.dumps(changed("observation-repeated")))
    result = CliRunner().invoke(main, ["cls", str(tmp_path / "ws.json")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["CLs_obs"] > 0
    assert result.stderr.strip().splitlines() == [
        f"hfpipe: warning: {tmp_path / 'ws.json'}: observations[1].name: observation of "
        "channel 'SR' is ignored: observations[2] is a later one for that channel, and pyhf "
        "keeps the last"
    ]


# ---------------------------------------------------------------------------------------
# what pyhf computes without a word, and what it refuses


def reversed_order(ws: dict) -> None:
    """Channels, samples, modifiers and observations in the opposite order."""
    ws["channels"].reverse()
    ws["observations"].reverse()
    for channel in ws["channels"]:
        channel["samples"].reverse()
        for sample in channel["samples"]:
            sample["modifiers"].reverse()


def without_settings(ws: dict) -> None:
    """An empty ``parameters`` list: pyhf's defaults for everything."""
    at(ws, MEAS)["parameters"] = []


def fixed_nuisance(ws: dict) -> None:
    at(ws, [*MEAS, "parameters"]).append({"name": "jes", "fixed": True})


SILENT = {"order": reversed_order, "no-settings": without_settings, "fixed": fixed_nuisance}


@pytest.mark.parametrize("case", list(SILENT))
def test_what_pyhf_takes_without_a_word_needs_no_warning(case, tight_pyhf):
    ws = signal_workspace()
    SILENT[case](ws)
    ours, messages = hfpipe_cls(ws)
    np.testing.assert_allclose(ours, pyhf_cls(ws), rtol=1e-4)
    assert messages == []


@pytest.mark.parametrize(
    "case", ["sample-repeated", "channel-name-repeated", "normsys-repeated", "observation-repeated"]
)
def test_an_hs3_export_holds_what_pyhf_keeps(case):
    """The HS3 document describes pyhf's model, not the ignored items: converted back, it
    gives the CLs of the original, without a warning."""
    ws = changed(case)
    with pytest.warns(SpecWarning):
        document = spec.to_hs3(spec.load_workspace(ws))
    ours, _ = hfpipe_cls(ws)
    back, messages = hfpipe_cls(spec.from_hs3(document))
    np.testing.assert_allclose(back, ours, rtol=1e-9)
    assert messages == []


def test_patchset_metadata_pyhf_allows():
    """pyhf's patchset schema allows any further keys in the metadata of the patchset and
    of each patch."""
    patchset = copy.deepcopy(PATCHSET)
    patchset["metadata"]["generator"] = {"tool": "custom", "version": [1, 2]}
    patchset["patches"][0]["metadata"]["cross_section_pb"] = 0.12
    pyhf.PatchSet(copy.deepcopy(patchset))
    assert spec.load_patchset(patchset).names == tuple(
        p["metadata"]["name"] for p in PATCHSET["patches"]
    )


def test_equal_bounds_hold_a_nuisance_parameter(tight_pyhf):
    """pyhf's fit holds a parameter whose bounds are equal; hfpipe fixes it there."""
    ws = signal_workspace()
    setting({"name": "mu_ttbar", "bounds": [[1.2, 1.2]], "inits": [1.2]})(ws)
    ours, messages = hfpipe_cls(ws)
    np.testing.assert_allclose(ours, pyhf_cls(ws), rtol=1e-4)
    assert messages == []
    model = compile_model(ws)
    index = model.structure.parameter_names.index("mu_ttbar")
    assert model.numbers.fixed[index] and model.numbers.init[index] == 1.2


def test_equal_bounds_of_the_poi_are_refused():
    """pyhf's fit fails on them (a POI with no room)."""
    ws = signal_workspace()
    setting({"name": "mu_SIG", "bounds": [[1.0, 1.0]], "inits": [1.0]})(ws)
    with pytest.raises(InvalidWorkspace, match=r"parameters\[1\]\.bounds\[0\]: lower bound 1\.0"):
        spec.load_workspace(ws)


@pytest.mark.slow
def test_a_shapefactor_shared_by_channels_of_different_sizes(tight_pyhf):
    """pyhf gives it one component per bin of its first channel by name, and bin i of
    every channel takes component i; with that channel the largest, both agree."""
    ws = signal_workspace()
    shared_shapefactor(ws)
    ours, messages = hfpipe_cls(ws)
    np.testing.assert_allclose(ours, pyhf_cls(ws), rtol=1e-4)
    assert messages == []
    names = compile_model(ws).structure.parameter_names
    assert [n for n in names if n.startswith("sf")] == ["sf[0]", "sf[1]", "sf[2]"]


def test_a_shapefactor_whose_first_channel_is_smaller_is_refused():
    """Where a later channel has more bins, pyhf runs out of components and multiplies
    the rest by an unrelated parameter: refused."""
    ws = signal_workspace()
    shared_shapefactor(ws)
    ws["channels"][2]["name"] = ws["observations"][2]["name"] = "AR"
    with pytest.raises(InvalidWorkspace, match="one per bin of channel 'AR'"):
        spec.load_workspace(ws)


def test_a_repeated_shapesys_is_refused_as_pyhf_refuses_it():
    ws = signal_workspace()
    shapesys = {"name": "ss", "type": "shapesys", "data": [0.5, 0.5, 0.5]}
    at(ws, [*SR_WJETS, "modifiers"]).extend([shapesys, shapesys])
    with pytest.raises(InvalidWorkspace, match="shapesys modifier 'ss' appears twice"):
        spec.load_workspace(ws)


def test_picking_the_broken_measurement_fails():
    ws = changed("measurement-unused-and-broken")
    with pytest.warns(SpecWarning):
        spec.load_workspace(ws)
    with pytest.raises(InvalidWorkspace, match=r"measurements\[1\].*lower bound 5"):
        compile_model(ws, measurement="Other")


def test_the_last_of_repeated_items_is_what_hfpipe_compiles():
    """What pyhf keeps, hfpipe compiles: the later observation, sample and modifier."""
    ws = signal_workspace()
    append(["observations"], {"name": "SR", "data": [10.0, 5.0, 2.0]})(ws)
    doubled_wjets(ws)
    with pytest.warns(SpecWarning):
        model = compile_model(ws)
    slots = model.structure.slot_labels
    wjets = [i for i, label in enumerate(slots) if label[:2] == ("SR", "wjets")]
    np.testing.assert_array_equal(np.asarray(model.numbers.nominal)[wjets], [10.4, 5.8, 2.2])
    np.testing.assert_array_equal(np.asarray(model.numbers.observed)[1:], [10.0, 5.0, 2.0])


# ---------------------------------------------------------------------------------------
# a patch that removes a channel and leaves its observation (the ATLAS sbottom patches)


def with_validation_region() -> tuple[dict, dict]:
    """The example's background with a validation channel VR (and its observation), and
    a patchset whose points add the signal and remove VR."""
    background = copy.deepcopy(BKG)
    validation = copy.deepcopy(background["channels"][0])
    validation["name"] = "VR"
    background["channels"].append(validation)
    background["observations"].append({"name": "VR", "data": [230.0]})
    patchset = copy.deepcopy(PATCHSET)
    patchset["metadata"]["digests"] = {"sha256": spec.workspace_digest(background)}
    for patch in patchset["patches"]:
        patch["patch"].append({"op": "remove", "path": "/channels/2"})
    return background, patchset


def test_a_patch_that_removes_a_channel_and_leaves_its_observation(tight_pyhf):
    background, patchset = with_validation_region()
    point = patchset["patches"][1]
    patched = jsonpatch.apply_patch(background, point["patch"])
    ours, messages = hfpipe_cls(background, patches=[point["patch"]])
    np.testing.assert_allclose(ours, pyhf_cls(patched), rtol=1e-4)
    assert messages == [
        "ws.json: observations[2].name: observation of channel 'VR' is ignored: the model "
        "has no such channel (channels: CR, SR), and pyhf ignores it (in the patched workspace)"
    ]


def test_a_scan_of_such_a_patchset(tight_pyhf):
    background, patchset = with_validation_region()
    patchset["patches"] = patchset["patches"][:2]
    with pytest.warns(SpecWarning, match="observation of channel 'VR' is ignored"):
        frame = scan(background, patchset)
    assert list(frame["status"]) == ["ok", "ok"]
    for row, point in zip(frame.itertuples(), patchset["patches"], strict=True):
        patched = jsonpatch.apply_patch(background, point["patch"])
        ours = [row.cls_obs, row.cls_exp_m2, row.cls_exp_m1, row.cls_exp, row.cls_exp_p1]
        np.testing.assert_allclose([*ours, row.cls_exp_p2], pyhf_cls(patched), rtol=1e-4)


# ---------------------------------------------------------------------------------------
# the published ATLAS sbottom likelihood (HEPData ins1748602)

ARCHIVE = "pyhf-ins1748602-probability-models.tar.gz"
REFERENCE = Path(__file__).with_name("data") / "pyhf_sbottom.csv"
COLUMNS = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]


def sbottom_archive() -> tarfile.TarFile:
    """The likelihood from scikit-hep-testdata (downloaded on first use, then cached);
    skips where it cannot be had."""
    testdata = pytest.importorskip("skhep_testdata")
    try:
        return tarfile.open(testdata.data_path(ARCHIVE), "r:gz")
    except OSError as error:  # no network and no cached copy
        pytest.skip(f"cannot get {ARCHIVE}: {error}")


def sbottom_region(archive: tarfile.TarFile, region: str) -> tuple[dict, dict]:
    """A region's background and a patchset of its signal points, made from the
    published patch files (``patch.sbottom_<m_sb>_<m_n2>_<m_n1>.json``)."""
    background = json.loads(archive.extractfile(f"Region{region}/BkgOnly.json").read())
    pattern = re.compile(rf"Region{region}/patch\.(sbottom_(\d+)_(\d+)_(\d+))\.json$")
    patches = []
    for name in sorted(archive.getnames()):
        match = pattern.match(name)
        if match:
            patches.append(
                {
                    "metadata": {"name": match[1], "values": [int(m) for m in match.groups()[1:]]},
                    "patch": json.loads(archive.extractfile(name).read()),
                }
            )
    patchset = {
        "metadata": {
            "description": f"ATLAS sbottom multi-b, Region{region}",
            "digests": {"sha256": spec.workspace_digest(background)},
            "labels": ["m_sb", "m_n2", "m_n1"],
            "references": {"hepdata": "ins1748602"},
        },
        "patches": patches,
        "version": "1.0.0",
    }
    return background, patchset


def sbottom_reference() -> dict[str, list[dict]]:
    """pyhf 0.7.6's rows of tests/data/pyhf_sbottom.csv, by region."""
    with REFERENCE.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    by_region: dict[str, list[dict]] = {}
    for row in rows:
        by_region.setdefault(row["region"], []).append(row)
    return by_region


#: the one published point without signal (its patch only removes a channel): pyhf
#: cannot build a model without the POI either
NO_SIGNAL = {"B": {"sbottom_1500_1495_60"}}


@pytest.mark.slow
@pytest.mark.parametrize("region", ["A", "B", "C"])
def test_sbottom_scans_as_published(region):
    """Every point of the region scans (the patches leave the observation of the channel
    they remove), and the CLs of the reference points are pyhf's to 1e-4 relative."""
    with sbottom_archive() as archive:
        background, patchset = sbottom_region(archive, region)
    with pytest.warns(SpecWarning, match="is ignored: the model has no such channel"):
        frame = scan(background, patchset).set_index("point")
    invalid = set(frame.index[frame["status"] != "ok"])
    assert invalid == NO_SIGNAL.get(region, set()), frame.loc[list(invalid), "message"]
    for point in invalid:
        assert "POI 'mu_SIG' is not a parameter of the model" in frame.loc[point, "message"]
    reference = sbottom_reference()[region]
    assert len(reference) >= 5
    for row in reference:
        ours = frame.loc[row["point"], COLUMNS].to_numpy(dtype=float)
        theirs = np.array([float(row[c]) for c in COLUMNS])
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, err_msg=row["point"])
        assert frame.loc[row["point"], "twice_nll"] <= float(row["twice_nll"]) + 1e-6
