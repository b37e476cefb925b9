"""Write the bundled example likelihood: a pyhf background-only workspace plus a patchset.

A small but realistic two-channel model in the HEPData layout (``BkgOnly.json`` and
``patchset.json``, both schema 1.0.0): a one-bin control region ``CR`` constraining the
ttbar normalisation and a three-bin signal region ``SR``. Six signal points
``sig_<m1>_<m2>`` add a ``signal`` sample whose yield falls with ``m1``, so the light
points are excluded at mu_SIG = 1 and the heavy ones are not.

Everything is fixed numbers (no randomness); JSON is written with ``indent=1`` and sorted
keys, so rerunning the script reproduces the committed files byte for byte::

    python3 examples/make_example.py            # writes examples/example/
    python3 examples/make_example.py OUT_DIR    # writes OUT_DIR/
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "example"

CHANNELS = ("CR", "SR")  # patch paths index channels in this order

# nominal background yields per bin
TTBAR = {"CR": [152.0], "SR": [11.8, 6.1, 2.4]}
WJETS = {"CR": [63.5], "SR": [5.2, 2.9, 1.1]}
# absolute MC statistical uncertainties per bin
TTBAR_STAT = {"CR": [4.1], "SR": [1.2, 0.8, 0.5]}
WJETS_STAT = {"CR": [3.3], "SR": [1.0, 0.7, 0.4]}
# relative jet energy scale shifts per bin (up; down is roughly symmetric)
JES_TTBAR = {"CR": [0.03], "SR": [0.06, 0.08, 0.11]}
JES_WJETS = {"CR": [0.05], "SR": [0.09, 0.12, 0.15]}
# observed counts: close to the total background
OBSERVED = {"CR": [219.0], "SR": [18.0, 8.0, 4.0]}

# signal points (m1, m2); m1 sets the cross-section, m2 the spectrum across SR bins
POINTS = ((300, 100), (400, 100), (500, 200), (600, 200), (700, 300), (800, 300))


def _round(values: list[float], digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def _histosys(nominal: list[float], shift: list[float], down_scale: float) -> dict:
    """A jes-like shape variation: up by ``shift``, down by ``down_scale * shift``."""
    return {
        "hi_data": _round([n * (1 + s) for n, s in zip(nominal, shift, strict=True)]),
        "lo_data": _round([n * (1 - down_scale * s) for n, s in zip(nominal, shift, strict=True)]),
    }


def background_sample(name: str, channel: str) -> dict:
    if name == "ttbar":
        nominal, stat, jes = TTBAR[channel], TTBAR_STAT[channel], JES_TTBAR[channel]
        modifiers = [
            {"name": "mu_ttbar", "type": "normfactor", "data": None},
            {"name": "xsec_ttbar", "type": "normsys", "data": {"hi": 1.06, "lo": 0.95}},
            {"name": "jes", "type": "histosys", "data": _histosys(nominal, jes, 0.9)},
        ]
    else:
        nominal, stat, jes = WJETS[channel], WJETS_STAT[channel], JES_WJETS[channel]
        modifiers = [
            {"name": "xsec_wjets", "type": "normsys", "data": {"hi": 1.12, "lo": 0.87}},
            {"name": "jes", "type": "histosys", "data": _histosys(nominal, jes, 1.1)},
        ]
    modifiers.append({"name": f"staterror_{channel}", "type": "staterror", "data": list(stat)})
    return {"name": name, "data": list(nominal), "modifiers": modifiers}


def background_workspace() -> dict:
    return {
        "channels": [
            {
                "name": ch,
                "samples": [background_sample("ttbar", ch), background_sample("wjets", ch)],
            }
            for ch in CHANNELS
        ],
        "observations": [{"name": ch, "data": list(OBSERVED[ch])} for ch in CHANNELS],
        "measurements": [
            {
                "name": "NormalMeasurement",
                "config": {
                    "poi": "mu_SIG",
                    "parameters": [
                        {"name": "mu_SIG", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                        {"name": "mu_ttbar", "bounds": [[0.0, 5.0]], "inits": [1.0]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }


def signal_yields(m1: int, m2: int) -> dict[str, list[float]]:
    """Signal per bin: total falls exponentially with m1; heavier m2 shifts it to later bins."""
    total = 24.0 * math.exp(-(m1 - 300) / 140.0)
    hardness = (m1 - m2) / 500.0  # 0.4 .. 1.0
    weights = [1.0 - 0.5 * hardness, 1.0, 0.5 + hardness]
    norm = sum(weights)
    sr = [total * w / norm for w in weights]
    cr = [0.02 * total]  # a little leakage into the control region
    return {"CR": _round(cr), "SR": _round(sr)}


def signal_sample(channel: str, yields: list[float]) -> dict:
    return {
        "name": "signal",
        "data": yields,
        "modifiers": [
            {"name": "mu_SIG", "type": "normfactor", "data": None},
            {"name": "sig_xsec", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
            {
                "name": f"staterror_{channel}",
                "type": "staterror",
                "data": _round([0.08 * y for y in yields]),
            },
        ],
    }


def digest(ws: dict) -> str:
    """pyhf.utils.digest: sha256 of the sorted-key JSON dump (default separators)."""
    text = json.dumps(ws, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf8")).hexdigest()


def patchset(ws: dict) -> dict:
    patches = []
    for m1, m2 in POINTS:
        yields = signal_yields(m1, m2)
        operations = [
            {
                "op": "add",
                "path": f"/channels/{index}/samples/-",
                "value": signal_sample(channel, yields[channel]),
            }
            for index, channel in enumerate(CHANNELS)
        ]
        patches.append(
            {"metadata": {"name": f"sig_{m1}_{m2}", "values": [m1, m2]}, "patch": operations}
        )
    return {
        "metadata": {
            "name": "hfpipe-example",
            "description": "hfpipe bundled example: signal points sig_<m1>_<m2> over BkgOnly.json",
            "digests": {"sha256": digest(ws)},
            "labels": ["m1", "m2"],
            # pyhf's schema needs an Inspire id here (^ins[0-9]{7}$): a placeholder, no real record
            "references": {"hepdata": "ins0000000"},
        },
        "patches": patches,
        "version": "1.0.0",
    }


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf8")


def main(out: Path = DEFAULT_OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ws = background_workspace()
    write_json(out / "BkgOnly.json", ws)
    write_json(out / "patchset.json", patchset(ws))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
