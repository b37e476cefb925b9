"""The model-independent limit table (hfpipe.scanning.discovery, hfpipe discovery-table):
the unit-signal construction, S_obs^95 and CL_B against hfpipe's own limit and
hypothesis test of the same unit-signal model, p(s = 0) capped as papers print, the
regions batched in one union equal to each region alone, paper formatting, toys
reproducible for a seed, and S_obs^95 against pyhf 0.7.6's upper_limit on 3L-eRJR."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import hfpipe
from hfpipe import spec
from hfpipe.cli import main
from hfpipe.errors import InvalidSettings
from hfpipe.model import compile_model
from hfpipe.results import read_table
from hfpipe.results.discovery import format_latex, format_markdown
from hfpipe.scanning.discovery import discovery_table
from hfpipe.scanning.unit_signal import unit_signal_patch

#: the one ill-conditioned shapesys γ of 3L-eRJR (τ ≈ 1.9e11), which stalls pyhf's SLSQP
STIFF_GAMMA = "shape_mcstat_diboson3LISR_CRISR_obs_cuts"


def regions_workspace() -> dict:
    """Background only: two single-bin signal regions (an excess in SR_a, a deficit in
    SR_b) and a three-bin control region, one shared background normalisation
    uncertainty; the measurement names the POI of the signal patches to come."""
    shared = [{"name": "bkg_unc", "type": "normsys", "data": {"hi": 1.15, "lo": 0.85}}]

    def channel(name, rates):
        return {"name": name, "samples": [{"name": "bkg", "data": rates, "modifiers": shared}]}

    return {
        "channels": [
            channel("SR_a", [10.0]),
            channel("SR_b", [5.0]),
            channel("CR", [20.0, 15.0, 10.0]),
        ],
        "observations": [
            {"name": "SR_a", "data": [16.0]},
            {"name": "SR_b", "data": [3.0]},
            {"name": "CR", "data": [22.0, 14.0, 9.0]},
        ],
        "measurements": [{"name": "m", "config": {"poi": "mu_SIG", "parameters": []}}],
        "version": "1.0.0",
    }


@pytest.fixture(scope="module")
def table():
    return discovery_table(regions_workspace(), ["SR_a", "SR_b"], lumi=139.0)


def test_unit_signal_patch_adds_one_event_with_a_free_normalisation_as_the_poi():
    workspace = regions_workspace()
    patched = spec.apply_patches(workspace, [unit_signal_patch(workspace, "SR_b")])
    samples = patched["channels"][1]["samples"]
    assert samples[-1] == {
        "name": "signal",
        "data": [1.0],
        "modifiers": [{"name": "mu_Sig", "type": "normfactor", "data": None}],
    }
    config = patched["measurements"][0]["config"]
    assert config["poi"] == "mu_Sig"
    (setting,) = config["parameters"]
    assert setting["name"] == "mu_Sig" and setting["inits"] == [1.0]
    assert setting["bounds"][0] == pytest.approx([0.0, 2 * (3 + 5 * np.sqrt(3) + 10)])
    model = compile_model(patched)
    assert model.poi_name == "mu_Sig"
    expected = np.asarray(model.expected_data(model.init(), include_auxdata=False))
    assert expected.tolist() == pytest.approx([20.0, 15.0, 10.0, 10.0, 6.0])  # CR, SR_a, SR_b


@pytest.mark.parametrize(
    "region, options, message",
    [
        ("CR", {}, "region 'CR' has 3 bins: model-independent limits need a single-bin region"),
        ("SR_c", {}, "no channel 'SR_c'"),
        ("SR_a", {"sample": "bkg"}, "already has a sample 'bkg'"),
        ("SR_a", {"poi": "bkg_unc"}, "already has a parameter 'bkg_unc'"),
    ],
)
def test_unit_signal_refuses_what_it_cannot_build(region, options, message):
    with pytest.raises(InvalidSettings, match=message):
        unit_signal_patch(regions_workspace(), region, **options)


def test_limits_and_cl_b_equal_the_unit_signal_models_own(table):
    """S_obs^95 and S_exp^95 are hfpipe's upper limits of the unit-signal model; CLs at
    S_obs^95 is 1 − CL, and CL_B is that test's CLb; p0 is the q0 test's."""
    workspace = regions_workspace()
    row = table.iloc[0]
    model = compile_model(workspace, patches=[unit_signal_patch(workspace, "SR_a")])
    limits = hfpipe.upper_limits(model).values[0]
    np.testing.assert_allclose(
        [row.s_obs, row.s_exp_m2, row.s_exp_m1, row.s_exp, row.s_exp_p1, row.s_exp_p2],
        limits,
        rtol=1e-6,
    )
    at_limit = hfpipe.hypotest(model, row.s_obs)
    assert at_limit.cls_obs[0] == pytest.approx(0.05, abs=1e-4)
    assert row.cl_b == pytest.approx(at_limit.clb_obs[0], abs=1e-6)
    p0 = hfpipe.hypotest(model, 0.0, test_stat="q0").cls_obs[0]
    assert row.p0 == pytest.approx(p0, rel=1e-6)
    assert row.xsec_obs == pytest.approx(row.s_obs / 139.0)
    assert row.status == "ok" and row.message == ""


def test_p0_of_a_deficit_is_a_half_and_z_zero(table):
    """A deficit fits no signal (μ̂ at its bound 0): q0 = 0 up to the fits' precision,
    p(s = 0) = 0.5 and Z = 0 (±1e-6: q0 of ~1e-13 is a Z of ~3e-7)."""
    excess, deficit = table.iloc[0], table.iloc[1]
    assert 0 < excess.p0 < 0.5 and excess.z > 0.5 and excess.s_obs > excess.s_exp
    assert deficit.p0 == pytest.approx(0.5, abs=1e-6) and deficit.z == pytest.approx(0, abs=1e-5)
    assert deficit.p0 <= 0.5 and deficit.s_obs < deficit.s_exp


def test_regions_batched_together_equal_each_region_alone(table):
    """The union batch of both regions, against SR_b's table alone (its own structure)."""
    alone = discovery_table(regions_workspace(), ["SR_b"], lumi=139.0)
    numbers = ["s_obs", "s_exp_m2", "s_exp_m1", "s_exp", "s_exp_p1", "s_exp_p2", "cl_b"]
    np.testing.assert_allclose(alone[numbers].iloc[0], table[numbers].iloc[1], rtol=1e-6)
    assert alone["p0"].iloc[0] == pytest.approx(table["p0"].iloc[1], abs=1e-6)


