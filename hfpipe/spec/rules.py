"""Cross-field rules of a workspace's model and observations that a JSON schema cannot say.

pyhf enforces some of these only when a model is built (often with an opaque error or an
``assert``) and silently accepts others; hfpipe checks them all when the workspace is
loaded, so a bad input fails at once with its JSON path. What pyhf silently ignores or
overwrites (repeated names, observations of channels the model lacks, empty names) is
accepted as pyhf accepts it, with a :class:`~hfpipe.spec.leniency.SpecWarning` (see
:mod:`hfpipe.spec.leniency`); the checks here judge only what pyhf keeps. Run after the
schema check: the code here relies on the structure being right.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from hfpipe.errors import InvalidWorkspace, json_path

from .leniency import kept_modifiers, kept_samples, warn_input
from .modifiers import SHAREABLE_TYPES

__all__ = [
    "CheckedModel",
    "ModelInfo",
    "Parameter",
    "check_model",
    "check_observations",
    "check_patched_model",
]


@dataclass
class Parameter:
    """A parameter of the model: its modifier type(s), number of components, first use."""

    name: str
    types: set[str]
    size: int
    where: list
    #: staterror only: sample name -> first indices of the channels (by name) where the
    #: sample carries the modifier, in file order
    staterror_channels: dict[str, list[int]] = field(default_factory=dict)
    #: shapefactor only: channel name -> JSON path of the modifier's first use there
    shapefactor_channels: dict[str, list] = field(default_factory=dict)

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


def _check_lengths(sample: dict, modifier: dict, nbins: int, file: str, at: list) -> None:
    """Per-bin modifier data must have one entry per bin of the sample."""
    data = modifier["data"]
    if modifier["type"] == "histosys":
        arrays = [(key, data[key]) for key in ("hi_data", "lo_data")]
    elif modifier["type"] in ("shapesys", "staterror"):
        arrays = [(None, data)]
    else:
        return
    for key, values in arrays:
        if len(values) != nbins:
            _fail(
                f"{modifier['type']} '{modifier['name']}' has {_count(len(values), 'entry')} "
                f"but sample '{sample['name']}' has {_count(nbins, 'bin')}",
                file,
                [*at, "data"] if key is None else [*at, "data", key],
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
    if kind not in known.types and not (known.types | {kind}) <= SHAREABLE_TYPES:
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
    known.types.add(kind)
    return known


def _check_staterrors(
    channels: list, channel_bins: dict[str, int], params: dict[str, Parameter], file: str
) -> None:
    """A staterror spans the bins of the channels it is in; pyhf needs every sample that
    carries it to carry it in the same channels (it asserts otherwise)."""
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
        param.size = sum(channel_bins[channels[c]["name"]] for c in first)


def _check_shapefactors(
    channel_bins: dict[str, int], params: dict[str, Parameter], file: str
) -> None:
    """A shapefactor shared by channels has one component per bin of the first of them by
    name (pyhf's choice), and bin i of each channel takes component i: a channel with more
    bins than that first one would run out of components (pyhf then takes an unrelated
    parameter), so it is refused."""
    for param in params.values():
        if "shapefactor" not in param.types:
            continue
        first = min(param.shapefactor_channels)
        param.size = channel_bins[first]
        for channel, at in param.shapefactor_channels.items():
            if channel_bins[channel] > param.size:
                _fail(
                    f"shapefactor '{param.name}' acts on {_count(channel_bins[channel], 'bin')} "
                    f"in channel '{channel}' but pyhf gives it {_count(param.size, 'component')}, "
                    f"one per bin of channel '{first}' (its first channel by name); a shared "
                    "shapefactor needs its first channel by name to have the most bins",
                    file,
                    [*at, "name"],
                )


def _finish(
    ws: dict, channel_bins: dict[str, int], params: dict[str, Parameter], file: str
) -> ModelInfo:
    """The checks that need every parameter registered; the model's summary."""
    _check_staterrors(ws["channels"], channel_bins, params, file)
    _check_shapefactors(channel_bins, params, file)
    return ModelInfo(channel_bins, params)


def check_model(ws: dict, file: str, *, warn: bool = True) -> ModelInfo:
    """Check channels, samples and modifiers; return the channel sizes and parameters.

    Judges what pyhf keeps (:mod:`hfpipe.spec.leniency`): channels of one name are one
    channel, a later sample of a name replaces an earlier one in it, and the last of a
    sample's modifiers of one name and type counts; with ``warn``, each item pyhf ignores
    (and each empty name) gets a :class:`~hfpipe.spec.SpecWarning`. Rules: every sample
    of a channel with the same number of bins, and per-bin modifier data (histosys
    hi/lo, shapesys, staterror) of that length too; a shapesys at most once per sample;
    modifier names shared only as pyhf allows (same type, or normsys with histosys; never
    shapesys; a shapefactor's first channel by name with the most bins; staterror with
    consistent channels).
    """
    params: dict[str, Parameter] = {}
    channel_bins = _check_channels(ws, file, params, known={}, warn=warn)
    return _finish(ws, channel_bins, params, file)


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
        """Check ``ws`` (see :func:`check_model`, without warnings: it was validated
        before) and record its samples."""
        info = check_model(ws, file, warn=False)
        pairs = [(c, sample) for c, ch in enumerate(ws["channels"]) for sample in ch["samples"]]
        return cls(info, {id(s): c for c, s in pairs}, tuple(s for _, s in pairs))


def check_patched_model(ws: dict, file: str, base: CheckedModel) -> ModelInfo:
    """:func:`check_model` for a workspace patched from ``base``'s, walking the modifiers
    of new samples only.

    :func:`~hfpipe.spec.apply_patches` shares the samples a patch leaves alone with the
    base workspace, so they are found by identity; when every one of them is still in its
    channel (same index) and no name repeats (nothing that pyhf would drop), its own
    checks hold and its parameters are registered already, and only the samples the
    patches added or changed need the walk over modifiers (the signal samples of a
    patchset: on ATLAS 1Lbb, 5 of 74 samples, 530 of 10,000 modifiers). Otherwise (a
    patch removed or moved a base sample, or repeated a name) this is check_model.

    The verdict is check_model's, as name clashes do not depend on the order modifiers
    are met in; an error's wording and path may not be (the first clash met, the first
    use it names), so callers that need check_model's exact error run it on failure. The
    parameters' ``where`` may name the base's paths.
    """
    if not _keeps_samples(ws, base) or _repeats_names(ws):
        return check_model(ws, file)
    params = {name: _copy_parameter(p) for name, p in base.info.parameters.items()}
    channel_bins = _check_channels(ws, file, params, known=base.channel_of, warn=True)
    return _finish(ws, channel_bins, params, file)


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


def _repeats_names(ws: dict) -> bool:
    """Whether a channel name repeats, or a sample name within a channel name."""
    groups = kept_samples(ws["channels"])
    return sum(map(len, groups.values())) != sum(len(c["samples"]) for c in ws["channels"])


def _copy_parameter(param: Parameter) -> Parameter:
    """A copy of a registered parameter that registering more modifiers can change."""
    layout = {sample: list(chans) for sample, chans in param.staterror_channels.items()}
    shapefactor = dict(param.shapefactor_channels)
    return Parameter(param.name, set(param.types), param.size, param.where, layout, shapefactor)


def _warn_dropped(channels: list, kept: dict, file: str) -> None:
    """A SpecWarning for each channel pyhf joins with an earlier one of its name, each
    sample it ignores (a later one has its name) and each empty name."""
    first_of: dict[str, int] = {}
    for c, channel in enumerate(channels):
        cname = channel["name"]
        if cname == "":
            warn_input(file, ["channels", c, "name"], "empty channel name (pyhf accepts it)")
        if cname in first_of:
            warn_input(
                file,
                ["channels", c, "name"],
                f"a second channel named '{cname}' (first: channels[{first_of[cname]}]); "
                "pyhf joins their samples into one channel, and so does hfpipe",
            )
        first_of.setdefault(cname, c)
    for c, channel in enumerate(channels):
        for s, sample in enumerate(channel["samples"]):
            at = ["channels", c, "samples", s, "name"]
            if sample["name"] == "":
                warn_input(file, at, "empty sample name (pyhf accepts it)")
            c2, s2 = kept[channel["name"]][sample["name"]]
            if (c2, s2) != (c, s):
                warn_input(
                    file,
                    at,
                    f"sample '{sample['name']}' of channel '{channel['name']}' is ignored: "
                    f"channels[{c2}].samples[{s2}] has the same name, and pyhf keeps the last",
                )


def _check_channels(
    ws: dict, file: str, params: dict[str, Parameter], known: Mapping[int, int], warn: bool
) -> dict[str, int]:
    """Check the sizes of the samples pyhf keeps, then each one's modifiers (registering
    their parameters in ``params``), except those of the samples in ``known`` (ids of
    sample dicts checked and registered before). Returns the bins of each channel."""
    channels = ws["channels"]
    kept = kept_samples(channels)
    if warn:
        _warn_dropped(channels, kept, file)
    position: dict[str, int] = {}
    for c, channel in enumerate(channels):
        position.setdefault(channel["name"], c)
    channel_bins: dict[str, int] = {}
    first_at: dict[str, tuple[int, int]] = {}
    for c, s in sorted(where for group in kept.values() for where in group.values()):
        cname = channels[c]["name"]
        sample = channels[c]["samples"][s]
        here = ["channels", c, "samples", s]
        nbins = channel_bins.setdefault(cname, len(sample["data"]))
        c0, s0 = first_at.setdefault(cname, (c, s))
        if len(sample["data"]) != nbins:
            joined = (
                f" (channels[{c0}] and channels[{c}] are both named '{cname}': pyhf joins them)"
                if c0 != c
                else ""
            )
            _fail(
                f"sample '{sample['name']}' has {_count(len(sample['data']), 'bin')} but sample "
                f"'{channels[c0]['samples'][s0]['name']}' has {nbins}; all samples of channel "
                f"'{cname}' need the same number of bins{joined}",
                file,
                [*here, "data"],
            )
        if id(sample) not in known:
            _check_modifiers(sample, nbins, position[cname], cname, params, file, here, warn)
    return channel_bins


def _check_modifiers(
    sample: dict,
    nbins: int,
    position: int,
    cname: str,
    params: dict[str, Parameter],
    file: str,
    here: list,
    warn: bool,
) -> None:
    """A sample's modifiers: a shapesys at most once (pyhf refuses a repeat); of the others
    the last of a name and type counts, and the ones before it are ignored (with a
    warning); data lengths of the kept ones; register their parameters."""
    modifiers = sample["modifiers"]
    kept = kept_modifiers(modifiers)
    first: dict[tuple[str, str], int] = {}
    for m, modifier in enumerate(modifiers):
        key = (modifier["type"], modifier["name"])
        if key in first and modifier["type"] == "shapesys":
            _fail(
                f"shapesys modifier '{modifier['name']}' appears twice in sample "
                f"'{sample['name']}' (first: modifiers[{first[key]}]); pyhf refuses that",
                file,
                [*here, "modifiers", m, "name"],
            )
        first.setdefault(key, m)
    if warn:
        _warn_modifiers(sample, kept, file, here)
    for (kind, _), m in sorted(kept.items(), key=lambda item: item[1]):
        at = [*here, "modifiers", m]
        modifier = modifiers[m]
        _check_lengths(sample, modifier, nbins, file, at)
        param = _register(params, modifier, nbins, file, at)
        if kind == "staterror":
            # in file order: a patch's sample may come after those of later channels
            chans = param.staterror_channels.setdefault(sample["name"], [])
            if position not in chans:
                bisect.insort(chans, position)
        elif kind == "shapefactor":
            param.shapefactor_channels.setdefault(cname, at)


def _warn_modifiers(sample: dict, kept: dict[tuple[str, str], int], file: str, here: list) -> None:
    """A SpecWarning for each modifier pyhf ignores (a later one repeats its name and
    type) and each empty modifier name."""
    for m, modifier in enumerate(sample["modifiers"]):
        at = [*here, "modifiers", m, "name"]
        if modifier["name"] == "":
            warn_input(file, at, "empty modifier name (pyhf accepts it)")
        last = kept[(modifier["type"], modifier["name"])]
        if last != m:
            warn_input(
                file,
                at,
                f"{modifier['type']} modifier '{modifier['name']}' of sample '{sample['name']}' "
                f"is ignored: modifiers[{last}] repeats it, and pyhf keeps the last",
            )


def check_observations(ws: dict, model: ModelInfo, file: str, *, warn: bool = True) -> None:
    """Exactly one observation pyhf uses per channel, of the channel's size, with counts
    >= 0. pyhf uses the last observation of a channel and ignores observations of channels
    the model lacks (with ``warn``, each ignored one gets a SpecWarning); neither kind is
    checked further, as neither enters the likelihood."""
    known = model.channel_bins
    observations = ws["observations"]
    last = {observation["name"]: o for o, observation in enumerate(observations)}
    for o, observation in enumerate(observations):
        name, data = observation["name"], observation["data"]
        at = ["observations", o]
        if name not in known or last[name] != o:
            if warn:
                warn_input(file, [*at, "name"], _ignored_observation(name, known, last[name]))
            continue
        if len(data) != known[name]:
            _fail(
                f"{_count(len(data), 'observed bin')} but channel '{name}' has {known[name]}",
                file,
                [*at, "data"],
            )
        for b, count in enumerate(data):
            if count < 0:
                _fail(f"observed count {count} is negative", file, [*at, "data", b])
    missing = [name for name in known if name not in last]
    if missing:
        _fail(f"no observation for channel '{missing[0]}'", file, ["observations"])


def _ignored_observation(name: str, known: Mapping[str, int], last: int) -> str:
    """Why pyhf ignores an observation of channel ``name`` (``last``: the index of the
    channel's last observation)."""
    if name in known:
        return (
            f"observation of channel '{name}' is ignored: observations[{last}] is a later "
            "one for that channel, and pyhf keeps the last"
        )
    channels = ", ".join(list(known)[:10]) + (", …" if len(known) > 10 else "")
    return (
        f"observation of channel '{name}' is ignored: the model has no such channel "
        f"(channels: {channels}), and pyhf ignores it"
    )
