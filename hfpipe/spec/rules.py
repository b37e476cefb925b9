"""Cross-field rules of a workspace's model and observations that a JSON schema cannot say.

pyhf enforces some of these only when a model is built (often with an opaque error or an
``assert``) and silently accepts others; hfpipe checks them all when the workspace is
loaded, so a bad input fails at once with its JSON path. Run after the schema check: the
code here relies on the structure being right.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from hfpipe.errors import InvalidWorkspace, json_path

__all__ = [
    "CheckedModel",
    "ModelInfo",
    "Parameter",
    "check_model",
    "check_observations",
    "check_patched_model",
]

#: modifier types that may share one parameter name (they describe the same nuisance).
_SHAREABLE_TYPES = frozenset({"normsys", "histosys"})
#: modifier types whose parameter has one component per bin.
PER_BIN_TYPES = frozenset({"shapesys", "staterror", "shapefactor"})


@dataclass
class Parameter:
    """A parameter of the model: its modifier type(s), number of components, first use."""

    name: str
    types: set[str]
    size: int
    where: list
    #: staterror only: sample name -> indices of the channels where it carries the modifier
    staterror_channels: dict[str, list[int]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The modifier type, ``normsys/histosys`` when a name is used by both."""
        return "/".join(sorted(self.types))


@dataclass
class ModelInfo:
    """What the measurement checks need to know about the model."""

    channel_bins: dict[str, int]
    parameters: dict[str, Parameter]


def _count(number: int, noun: str) -> str:
    """``1 bin``, ``2 bins``, ``1 entry``, ``3 entries``."""
    if number == 1:
        return f"1 {noun}"
    return f"{number} {noun[:-1]}ies" if noun.endswith("y") else f"{number} {noun}s"


def _fail(problem: str, file: str, path: list) -> NoReturn:
    raise InvalidWorkspace(problem, file=file, path=path)


def _check_lengths(sample: dict, nbins: int, file: str, here: list) -> None:
    """Per-bin modifier data must have one entry per bin of the sample."""
    for m, modifier in enumerate(sample["modifiers"]):
        at = [*here, "modifiers", m, "data"]
        data = modifier["data"]
        if modifier["type"] == "histosys":
            arrays = [(key, data[key]) for key in ("hi_data", "lo_data")]
        elif modifier["type"] in ("shapesys", "staterror"):
            arrays = [(None, data)]
        else:
            continue
        for key, values in arrays:
            if len(values) != nbins:
                _fail(
                    f"{modifier['type']} '{modifier['name']}' has {_count(len(values), 'entry')} "
                    f"but sample '{sample['name']}' has {_count(nbins, 'bin')}",
                    file,
                    at if key is None else [*at, key],
                )


def _register(
    params: dict[str, Parameter], modifier: dict, nbins: int, file: str, at: list
) -> Parameter:
    """Record a modifier's parameter, enforcing pyhf's name-sharing rules."""
    name, kind = modifier["name"], modifier["type"]
    size = nbins if kind in ("shapesys", "shapefactor") else 1
    known = params.get(name)
    if known is None:
        params[name] = Parameter(name, {kind}, 0 if kind == "staterror" else size, at)
        return params[name]
    if kind not in known.types and not (known.types | {kind}) <= _SHAREABLE_TYPES:
        _fail(
            f"modifier name '{name}' is already used by a {known.kind} modifier "
            f"({json_path(known.where)}); only normsys and histosys may share a name",
            file,
            [*at, "name"],
        )
    if kind == "shapesys":
        _fail(
            f"shapesys '{name}' is already used at {json_path(known.where)}; pyhf cannot "
            "share a shapesys parameter between samples, give each its own name",
            file,
            [*at, "name"],
        )
    if kind == "shapefactor" and known.size != size:
        _fail(
            f"shapefactor '{name}' acts on {_count(nbins, 'bin')} here but on {known.size} at "
            f"{json_path(known.where)}; a shared shapefactor needs channels with the same "
            "number of bins",
            file,
            [*at, "name"],
        )
    known.types.add(kind)
    return known