def test_paper_formats(table):
    markdown = format_markdown(table)
    assert markdown.splitlines()[0] == (
        "| Signal region | ⟨εσ⟩_obs^95 [fb] | S_obs^95 | S_exp^95 | CL_B | p(s = 0) (Z) |"
    )
    row = table.iloc[0]
    assert f"| SR_a | {row.xsec_obs:.2f} | {row.s_obs:.1f} | {row.s_exp:.1f} +" in markdown
    assert "| 0.50 (0.00) |" in markdown.splitlines()[3]
    latex = format_latex(table)
    assert latex.startswith(r"\begin{tabular}{lccccc}") and latex.endswith(r"\end{tabular}")
    up, down = row.s_exp_p1 - row.s_exp, row.s_exp - row.s_exp_m1
    band = rf"${row.s_exp:.1f}^{{+{up:.1f}}}_{{-{down:.1f}}}$"
    assert rf"SR\_a & {row.xsec_obs:.2f} & {row.s_obs:.1f} & {band}" in latex
    without_lumi = table.copy()
    without_lumi.attrs = {**table.attrs, "lumi": None}
    assert "εσ" not in format_markdown(without_lumi)


def test_cli_writes_parquet_markdown_and_latex(tmp_path, table):
    path = tmp_path / "bkg.json"
    path.write_text(json.dumps(regions_workspace()))
    out, md, tex = tmp_path / "t.parquet", tmp_path / "t.md", tmp_path / "t.tex"
    regions = ["--region", "SR_a", "--region", "SR_b", "--lumi", "139"]
    files = ["-o", str(out), "--markdown", str(md), "--latex", str(tex)]
    result = CliRunner().invoke(main, ["discovery-table", str(path), *regions, *files])
    assert result.exit_code == 0, result.output
    assert md.read_text().strip() == result.output.strip() == format_markdown(table)
    assert tex.read_text().strip() == format_latex(table)
    frame, provenance = read_table(out)
    np.testing.assert_allclose(frame["s_obs"], table["s_obs"], rtol=1e-12)
    assert provenance["settings"]["regions"] == ["SR_a", "SR_b"]
    assert provenance["settings"]["lumi"] == 139.0 and provenance["workspace"]["sha256"]


