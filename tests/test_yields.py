"""Pre- and post-fit yields and their uncertainties, against cabinetry 0.6.0's
``model_utils.prediction`` (the same best fit given to both, so that only the
propagation is compared: cabinetry's own fits stop at EDM < 2e-4 and its MINUIT
uncertainties differ from the exact curvature, see tests/test_ranking.py)."""

from __future__ import annotations

import copy

import cabinetry
import numpy as np
import pytest
from click.testing import CliRunner
from postfit_models import ANALYSES, EXAMPLE, KINDS_SPEC, POINT, fit_results

from hfpipe.cli import main
from hfpipe.errors import InputError, InvalidSettings
from hfpipe.infer.bestfit import best_fit
from hfpipe.infer.yields import TOTAL, postfit_yields, prefit_yields, propagated_yields
from hfpipe.model import compile_model
from hfpipe.results import read_table
from hfpipe.spec import apply_patches, load_patchset, load_workspace

RTOL = 1e-5


def _worst_difference(ours, prediction) -> float:
    """Largest relative difference of yields and uncertainties (per bin and per channel,
    samples and totals) between a hfpipe table and a cabinetry ModelPrediction."""
    config = prediction.model.config
    worst = 0.0

    def compare(a, b):
        nonlocal worst
        a, b = np.asarray(a, float), np.asarray(b, float)
        assert a.shape == b.shape
        scale = np.maximum(np.abs(b), 1e-12)
        worst = max(worst, float(np.max(np.abs(a - b) / scale)))

    for c, channel in enumerate(config.channels):
        rows = ours[ours["channel"] == channel]
        for s, sample in enumerate([*config.samples, TOTAL]):
            mine = rows[rows["sample"] == sample]
            if mine.empty:  # a sample the channel does not have: cabinetry's zeros
                assert not np.any(prediction.model_yields[c][s])
                continue
            bins, summed = mine[mine["bin"].notna()], mine[mine["bin"].isna()]
            if sample != TOTAL:
                compare(bins["yield"], prediction.model_yields[c][s])
            compare(bins["uncertainty"], prediction.total_stdev_model_bins[c][s])
            compare(summed["uncertainty"], [prediction.total_stdev_model_channels[c][s]])
    return worst


@pytest.fixture(scope="module")
def example():
    workspace = load_workspace(f"{EXAMPLE}/BkgOnly.json")
    patch = load_patchset(f"{EXAMPLE}/patchset.json")[POINT]
    model = compile_model(workspace, patches=[patch])
    pyhf_model, _ = cabinetry.model_utils.model_and_data(apply_patches(workspace, [patch]))
    return model, best_fit(model), pyhf_model


@pytest.mark.parametrize("stage", ["prefit", "postfit"])
def test_yields_equal_cabinetry_predictions(example, stage):
    model, fit, pyhf_model = example
    if stage == "prefit":
        ours, theirs = prefit_yields(model), cabinetry.model_utils.prediction(pyhf_model)
    else:
        ours = postfit_yields(model, fit=fit)
        theirs = cabinetry.model_utils.prediction(pyhf_model, fit_results=fit_results(fit))
    assert ours.attrs["stage"] == stage
    assert _worst_difference(ours, theirs) < 1e-10


def test_every_kind_of_parameter_propagates_as_cabinetry():
    model = compile_model(KINDS_SPEC)
    pyhf_model, _ = cabinetry.model_utils.model_and_data(KINDS_SPEC)
    fit = best_fit(model)
    pairs = [
        (prefit_yields(model), cabinetry.model_utils.prediction(pyhf_model)),
        (
            postfit_yields(model, fit=fit),
            cabinetry.model_utils.prediction(pyhf_model, fit_results=fit_results(fit)),
        ),
    ]
    for ours, theirs in pairs:
        assert _worst_difference(ours, theirs) < 1e-10


