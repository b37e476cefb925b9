"""Signal hypotheses as a table: both table forms make the published patches, errors name
what is wrong, labels reach the results, the config's keys act, scans stream chunk by
chunk, and the table path scans exactly what the patchset path scans (bit for bit on the
bundled example, and, slow, on ATLAS 1Lbb and 3L-eRJR)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from signal_tables import patchset_to_signals, same_float_bits

from hfpipe import spec
from hfpipe.results import read_table
from hfpipe.scanning import scan, scan_to_parquet
from hfpipe.spec import InvalidSignals, load_signals

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
COMPARED = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
COMPARED += ["mu_hat", "twice_nll"]


@pytest.fixture(scope="module")
def example():
    workspace = spec.load_workspace(EXAMPLE / "BkgOnly.json")
    patchset = spec.load_patchset(EXAMPLE / "patchset.json")
    return workspace, patchset


@pytest.fixture(scope="module")
def example_table(example):
    workspace, patchset = example
    return patchset_to_signals(patchset, workspace)


def _patched(workspace, patches):
    base = spec.PatchBase.of(workspace)
    return [spec.apply_patches(base, [patch]) for patch in patches]


def _wide(frame: pd.DataFrame) -> pd.DataFrame:
    """The long table pivoted: one row a point, SR[0], uncertainty:SR[0], ..."""
    per_point = ["point", "m1", "m2", "sample"]
    values = [c for c in frame.columns if c not in ("channel", "bin", *per_point)]
    rows = []
    for _, group in frame.groupby("point", sort=False):
        row = {c: group[c].iat[0] for c in per_point}
        for _, r in group.iterrows():
            cell = f"{r['channel']}[{r['bin']}]"
            for value in values:
                row[cell if value == "yield" else f"{value}:{cell}"] = r[value]
        rows.append(row)
    return pd.DataFrame(rows)


def test_long_table_makes_the_published_patches(example, example_table):
    workspace, patchset = example
    signals = load_signals(*example_table).bind(workspace)
    assert signals.names == patchset.names and signals.labels == ("m1", "m2")
    made = [signals[name] for name in signals.names]
    assert [p.values for p in made] == [p.values for p in patchset]
    assert _patched(workspace, made) == _patched(workspace, patchset)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_and_the_wide_form_make_the_same_patches(tmp_path, example, example_table, suffix):
    workspace, patchset = example
    frame, config = example_table
    for table in (frame, _wide(frame)):
        path = tmp_path / f"signals{suffix}"
        getattr(table, "to_csv" if suffix == ".csv" else "to_parquet")(path, index=False)
        (tmp_path / "signals.yaml").write_text(yaml.safe_dump(config))
        signals = load_signals(path, tmp_path / "signals.yaml").bind(workspace)
        made = [signals[name] for name in signals.names]
        assert _patched(workspace, made) == _patched(workspace, patchset)


def test_wide_form_leaves_out_empty_channels(example):
    workspace, _ = example
    table = pd.DataFrame(
        {"point": ["a", "b"], "CR[0]": [1.0, np.nan], "SR[0]": [1.0, 2.0], "SR[1]": [0.5, 1.0]}
    )
    table["SR[2]"] = 0.25
    signals = load_signals(table).bind(workspace)
    assert [op["path"] for op in signals["a"].operations] == [
        "/channels/0/samples/2",
        "/channels/1/samples/2",
    ]
    assert [op["path"] for op in signals["b"].operations] == ["/channels/1/samples/2"]


def test_defaults_write_samples_as_hepdata_patchsets_do(example):
    """Sample named after the point, the workspace's lumi (none here), staterror_<channel>
    from the uncertainty column, the table's systematics, then the POI's normfactor."""
    workspace, _ = example
    table = pd.DataFrame(
        {
            "point": ["p1"] * 3,
            "channel": ["SR"] * 3,
            "bin": [2, 0, 1],
            "yield": [3.0, 1.0, 2.0],
            "uncertainty": [0.3, 0.1, 0.2],
            "histosys:jes:up": [0.5, 0.0, -0.5],
            "histosys:jes:down": [-0.5, 0.0, 0.5],
            "normsys:sig_xsec:hi": 1.1,
            "normsys:sig_xsec:lo": 0.9,
        }
    )
    (op,) = load_signals(table).bind(workspace)["p1"].operations
    assert op["path"] == "/channels/1/samples/2" and op["value"]["name"] == "p1"
    assert op["value"]["data"] == [1.0, 2.0, 3.0]
    assert op["value"]["modifiers"] == [
        {"data": [0.1, 0.2, 0.3], "name": "staterror_SR", "type": "staterror"},
        {
            "data": {"hi_data": [1.0, 1.0, 4.5], "lo_data": [1.0, 3.0, 1.5]},
            "name": "jes",
            "type": "histosys",
        },
        {"data": {"hi": 1.1, "lo": 0.9}, "name": "sig_xsec", "type": "normsys"},
        {"data": None, "name": "mu_SIG", "type": "normfactor"},
    ]


def test_config_overrides_every_default(tmp_path, example):
    workspace, _ = example
    table = pd.DataFrame(
        {"point": ["p"], "channel": ["CR"], "bin": [0], "yield": [2.0], "uncertainty": [0.5]}
    )
    table["coupling"] = 0.3
    config = {
        "sample": "signal_{point}",
        "poi": "mu_other",
        "lumi": "lumi_run2",
        "uncertainty": {"type": "shapesys", "name": "mc_{sample}_{channel}"},
        "modifiers": [{"name": "xsec", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}],
        "order": ["poi", "uncertainty", "modifiers"],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (op,) = load_signals(table, tmp_path / "c.yaml").bind(workspace)["p"].operations
    assert op["value"]["name"] == "signal_p"
    assert op["value"]["modifiers"] == [
        {"data": None, "name": "mu_other", "type": "normfactor"},
        {"data": [0.5], "name": "mc_signal_p_CR", "type": "shapesys"},
        {"data": {"hi": 1.2, "lo": 0.8}, "name": "xsec", "type": "normsys"},
        {"data": None, "name": "lumi_run2", "type": "lumi"},
    ]


def _error(table, workspace, config=None) -> str:
    with pytest.raises(InvalidSignals) as caught:
        load_signals(table, config).bind(workspace)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _one_point(**columns) -> pd.DataFrame:
    table = pd.DataFrame({"point": ["p"] * 3, "channel": ["SR"] * 3, "bin": [0, 1, 2]})
    table["yield"] = 1.0
    for name, value in columns.items():
        table[name.replace("__", ":")] = value
    return table


def test_errors_name_the_channels_and_bins_the_workspace_lacks(example):
    workspace, _ = example
    table = _one_point()
    table.loc[3] = ["p", "VR1", 0, 1.0]
    table.loc[4] = ["p", "VR2", 0, 1.0]
    assert re.search(
        r"channels VR1, VR2 not in the workspace \(its channels: CR, SR\)", _error(table, workspace)
    )
    beyond = _one_point()
    beyond.loc[3] = ["p", "SR", 3, 1.0]
    assert "SR: bin 3 of bins 0–2" in _error(beyond, workspace)
    assert "point 'p', channel 'SR': bin 1 missing" in _error(_one_point().drop(1), workspace)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"mass": [1.0, 2.0, 1.0]}, "column 'mass' varies within point 'p'"),
        ({"uncertainty": [0.1, np.nan, 0.1]}, "column 'uncertainty': empty in some bins"),
        ({"normsys__x__hi": [1.1, 1.2, 1.1], "normsys__x__lo": 0.9}, "varies over the bins"),
        ({"normsys__x__hi": 1.1}, "column 'normsys:x:lo' is missing"),
        ({"histosys__x__high": 1.0}, "KEY one of hi, lo, up, down"),
        ({"staterror__{nowhere}": 0.1}, "refers to {nowhere}, which is not a column"),
        ({"yield": [1.0, np.nan, 1.0]}, "point 'p', channel 'SR', bin 1: no yield"),
        ({"bin": [0, 1, 1]}, "bin 1 appears more than once"),
        ({"yield": ["a", "b", "c"]}, "column 'yield' holds text"),
    ],
)
def test_table_errors_are_one_line_naming_the_culprit(example, columns, expected):
    assert expected in _error(_one_point(**columns), example[0])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"order": ["lumi", "systematics"]}, "unknown group 'systematics'"),
        ({"uncertainty": {"type": "normsys"}}, "staterror or shapesys"),
        ({"modifiers": [{"name": "x"}]}, "'modifiers[0]' is a pyhf modifier"),
    ],
)
def test_config_errors_name_the_key(example, config, expected):
    assert expected in _error(_one_point(), example[0], config)


def test_form_errors(tmp_path, example):
    assert "no 'point' column" in _error(pd.DataFrame({"x": [1]}), example[0])
    assert "wide form" in _error(pd.DataFrame({"point": ["a"], "x": [1]}), example[0])
    (tmp_path / "t.txt").write_text("point\n")
    assert "is .parquet or .csv" in _error(tmp_path / "t.txt", example[0])


def test_labels_reach_the_results_and_collisions_are_renamed(example):
    workspace, _ = example
    table = _one_point(mass=500.0, model="pMSSM-7", mu=0.3)
    with pytest.warns(spec.SpecWarning, match="label 'mu' is also a column"):
        frame = scan(workspace, load_signals(table))
    row = frame.iloc[0]
    assert (row["mass"], row["model"], row["label_mu"], row["mu"]) == (500.0, "pMSSM-7", 0.3, 1.0)
    assert list(frame.columns[:5]) == ["analysis", "point", "mass", "model", "label_mu"]


def test_signal_scan_equals_patchset_scan_bit_for_bit(example, example_table):
    workspace, patchset = example
    by_patchset = scan(workspace, patchset)
    by_table = scan(workspace, load_signals(*example_table))
    assert (by_table["status"] == "ok").all()
    for column in ["point", "m1", "m2", "status"]:
        assert list(by_table[column]) == list(by_patchset[column])
    for column in COMPARED:
        assert same_float_bits(by_table[column], by_patchset[column]), column


def test_scan_prepares_and_runs_one_chunk_at_a_time(monkeypatch, example, example_table):
    """No point of a chunk is patched before the rows of the chunks before it are out."""
    workspace, _ = example
    signals = load_signals(*example_table).bind(workspace)
    made, seen_at_batch = [], []
    make = type(signals).__getitem__

    def counting(self, name):
        made.append(name)
        return make(self, name)

    monkeypatch.setattr(type(signals), "__getitem__", counting)
    frame = scan(
        workspace,
        signals,
        chunk_size=2,
        on_batch=lambda rows: seen_at_batch.append((len(made), rows[-1]["point"])),
    )
    assert len(frame) == 6 and (frame["status"] == "ok").all() and len(made) == 6
    for made_so_far, last in seen_at_batch:
        assert made_so_far <= (signals.names.index(last) // 2 + 1) * 2


def test_resume_recomputes_only_changed_hypotheses(tmp_path, example, example_table):
    workspace, _ = example
    frame, config = example_table
    output = tmp_path / "out.parquet"
    first = scan_to_parquet(workspace, load_signals(frame, config), output)
    assert first.attrs == {"computed": 6, "reused": 0}
    changed = frame.copy()
    changed.loc[changed["point"] == "sig_500_200", "yield"] *= 2.0
    again = scan_to_parquet(workspace, load_signals(changed, config), output)
    assert again.attrs == {"computed": 1, "reused": 5}
    table, provenance = read_table(output)
    assert provenance["patchset"]["kind"] == "signals"
    assert (
        table.set_index("point").loc["sig_500_200", "cls_obs"]
        < first.set_index("point").loc["sig_500_200", "cls_obs"]
    )


def test_cli_takes_a_table_instead_of_a_patchset(tmp_path, example_table):
    from hfpipe.cli import main

    frame, config = example_table
    frame.to_csv(tmp_path / "signals.csv", index=False)
    (tmp_path / "signals.yaml").write_text(yaml.safe_dump(config))
    background = str(EXAMPLE / "BkgOnly.json")
    out = str(tmp_path / "out.parquet")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "scan",
            background,
            "--signals",
            str(tmp_path / "signals.csv"),
            "--signals-config",
            str(tmp_path / "signals.yaml"),
            "-o",
            out,
        ],
    )
    assert result.exit_code == 0, result.output
    table, _ = read_table(out)
    assert len(table) == 6 and (table["status"] == "ok").all()
    both = runner.invoke(
        main, ["scan", background, str(EXAMPLE / "patchset.json"), "--signals", "x.csv", "-o", out]
    )
    assert both.exit_code == 2 and "exactly one" in both.output


@pytest.mark.slow
@pytest.mark.parametrize("analysis", ["atlas-1lbb", "atlas-3l-erjr"])
def test_published_patchsets_bit_for_bit(load_analysis, analysis):
    """The table made from the published patches makes the published patches, and the
    two scans are one computation: every number of the tables equal to the last bit."""
    workspace, patchset, _ = load_analysis(analysis)
    signals = load_signals(*patchset_to_signals(patchset, workspace))
    bound = signals.bind(workspace)
    made = [bound[name] for name in bound.names]
    assert _patched(workspace, made) == _patched(workspace, patchset)
    by_patchset = scan(workspace, patchset)
    by_table = scan(workspace, signals)
    assert list(by_table["point"]) == list(patchset.names)
    for column in ["status", *patchset.labels]:
        assert list(by_table[column]) == list(by_patchset[column])
    for column in COMPARED:
        assert same_float_bits(by_table[column], by_patchset[column]), column


@pytest.mark.slow
def test_signal_scan_on_dask_equals_the_scan_in_this_process(example, example_table):
    from distributed import Client

    from hfpipe.scanning.cluster import make_cluster

    workspace, _ = example
    signals = load_signals(*example_table)
    here = scan(workspace, signals, batch_size=2)
    config = {"kind": "local", "workers": 2, "cores": 1}
    with make_cluster(config) as cluster, Client(cluster) as client:
        there = scan(workspace, signals, batch_size=2, client=client, chunk_size=4)
    assert list(there["point"]) == list(here["point"]) and (there["status"] == "ok").all()
    for column in COMPARED:
        assert same_float_bits(there[column], here[column]), column


def test_hypotheses_of_one_layout_stack_as_unify_would_make_them(example, example_table):
    """Signal samples named after their points: structures differ by names only, and the
    stacked numbers are those unify makes, bit for bit, without the padding work."""
    import jax

    from hfpipe.model import compile_model
    from hfpipe.scanning.groups import group_points
    from hfpipe.scanning.union import unify

    workspace, _ = example
    frame, config = example_table
    signals = load_signals(frame.drop(columns="sample"), config).bind(workspace)
    models = [compile_model(workspace, patches=[signals[n]]) for n in signals.names]
    compiled = [(m.structure, m.numbers) for m in models]
    assert len({s for s, _ in compiled}) == len(compiled)  # sample names differ
    background = (
        {c["name"]: {s["name"] for s in c["samples"]} for c in workspace["channels"]},
        set(),
    )
    (stacked,) = group_points(compiled, *background)
    (unified,) = unify(compiled, *background)
    for ours, theirs in zip(
        jax.tree.leaves(stacked.numbers), jax.tree.leaves(unified.numbers), strict=True
    ):
        assert ours.dtype == theirs.dtype
        same = same_float_bits if ours.dtype.kind == "f" else np.array_equal
        assert same(ours, theirs)
    assert not stacked.padding_twice_nll.any() and not unified.padding_twice_nll.any()