def test_cli_refuses_a_multi_bin_region_in_one_line(tmp_path):
    path = tmp_path / "bkg.json"
    path.write_text(json.dumps(regions_workspace()))
    result = CliRunner().invoke(main, ["discovery-table", str(path), "--region", "CR"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "hfpipe: error: region 'CR' has 3 bins: model-independent limits need a single-bin region"
    )


def test_toy_based_table_is_reproducible_with_a_seed(table):
    def toys(seed):
        return hfpipe.discovery_table(
            regions_workspace(), ["SR_a"], calctype="toybased", ntoys=150, seed=seed
        )

    first, again, other = toys(1), toys(1), toys(2)
    numbers = ["s_obs", "s_exp_m1", "s_exp", "s_exp_p1", "cl_b", "p0"]
    assert first[numbers].equals(again[numbers])
    assert not first[numbers].equals(other[numbers])
    assert first.attrs["calctype"] == "toybased" and first.attrs["ntoys"] == 150
    assert first["status"].iloc[0] == "ok", first["message"].iloc[0]
    # toys and asymptotics agree roughly on 10 expected background events
    assert first["s_obs"].iloc[0] == pytest.approx(table["s_obs"].iloc[0], rel=0.15)


@pytest.mark.slow
def test_s_obs_equals_pyhf_upper_limit_on_a_3l_region(load_analysis):
    """3L-eRJR SRISR_cuts with its unit signal. pyhf's upper_limit is given a fine scan
    around the limit (toms748 on the numpy backend needs ~15 min here, and on jax it
    raises), whose linear CLs interpolation is exact to ~1e-5 relative there; the stiff γ
    is held at its auxiliary value in both codes (pyhf's SLSQP stalls otherwise)."""
    pyhf = pytest.importorskip("pyhf")
    workspace, _, _ = load_analysis("atlas-3l-erjr")
    held = json.loads(json.dumps(workspace))
    held["measurements"][0]["config"]["parameters"].append({"name": STIFF_GAMMA, "fixed": True})
    ours = discovery_table(held, ["SRISR_cuts"]).iloc[0]
    assert ours.status == "ok"
    patched = spec.apply_patches(held, [unit_signal_patch(held, "SRISR_cuts")])
    pyhf.set_backend("numpy")
    pyhf_workspace = pyhf.Workspace(patched)
    model = pyhf_workspace.model(
        modifier_settings={"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
    )
    scan = np.linspace(0.98 * ours.s_obs, 1.02 * ours.s_obs, 5)
    observed, _ = pyhf.infer.intervals.upper_limits.upper_limit(
        pyhf_workspace.data(model), model, scan=scan, level=0.05
    )
    assert scan[0] < float(observed) < scan[-1]  # bracketed: not clamped to an end
    assert ours.s_obs == pytest.approx(float(observed), rel=1e-3)