def test_sums_and_data_rows(example):
    model, fit, _ = example
    table = postfit_yields(model, fit=fit)
    for _, rows in table.groupby("channel"):
        per_bin = rows[rows["bin"].notna()]
        samples = per_bin[per_bin["sample"] != TOTAL].groupby("bin")["yield"].sum()
        total = per_bin[per_bin["sample"] == TOTAL].set_index("bin")
        np.testing.assert_allclose(total["yield"], samples, rtol=1e-12)
        summed = rows[rows["bin"].isna()].set_index("sample")["yield"]
        np.testing.assert_allclose(summed, per_bin.groupby("sample")["yield"].sum()[summed.index])
        assert (
            total["data"].notna().all() and per_bin[per_bin["sample"] != TOTAL]["data"].isna().all()
        )
    observed = table[(table["sample"] == TOTAL) & table["bin"].notna()]["data"]
    np.testing.assert_array_equal(observed, model.numbers.observed)
    expected = np.asarray(model.expected_data(fit.pars, include_auxdata=False))
    np.testing.assert_allclose(
        table[(table["sample"] == TOTAL) & table["bin"].notna()]["yield"], expected, rtol=1e-12
    )


def test_jacobian_propagation_is_the_difference_where_yields_are_linear_in_each_parameter():
    """Without normsys and histosys every parameter scales yields linearly, so the
    symmetric ±σ difference is σ times the derivative exactly."""
    spec = copy.deepcopy(KINDS_SPEC)
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [
                m for m in sample["modifiers"] if m["type"] not in ("normsys", "histosys")
            ]
    model = compile_model(spec)
    fit = best_fit(model)
    args = (model, fit.pars, fit.uncertainties, fit.correlation())
    difference = propagated_yields(*args)
    jacobian = propagated_yields(*args, propagation="jacobian")
    np.testing.assert_allclose(jacobian["uncertainty"], difference["uncertainty"], rtol=1e-10)
    with pytest.raises(InvalidSettings, match="propagation"):
        propagated_yields(*args, propagation="sampling")


def test_yields_command_writes_table_text_and_plots(example, tmp_path):
    model, fit, _ = example
    args = ["yields", f"{EXAMPLE}/BkgOnly.json", "--patchset", f"{EXAMPLE}/patchset.json"]
    args += ["--point", POINT, "--postfit", "-o", str(tmp_path / "y.parquet")]
    result = CliRunner().invoke(main, [*args, "--plot", str(tmp_path / "figures")])
    assert result.exit_code == 0, result.output
    table, provenance = read_table(tmp_path / "y.parquet")
    np.testing.assert_allclose(table["uncertainty"], postfit_yields(model, fit=fit)["uncertainty"])
    assert (
        provenance["stage"] == "postfit" and provenance["settings"]["propagation"] == "difference"
    )
    assert "SR (postfit)" in result.output and "data" in result.output
    for channel in model.structure.channels:
        assert (tmp_path / "figures" / f"{channel}_postfit.png").read_bytes()[:4] == b"\x89PNG"


def test_draw_yields_names_a_missing_channel(example):
    from hfpipe.plot.yields import draw_yields

    with pytest.raises(InputError, match="no channel 'VR'"):
        draw_yields(prefit_yields(example[0]), "VR")


@pytest.mark.slow
@pytest.mark.parametrize("analysis", list(ANALYSES))
def test_yields_equal_cabinetry_on_atlas(analysis, shared_data):
    workspace_file, patchset_file, point = ANALYSES[analysis]
    folder = shared_data / analysis
    workspace = load_workspace(folder / workspace_file)
    patch = load_patchset(folder / patchset_file)[point]
    model = compile_model(workspace, patches=[patch])
    pyhf_model, _ = cabinetry.model_utils.model_and_data(apply_patches(workspace, [patch]))
    fit = best_fit(model)
    prefit = cabinetry.model_utils.prediction(pyhf_model)
    postfit = cabinetry.model_utils.prediction(pyhf_model, fit_results=fit_results(fit))
    assert _worst_difference(prefit_yields(model), prefit) < RTOL
    assert _worst_difference(postfit_yields(model, fit=fit), postfit) < RTOL
