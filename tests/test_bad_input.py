"""Malformed and unphysical inputs through the command line: one line, a path, an exit code.

Each case mutates the bundled example (the background workspace, the JSON Patch of one
signal point written to its own file, or the patchset) in a temporary directory and runs
``hfpipe`` in-process; the message must be exactly one line on stderr naming the file,
the JSON path and the problem. A few cases run as real subprocesses to show that no
traceback reaches stderr.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hfpipe.cli import main
from hfpipe.errors import UnphysicalModel
from hfpipe.infer.fit import bound_warnings, covariance_warning
from hfpipe.model import compile_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "example"
BKG: dict = json.loads((EXAMPLE / "BkgOnly.json").read_text())
PATCHSET: dict = json.loads((EXAMPLE / "patchset.json").read_text())
POINT = "sig_400_100"
SIGNAL: list = next(p["patch"] for p in PATCHSET["patches"] if p["metadata"]["name"] == POINT)

SR_TTBAR = ["channels", 1, "samples", 0]
SR_WJETS = ["channels", 1, "samples", 1]
MEAS = ["measurements", 0, "config"]


class Inputs:
    """The three documents of a run, mutable, and how to write them."""

    def __init__(self) -> None:
        self.docs = {
            "ws.json": copy.deepcopy(BKG),
            "patch.json": copy.deepcopy(SIGNAL),
            "ps.json": copy.deepcopy(PATCHSET),
        }
        self.raw: dict[str, str] = {}

    def write(self, folder: Path) -> None:
        for name, doc in self.docs.items():
            text = self.raw.get(name, json.dumps(doc))
            (folder / name).write_text(text)


def _at(doc, path):
    for part in path[:-1]:
        doc = doc[part]
    return doc, path[-1]


def setp(path: list, value, doc: str = "ws.json") -> Callable[[Inputs], None]:
    def mutate(inputs: Inputs) -> None:
        parent, key = _at(inputs.docs[doc], path)
        parent[key] = value

    return mutate


def delp(path: list, doc: str = "ws.json") -> Callable[[Inputs], None]:
    def mutate(inputs: Inputs) -> None:
        parent, key = _at(inputs.docs[doc], path)
        del parent[key]

    return mutate


def appendp(path: list, value, doc: str = "ws.json") -> Callable[[Inputs], None]:
    def mutate(inputs: Inputs) -> None:
        parent, key = _at(inputs.docs[doc], path)
        parent[key].append(copy.deepcopy(value))

    return mutate


def raw(text: str, doc: str = "ws.json") -> Callable[[Inputs], None]:
    def mutate(inputs: Inputs) -> None:
        inputs.raw[doc] = text

    return mutate


def replace_text(old: str, new: str, doc: str = "ws.json") -> Callable[[Inputs], None]:
    def mutate(inputs: Inputs) -> None:
        inputs.raw[doc] = json.dumps(inputs.docs[doc]).replace(old, new, 1)

    return mutate


CLS = ["cls", "{ws}", "-p", "{patch}"]
CLS_PATCHSET = ["cls", "{ws}", "--patchset", "{ps}", "--point", POINT]


def case(id, mutate, file, path, phrase, *, args=CLS, code=2):
    """A malformed input: ``mutate`` breaks it, the message names ``file`` (a key of
    Inputs.docs), the JSON ``path`` ('' for none) and contains ``phrase``."""
    return pytest.param(mutate, args, code, file, path, phrase, id=id)


CASES = [
    # reading JSON
    case("empty-file", raw(""), "ws.json", "", "the file is empty"),
    case("invalid-json", raw('{"channels": [}'), "ws.json", "", "invalid JSON: Expecting value"),
    case("not-an-object", raw("[]"), "ws.json", "(document root)", "a workspace is a JSON object"),
    case(
        "nan-literal",
        replace_text("152.0", "NaN"),
        "ws.json",
        "channels[0].samples[0].data[0]",
        "NaN is not valid JSON",
    ),
    case(
        "overflow-to-infinity",
        replace_text("152.0", "1e999"),
        "ws.json",
        "channels[0].samples[0].data[0]",
        "not a finite number",
    ),
    case(
        "empty-patch-file",
        lambda inputs: inputs.raw.update({"patch.json": ""}),
        "patch.json",
        "",
        "the file is empty",
    ),
    case(
        "missing-file",
        lambda inputs: None,
        "nope.json",
        "",
        "no such file",
        args=["cls", "{nope}"],
    ),
    # schema
    case(
        "missing-key",
        delp(["observations"]),
        "ws.json",
        "(document root)",
        "missing required key 'observations'",
    ),
    case(
        "wrong-type",
        setp([*SR_TTBAR, "modifiers"], {"mu_ttbar": None}),
        "ws.json",
        "channels[1].samples[0].modifiers",
        "expected an array, got an object",
    ),
    case(
        "string-in-yields",
        setp([*SR_TTBAR, "data", 1], "6.1"),
        "ws.json",
        "channels[1].samples[0].data[1]",
        "expected a number, got '6.1'",
    ),
    case(
        "unknown-modifier-type",
        setp([*SR_TTBAR, "modifiers", 1, "type"], "normsyst"),
        "ws.json",
        "channels[1].samples[0].modifiers[1].type",
        "unknown modifier type 'normsyst' (known: histosys, lumi",
    ),
    case(
        "normsys-without-lo",
        delp([*SR_TTBAR, "modifiers", 1, "data", "lo"]),
        "ws.json",
        "channels[1].samples[0].modifiers[1].data",
        "normsys data needs 'hi' and 'lo' numbers (missing required key 'lo')",
    ),
    case(
        "histosys-without-lo_data",
        delp([*SR_TTBAR, "modifiers", 2, "data", "lo_data"]),
        "ws.json",
        "channels[1].samples[0].modifiers[2].data",
        "histosys data needs 'hi_data' and 'lo_data'",
    ),
    case(
        "unknown-key",
        setp(["channels", 0, "colour"], "red"),
        "ws.json",
        "channels[0]",
        "unknown key 'colour' (allowed: name, samples)",
    ),
    case(
        "workspace-version",
        setp(["version"], "2.0.0"),
        "ws.json",
        "version",
        "unsupported workspace version '2.0.0' (expected '1.0.0')",
    ),
    # bin counts, missing and duplicated parts
    case(
        "sample-bin-count",
        appendp([*SR_WJETS, "data"], 1.0),
        "ws.json",
        "channels[1].samples[1].data",
        "sample 'wjets' has 4 bins but sample 'ttbar' has 3",
    ),
    case(
        "histosys-bin-count",
        setp([*SR_TTBAR, "modifiers", 2, "data", "hi_data"], [12.5, 6.6]),
        "ws.json",
        "channels[1].samples[0].modifiers[2].data.hi_data",
        "histosys 'jes' has 2 entries but sample 'ttbar' has 3 bins",
    ),
    case(
        "observation-bin-count",
        setp(["observations", 1, "data"], [18.0, 8.0]),
        "ws.json",
        "observations[1].data",
        "2 observed bins but channel 'SR' has 3",
    ),
    case(
        "missing-observation",
        delp(["observations", 0]),
        "ws.json",
        "observations",
        "no observation for channel 'CR'",
    ),
    # what pyhf silently drops is accepted with a warning, refused with --strict
    case(
        "duplicated-observation",
        appendp(["observations"], {"name": "CR", "data": [200.0]}),
        "ws.json",
        "observations[0].name",
        "observation of channel 'CR' is ignored: observations[2] is a later one",
        args=[*CLS, "--strict"],
    ),
    case(
        "duplicated-channel",
        setp(["channels", 1, "name"], "CR"),
        "ws.json",
        "channels[1].name",
        "a second channel named 'CR' (first: channels[0]); pyhf joins their samples",
        args=[*CLS, "--strict"],
    ),
    case(
        "duplicated-sample",
        setp([*SR_WJETS, "name"], "ttbar"),
        "ws.json",
        "channels[1].samples[0].name",
        "sample 'ttbar' of channel 'SR' is ignored: channels[1].samples[1] has the same name",
        args=[*CLS, "--strict"],
    ),
    case(
        "negative-observed-count",
        setp(["observations", 1, "data", 2], -4),
        "ws.json",
        "observations[1].data[2]",
        "observed count -4 is negative",
    ),
    # measurements
    case(
        "poi-not-in-model",
        lambda inputs: [
            setp([*MEAS, "poi"], "mu_SIGNAL")(inputs),
            setp([*MEAS, "parameters", 0, "name"], "mu_SIGNAL")(inputs),
        ],
        "ws.json",
        "measurements[0].config.poi",
        "POI 'mu_SIGNAL' is not a parameter of the model",
    ),
    case(
        "setting-names-nothing",
        appendp([*MEAS, "parameters"], {"name": "xsec_ttbr", "fixed": True}),
        "ws.json",
        "measurements[0].config.parameters[2].name",
        "no modifier named 'xsec_ttbr' in the model",
        args=[*CLS, "--strict"],
    ),
    case(
        "inverted-bounds",
        setp([*MEAS, "parameters", 1, "bounds"], [[5.0, 0.0]]),
        "ws.json",
        "measurements[0].config.parameters[1].bounds[0]",
        "lower bound 5.0 is not below upper bound 0.0",
    ),
    case(
        "init-outside-bounds",
        setp([*MEAS, "parameters", 1, "inits"], [7.0]),
        "ws.json",
        "measurements[0].config.parameters[1].inits[0]",
        "initial value 7.0 is outside the bounds [0.0, 5.0]",
    ),
    # patches
    case(
        "patch-does-not-apply",
        setp([1, "path"], "/channels/7/samples/-", doc="patch.json"),
        "patch.json",
        "[1]",
        "cannot add /channels/7/samples/-",
    ),
    case(
        "patch-unknown-operation",
        setp([0, "op"], "append", doc="patch.json"),
        "patch.json",
        "[0].op",
        "unknown patch operation 'append'",
    ),
    case(
        "patch-string-in-yields",
        setp([0, "value", "data", 0], "x", doc="patch.json"),
        "patch.json",
        "[0].value.data[0]",
        "expected a number, got 'x' (the sample this operation puts at /channels/0/samples/-)",
    ),
    case(
        "patch-breaks-bin-count",
        appendp([1, "value", "data"], 1.0, doc="patch.json"),
        "ws.json",
        "channels[1].samples[2].data",
        "sample 'signal' has 4 bins but sample 'ttbar' has 3",
    ),
    case(
        "patchset-given-as-patch",
        lambda inputs: inputs.docs.update({"patch.json": inputs.docs["ps.json"]}),
        "patch.json",
        "(document root)",
        "this looks like a patchset",
    ),
    # patchsets
    case(
        "patchset-digest-mismatch",
        setp(["observations", 0, "data", 0], 220.0),
        "ps.json",
        "metadata.digests.sha256",
        "patchset was made for workspace sha256:",
        args=CLS_PATCHSET,
    ),
    case(
        "patchset-unknown-point",
        lambda inputs: None,
        "ps.json",
        "",
        "no patch named 'sig_400_10'; did you mean sig_400_100?",
        args=[*CLS_PATCHSET[:-1], "sig_400_10"],
    ),
    case(
        "patchset-infinity-in-a-patch",
        replace_text("2.9372", "-1e999", doc="ps.json"),
        "ps.json",
        "patches[1].patch[1].value.data[0]",
        "not a finite number",
        args=CLS_PATCHSET,
    ),
    case(
        "patchset-duplicate-point",
        setp(["patches", 2, "metadata", "name"], "sig_300_100", doc="ps.json"),
        "ps.json",
        "patches[2].metadata.name",
        "duplicate patch name 'sig_300_100'",
        args=CLS_PATCHSET,
    ),
    case(
        "patchset-wrong-value-in-patch",
        setp(["patches", 1, "patch", 0, "value", "modifiers", 1, "data"], {"hi": 1.1}, "ps.json"),
        "ps.json",
        "patches[1].patch[0].value.modifiers[1].data",
        "normsys data needs 'hi' and 'lo' numbers",
        args=CLS_PATCHSET,
    ),
    # unphysical models
    case(
        "negative-yield",
        setp([1, "value", "data", 0], -50.0, doc="patch.json"),
        "ws.json",
        "channels[1].samples[2].data",
        "expected yield -33 in bin 0 of channel 'SR' from the nominal templates",
    ),
    case(
        "negative-normsys-factor",
        setp([*SR_WJETS, "modifiers", 0, "data", "lo"], -0.2),
        "ws.json",
        "channels[1].samples[1].modifiers[0].data",
        "normsys 'xsec_wjets' of sample 'wjets' in channel 'SR' has lo = -0.2",
    ),
    case(
        "implausible-yield",
        setp([*SR_TTBAR, "modifiers", 2, "data", "hi_data", 2], 1e308),
        "ws.json",
        "channels[1].samples[0].modifiers[2].data",
        "expected yield 1e+308 of sample 'ttbar' in bin 2 of channel 'SR' (+1σ histosys 'jes')"
        " is not a plausible number of events",
    ),
    # the other commands read inputs the same way
    case(
        "inspect",
        setp([*SR_TTBAR, "data"], []),
        "ws.json",
        "channels[1].samples[0].data",
        "must not be empty",
        args=["inspect", "{ws}"],
    ),
    case(
        "fit",
        setp(["observations", 1, "data", 0], "18"),
        "ws.json",
        "observations[1].data[0]",
        "expected a number, got '18'",
        args=["fit", "{ws}", "-p", "{patch}"],
    ),
    case(
        "scan",
        delp(["metadata", "labels"], doc="ps.json"),
        "ps.json",
        "metadata",
        "missing required key 'labels'",
        args=["scan", "{ws}", "{ps}", "-o", "{out}"],
    ),
    case(
        "unknown-measurement",
        lambda inputs: None,
        "ws.json",
        "measurements",
        "no measurement named 'nope'",
        args=["fit", "{ws}", "-p", "{patch}", "--measurement", "nope"],
    ),
]


def _placeholders(names: dict[str, str]) -> dict[str, str]:
    """``{ws}`` for ws.json and so on, in command lines."""
    return {name.removesuffix(".json"): path for name, path in names.items()}


def _invoke(tmp_path: Path, mutate, args):
    inputs = Inputs()
    mutate(inputs)
    inputs.write(tmp_path)
    names = {name: str(tmp_path / name) for name in [*inputs.docs, "nope.json"]}
    argv = [arg.format(**_placeholders(names), out=tmp_path / "out.parquet") for arg in args]
    return CliRunner().invoke(main, argv), names


def assert_one_line_error(stderr: str, file: str, path: str, phrase: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert "Traceback" not in stderr
    prefix = f"hfpipe: error: {file}: " + (f"{path}: " if path else "")
    assert line.startswith(prefix), (line, prefix)
    assert phrase in line, (line, phrase)
    return line


@pytest.mark.parametrize(("mutate", "args", "code", "file", "path", "phrase"), CASES)
def test_malformed_input(tmp_path, mutate, args, code, file, path, phrase):
    result, names = _invoke(tmp_path, mutate, args)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    assert_one_line_error(result.stderr, names[file], path, phrase)


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


def test_unknown_setting_warns_in_one_line_without_strict(tmp_path):
    """Published workspaces carry such settings (ATLAS 3L-eRJR's mu_BG): a warning, not
    an error, unless --strict; here with a bad POI so the run stops before fitting."""
    mutate = appendp([*MEAS, "parameters"], {"name": "xsec_ttbr", "fixed": True})
    inspected, names = _invoke(tmp_path, mutate, ["inspect", "{ws}"])
    assert inspected.exit_code == 0
    assert inspected.stderr.strip().splitlines() == [
        f"hfpipe: warning: {names['ws.json']}: measurements[0].config.parameters[2].name: "
        "no modifier named 'xsec_ttbr' in the model; unless a patch adds it"
    ]


def test_debug_shows_the_traceback(tmp_path):
    result, _ = _invoke(tmp_path, setp(["version"], "2.0.0"), [*CLS, "--debug"])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "InvalidWorkspace"


@pytest.mark.parametrize(
    ("mutate", "args", "file", "path", "phrase"),
    [
        pytest.param(raw("{"), CLS, "ws.json", "", "invalid JSON", id="invalid-json"),
        pytest.param(
            setp([1, "value", "data", 0], -50.0, doc="patch.json"),
            CLS,
            "ws.json",
            "channels[1].samples[2].data",
            "sample 'signal' contributes -50",
            id="negative-yield",
        ),
        pytest.param(
            setp(["observations", 0, "data", 0], 220.0),
            CLS_PATCHSET,
            "ps.json",
            "metadata.digests.sha256",
            "patchset was made for workspace",
            id="digest",
        ),
    ],
)
def test_no_traceback_from_a_real_process(tmp_path, mutate, args, file, path, phrase):
    inputs = Inputs()
    mutate(inputs)
    inputs.write(tmp_path)
    names = {name: str(tmp_path / name) for name in inputs.docs}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(
        [sys.executable, "-m", "hfpipe.cli", *(arg.format(**_placeholders(names)) for arg in args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert process.returncode == 2, process.stderr
    assert process.stdout == ""
    assert_one_line_error(process.stderr, names[file], path, phrase)


# ---------------------------------------------------------------------------------------
# unphysical yields: the message names channel, sample, bin and modifier


def _with_negative_jes_variation() -> tuple[dict, list]:
    ws = copy.deepcopy(BKG)
    _at(ws, [*SR_WJETS, "modifiers", 1, "data", "lo_data"])[0]["lo_data"][2] = -20.0
    return ws, copy.deepcopy(SIGNAL)


def test_negative_yield_names_sample_bin_and_modifier(tmp_path):
    ws, patch = _with_negative_jes_variation()
    with pytest.raises(UnphysicalModel) as info:
        compile_model(ws, patches=[patch], file="ws.json")
    error = info.value
    assert error.path == "channels[1].samples[1].modifiers[1].data"
    assert "in bin 2 of channel 'SR' at the -1σ variation of histosys 'jes'" in error.problem
    assert "sample 'wjets' contributes -20" in error.problem
    assert "with 4 observed events" in error.problem
    assert "--clip-negative-yields" in error.problem
    (tmp_path / "ws.json").write_text(json.dumps(ws))
    (tmp_path / "patch.json").write_text(json.dumps(patch))
    result = CliRunner().invoke(
        main, ["cls", str(tmp_path / "ws.json"), "-p", str(tmp_path / "patch.json")]
    )
    assert result.exit_code == 2
    assert_one_line_error(
        result.stderr,
        str(tmp_path / "ws.json"),
        "channels[1].samples[1].modifiers[1].data",
        "at the -1σ variation of histosys 'jes', with 4 observed events; sample 'wjets'",
    )


def test_clipping_is_an_explicit_opt_in():
    ws, patch = _with_negative_jes_variation()
    model = compile_model(ws, patches=[patch], clip_negative_yields=True)
    assert model.structure.clip_yields
    pars = model.init()
    pars[model.structure.parameter_index("jes")] = -1.0
    expected = model.expected_data(pars, include_auxdata=False)
    assert float(expected.min()) == pytest.approx(1e-10)
    assert bool((expected > 0).all())
    assert float(model.logpdf(pars, model.observed_data())) > -1e6


# ---------------------------------------------------------------------------------------
# fit diagnostics: a converged fit with a parameter at a bound says so


def test_bound_warnings_name_the_parameter_and_leave_out_the_poi():
    model = compile_model(copy.deepcopy(BKG), patches=[copy.deepcopy(SIGNAL)])
    pars = model.init()[None].copy()
    names = list(model.parameter_names)
    pars[0, names.index("jes")] = 5.0  # upper bound
    pars[0, model.poi_index] = 0.0  # the POI at its bound is the test statistic's business
    fixed = model.fixed()[None].copy()
    (text,) = bound_warnings(model.structure, model.numbers, pars, fixed)
    assert text == "parameter at a bound: jes at its upper bound 5"
    fixed[0, names.index("jes")] = True
    assert list(bound_warnings(model.structure, model.numbers, pars, fixed)) == [""]


def test_covariance_warning():
    fixed = np.array([False, False, True])
    good = np.diag([1.0, 2.0, 0.0])
    assert covariance_warning(good, fixed) == ""
    indefinite = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert covariance_warning(indefinite, fixed).startswith("Hessian not positive definite")


def test_fit_at_a_bound_warns_on_stderr_and_in_the_output(tmp_path):
    inputs = Inputs()
    setp([*MEAS, "parameters", 1, "bounds"], [[0.5, 1.0]])(inputs)  # mu_ttbar fits to ~1.02
    inputs.write(tmp_path)
    result = CliRunner().invoke(
        main, ["fit", str(tmp_path / "ws.json"), "-p", str(tmp_path / "patch.json")]
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["converged"] is True
    assert output["warning"] == "parameter at a bound: mu_ttbar at its upper bound 1"
    assert result.stderr.strip() == f"hfpipe: warning: {output['warning']}"


# ---------------------------------------------------------------------------------------
# no code from data: nothing in the package unpickles or evaluates what it reads

_FORBIDDEN = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
}


def test_no_code_from_data():
    import ast

    found = []
    for source in sorted((ROOT / "hfpipe").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
                found.append(f"{source}:{node.lineno} {func.id}")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in _FORBIDDEN
            ):
                found.append(f"{source}:{node.lineno} {func.value.id}.{func.attr}")
            if any(k.arg == "allow_pickle" for k in node.keywords):
                found.append(f"{source}:{node.lineno} allow_pickle")
    assert not found, found


def test_scan_row_for_an_unphysical_point_and_clipping_in_the_provenance(tmp_path):
    """In a scan an unphysical point is a row with status 'invalid' and the diagnosis
    (the scan goes on); the clipping opt-in is recorded with the settings. A negative
    normsys factor is rejected even with clipping, so no fit runs here."""
    from hfpipe.results import read_table

    inputs = Inputs()
    setp(["patches", 1, "patch", 1, "value", "modifiers", 1, "data", "lo"], -0.1, "ps.json")(inputs)
    inputs.write(tmp_path)
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        main,
        [
            "scan",
            str(tmp_path / "ws.json"),
            str(tmp_path / "ps.json"),
            "-o",
            str(out),
            "--points",
            POINT,
            "--clip-negative-yields",
        ],
    )
    assert result.exit_code == 0, result.output
    frame, provenance = read_table(out)
    assert frame["status"].tolist() == ["invalid"]
    assert (
        "normsys 'sig_xsec' of sample 'signal' in channel 'SR' has lo = -0.1"
        in (frame["message"][0])
    )
    assert provenance["settings"]["clip_negative_yields"] is True
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "normsys 'sig_xsec'" in warning[0]