def _check_staterrors(ws: dict, params: dict[str, Parameter], file: str) -> None:
    """A staterror spans the bins of the channels it is in; pyhf needs every sample that
    carries it to carry it in the same channels (it asserts otherwise)."""
    channels = ws["channels"]
    for param in params.values():
        if "staterror" not in param.types:
            continue
        layouts = iter(param.staterror_channels.items())
        first_sample, first = next(layouts)
        for sample, chans in layouts:
            if chans != first:
                names = [channels[c]["name"] for c in chans]
                expected = [channels[c]["name"] for c in first]
                _fail(
                    f"staterror '{param.name}' is on sample '{sample}' in channels "
                    f"{', '.join(names)} but on sample '{first_sample}' in "
                    f"{', '.join(expected)}; every sample sharing a staterror must have it "
                    "in the same channels",
                    file,
                    param.where,
                )
        param.size = sum(len(channels[c]["samples"][0]["data"]) for c in first)


def check_model(ws: dict, file: str) -> ModelInfo:
    """Check channels, samples and modifiers; return the channel sizes and parameters.

    Rules: unique channel names; unique sample names within a channel; every sample of a
    channel with the same number of bins, and per-bin modifier data (histosys hi/lo,
    shapesys, staterror) of that length too; a modifier appears once per sample; modifier
    names shared only as pyhf allows (same type, or normsys with histosys; never shapesys;
    shapefactor only over channels of equal size; staterror with consistent channels).
    """
    params: dict[str, Parameter] = {}
    channel_bins = _check_channels(ws, file, params, known={})
    _check_staterrors(ws, params, file)
    return ModelInfo(channel_bins, params)


@dataclass(frozen=True, eq=False)
class CheckedModel:
    """What :func:`check_model` found in a workspace, kept to check patched copies of it.

    ``samples`` holds the workspace's sample dicts: while they live, no other object can
    have their ids, so a patched workspace's samples are recognised by identity.
    """

    info: ModelInfo
    channel_of: dict[int, int]  # id of each sample dict -> index of its channel
    samples: tuple[dict, ...]

    @classmethod
    def of(cls, ws: dict, file: str) -> CheckedModel:
        """Check ``ws`` (see :func:`check_model`) and record its samples."""
        info = check_model(ws, file)
        pairs = [(c, sample) for c, ch in enumerate(ws["channels"]) for sample in ch["samples"]]
        return cls(info, {id(s): c for c, s in pairs}, tuple(s for _, s in pairs))


def check_patched_model(ws: dict, file: str, base: CheckedModel) -> ModelInfo:
    """:func:`check_model` for a workspace patched from ``base``'s, walking the modifiers
    of new samples only.

    :func:`~hfpipe.spec.apply_patches` shares the samples a patch leaves alone with the
    base workspace, so they are found by identity; when every one of them is still in its
    channel (same index), its own checks hold and its parameters are registered already,
    and only the samples the patches added or changed need the walk over modifiers (the
    signal samples of a patchset: on ATLAS 1Lbb, 5 of 74 samples, 530 of 10,000
    modifiers). Otherwise (a patch removed or moved a base sample) this is check_model.

    The verdict is check_model's, as name clashes do not depend on the order modifiers
    are met in; an error's wording and path may not be (the first clash met, the first
    use it names), so callers that need check_model's exact error run it on failure. The
    parameters' ``where`` may name the base's paths.
    """
    if not _keeps_samples(ws, base):
        return check_model(ws, file)
    params = {name: _copy_parameter(p) for name, p in base.info.parameters.items()}
    channel_bins = _check_channels(ws, file, params, known=base.channel_of)
    _check_staterrors(ws, params, file)
    return ModelInfo(channel_bins, params)


def _keeps_samples(ws: dict, base: CheckedModel) -> bool:
    """Whether each of the base's samples is in ``ws`` once, in the channel it was in."""
    places = [
        (id(sample), c)
        for c, channel in enumerate(ws["channels"])
        for sample in channel["samples"]
        if id(sample) in base.channel_of
    ]
    return len({key for key, _ in places}) == len(places) == len(base.samples) and all(
        base.channel_of[key] == c for key, c in places
    )


