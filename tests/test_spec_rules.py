"""hfpipe.spec.rules: the model rules beyond the schema (bin counts, modifier names and
sharing, per-bin layouts, observations), each error naming the file, the JSON path and the
problem in one line.
"""

from __future__ import annotations

import pytest
from spec_helpers import (
    MEAS,
    SR_BKG,
    appendp,
    assert_malformed,
    both,
    delp,
    setp,
)

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")

_MOD = [*SR_BKG, "modifiers"]

WORKSPACE_CASES = [
    pytest.param(
        setp([*SR_BKG, "data"], [50.0, 30.0, 10.0]),
        "channels[0].samples[1].data",
        "all samples of channel 'SR' need the same number of bins",
        id="sample-bin-count",
    ),
    pytest.param(
        setp([*_MOD, 1, "data", "hi_data"], [1.0, 2.0, 3.0]),
        "channels[0].samples[1].modifiers[1].data.hi_data",
        "histosys 'bkg_norm' has 3 entries but sample 'bkg' has 2 bins",
        id="histosys-length",
    ),
    pytest.param(
        setp([*_MOD, 2, "data"], [1.0]),
        "channels[0].samples[1].modifiers[2].data",
        "staterror 'stat_SR' has 1 entry but sample 'bkg' has 2 bins",
        id="staterror-length",
    ),
    pytest.param(
        setp(["channels", 1, "name"], "SR"),
        "channels[1].samples[0].data",
        "all samples of channel 'SR' need the same number of bins (channels[0] and "
        "channels[1] are both named 'SR': pyhf joins them)",
        id="joined-channels-bin-count",
    ),
    pytest.param(
        appendp(_MOD, {"name": "mu", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}),
        "channels[0].samples[1].modifiers[4].name",
        "modifier name 'mu' is already used by a normfactor modifier",
        id="normfactor-normsys-name-clash",
    ),
    pytest.param(
        appendp(_MOD, {"name": "uncorr", "type": "shapesys", "data": [1.0, 1.0]}),
        "channels[1].samples[0].modifiers[0].name",
        "pyhf cannot share a shapesys parameter",
        id="shared-shapesys",
    ),
    pytest.param(
        both(
            appendp(
                ["channels", 0, "samples", 0, "modifiers"],
                {"name": "sf", "type": "shapefactor", "data": None},
            ),
            appendp(
                ["channels", 1, "samples", 0, "modifiers"],
                {"name": "sf", "type": "shapefactor", "data": None},
            ),
        ),
        "channels[0].samples[0].modifiers[2].name",
        "shapefactor 'sf' acts on 2 bins in channel 'SR' but pyhf gives it 1 component, one "
        "per bin of channel 'CR' (its first channel by name)",
        id="shapefactor-bin-mismatch",
    ),
    pytest.param(
        both(
            appendp(
                ["channels", 0, "samples", 0, "modifiers"],
                {"name": "stat_SR", "type": "staterror", "data": [1.0, 1.0]},
            ),
            appendp(
                ["channels", 1, "samples", 0, "modifiers"],
                {"name": "stat_SR", "type": "staterror", "data": [1.0]},
            ),
        ),
        "channels[0].samples[0].modifiers[2]",
        "staterror 'stat_SR' is on sample 'bkg' in channels SR, CR but on sample 'signal' in SR",
        id="staterror-channel-layout",
    ),
    pytest.param(
        delp(["observations", 1]),
        "observations",
        "no observation for channel 'CR'",
        id="missing-observation",
    ),
    pytest.param(
        setp(["observations", 0, "data"], [1.0]),
        "observations[0].data",
        "1 observed bin but channel 'SR' has 2",
        id="observation-length",
    ),
    pytest.param(
        setp(["observations", 0, "data", 1], -3),
        "observations[0].data[1]",
        "observed count -3 is negative",
        id="negative-count",
    ),
    pytest.param(
        appendp([*MEAS, "parameters"], {"name": "stat_SR", "inits": [1.0]}),
        "measurements[0].config.parameters[2].inits",
        "needs 2 entries (one per bin of staterror 'stat_SR'), got 1",
        id="per-bin-setting-length",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), WORKSPACE_CASES)
def test_malformed_workspace(mutate, path, phrase):
    assert_malformed(mutate, path, phrase)
