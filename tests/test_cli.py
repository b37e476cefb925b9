"""The hfpipe command line on the bundled example and on bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfpipe.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
WS, PATCHSET = str(EXAMPLE / "BkgOnly.json"), str(EXAMPLE / "patchset.json")


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cls_prints_pyhf_keys_and_matches_pyhf():
    pyhf = pytest.importorskip("pyhf")
    result = run("cls", WS, "--patchset", PATCHSET, "--point", "sig_400_100")
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)
    assert set(output) == {"CLs_obs", "CLs_exp"} and len(output["CLs_exp"]) == 5
    workspace = pyhf.Workspace(json.loads(Path(WS).read_text()))
    patchset = pyhf.PatchSet(json.loads(Path(PATCHSET).read_text()))
    model_ws = pyhf.Workspace(patchset.apply(workspace, "sig_400_100"))
    model = model_ws.model()
    obs, exp = pyhf.infer.hypotest(
        1.0, model_ws.data(model), model, test_stat="qtilde", return_expected_set=True
    )
    assert output["CLs_obs"] == pytest.approx(float(obs), abs=1e-4)
    assert output["CLs_exp"] == pytest.approx([float(e) for e in exp], abs=1e-4)


def test_fit_prints_bestfit_with_pyhf_names():
    result = run("fit", WS, "--patchset", PATCHSET, "--point", "sig_400_100")
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)
    assert output["converged"] is True
    assert "staterror_SR[0]" in output["bestfit"] and "mu_SIG" in output["uncertainties"]
    assert output["uncertainties"]["mu_SIG"] > 0
    fixed = json.loads(
        run("fit", WS, "--patchset", PATCHSET, "--point", "sig_400_100", "--fixed-poi", "0").output
    )
    assert fixed["bestfit"]["mu_SIG"] == 0.0 and fixed["uncertainties"]["mu_SIG"] == 0.0
    assert fixed["twice_nll"] >= output["twice_nll"]


def test_inspect_summarises():
    result = run("inspect", WS)
    assert result.exit_code == 0
    assert "SR: 3 bin(s)" in result.output and "POI mu_SIG" in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("{not json", "line 1"),
        ('{"channels": 3}', "missing required key"),
    ],
)
def test_bad_input_is_one_line(tmp_path, content, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = run("cls", str(bad))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "bad.json" in lines[0] and "Traceback" not in result.output
    assert re.search(expected, lines[0], re.IGNORECASE), lines[0]


def test_unknown_point_is_one_line():
    result = run("cls", WS, "--patchset", PATCHSET, "--point", "nope")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "nope" in result.output


@pytest.mark.slow
def test_compilation_cache_recipe(tmp_path):
    """docs/recipes.md: with JAX_COMPILATION_CACHE_DIR set, a first process writes its
    compiled fits there and a second one loads them (JAX says so when asked to log its
    compilations) and gives the same output: hfpipe's JAX set-up at import does not get
    in the way of JAX's cache."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "jax-cache"
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_LOG_COMPILES": "1"}
    command = [sys.executable, "-m", "hfpipe", "cls", WS, "--patchset", PATCHSET]
    command += ["--point", "sig_500_200"]
    outputs, hits = [], []
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(done.stdout))
        hits.append(done.stderr.count("Persistent compilation cache hit"))
        assert any(cache.iterdir())
    assert hits[0] == 0 and hits[1] > 0
    assert outputs[0] == outputs[1]