def _copy_parameter(param: Parameter) -> Parameter:
    """A copy of a registered parameter that registering more modifiers can change."""
    layout = {sample: list(chans) for sample, chans in param.staterror_channels.items()}
    return Parameter(param.name, set(param.types), param.size, param.where, layout)


def _check_channels(
    ws: dict, file: str, params: dict[str, Parameter], known: Mapping[int, int]
) -> dict[str, int]:
    """Check channel and sample names and sizes, then each sample's modifiers (registering
    their parameters in ``params``), except those of the samples in ``known`` (ids of
    sample dicts checked and registered before). Returns the bins of each channel."""
    channel_bins: dict[str, int] = {}
    channel_at: dict[str, int] = {}
    for c, channel in enumerate(ws["channels"]):
        cname = channel["name"]
        if cname in channel_at:
            _fail(
                f"duplicate channel name '{cname}' (first used by channels[{channel_at[cname]}])",
                file,
                ["channels", c, "name"],
            )
        channel_at[cname] = c
        first = channel["samples"][0]
        nbins = channel_bins[cname] = len(first["data"])
        sample_at: dict[str, int] = {}
        for s, sample in enumerate(channel["samples"]):
            here = ["channels", c, "samples", s]
            if sample["name"] in sample_at:
                _fail(
                    f"duplicate sample name '{sample['name']}' in channel '{cname}' "
                    f"(first: samples[{sample_at[sample['name']]}])",
                    file,
                    [*here, "name"],
                )
            sample_at[sample["name"]] = s
            if len(sample["data"]) != nbins:
                _fail(
                    f"sample '{sample['name']}' has {_count(len(sample['data']), 'bin')} but sample "
                    f"'{first['name']}' has {nbins}; all samples of channel '{cname}' need "
                    "the same number of bins",
                    file,
                    [*here, "data"],
                )
            if id(sample) not in known:
                _check_modifiers(sample, nbins, c, params, file, here)
    return channel_bins


def _check_modifiers(
    sample: dict, nbins: int, c: int, params: dict[str, Parameter], file: str, here: list
) -> None:
    """A sample's modifiers: data lengths, no repeats; register their parameters."""
    _check_lengths(sample, nbins, file, here)
    seen: dict[tuple[str, str], int] = {}
    for m, modifier in enumerate(sample["modifiers"]):
        key = (modifier["name"], modifier["type"])
        if key in seen:
            _fail(
                f"{modifier['type']} modifier '{modifier['name']}' appears twice in "
                f"sample '{sample['name']}' (first: modifiers[{seen[key]}])",
                file,
                [*here, "modifiers", m, "name"],
            )
        seen[key] = m
        param = _register(params, modifier, nbins, file, [*here, "modifiers", m])
        if modifier["type"] == "staterror":
            # in channel order: a patch's sample may come after those of later channels
            bisect.insort(param.staterror_channels.setdefault(sample["name"], []), c)


def check_observations(ws: dict, model: ModelInfo, file: str) -> None:
    """Exactly one observation per channel, of the channel's size, with counts >= 0."""
    known = model.channel_bins
    seen: dict[str, int] = {}
    for o, observation in enumerate(ws["observations"]):
        name, data = observation["name"], observation["data"]
        if name not in known:
            channels = ", ".join(list(known)[:10]) + (", …" if len(known) > 10 else "")
            _fail(
                f"observation for unknown channel '{name}' (channels: {channels})",
                file,
                ["observations", o, "name"],
            )
        if name in seen:
            _fail(
                f"second observation for channel '{name}' (first: observations[{seen[name]}])",
                file,
                ["observations", o, "name"],
            )
        seen[name] = o
        if len(data) != known[name]:
            _fail(
                f"{_count(len(data), 'observed bin')} but channel '{name}' has {known[name]}",
                file,
                ["observations", o, "data"],
            )
        for b, count in enumerate(data):
            if count < 0:
                _fail(f"observed count {count} is negative", file, ["observations", o, "data", b])
    missing = [name for name in known if name not in seen]
    if missing:
        _fail(f"no observation for channel '{missing[0]}'", file, ["observations"])
