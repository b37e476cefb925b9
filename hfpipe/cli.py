"""The ``hfpipe`` command line: ``cls``, ``fit``, ``scan`` and ``inspect``.

Bad input ends in one line on stderr (file, JSON path, problem) and exit code 2; pass
``--debug`` for the traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from dataclasses import dataclass, fields

import click
import numpy as np

from hfpipe.commands import one_line_errors as _one_line_errors
from hfpipe.commands import warn as _warn
from hfpipe.commands.campaign import campaign
from hfpipe.commands.contour import brazil, contour
from hfpipe.commands.convert import convert
from hfpipe.commands.toys import merge_toys, toy_cls, toy_options
from hfpipe.commands.workflow import merge, prepare
from hfpipe.errors import HfpipeError
from hfpipe.model.interpolation import HISTOSYS_CODES, NORMSYS_CODES

__all__ = ["main"]


_CLIP_OPTION = click.option(
    "--clip-negative-yields",
    is_flag=True,
    help="Fit models with negative expected yields, clipping them at a small positive "
    "floor in the likelihood (off: such models are rejected).",
)


@dataclass(frozen=True)
class ModelInputs:
    """What the model options of ``cls`` and ``fit`` name: a workspace, the patches to
    apply (files and/or one patchset point) and the compile settings."""

    workspace: str
    patches: tuple[str, ...]
    patchset: str | None
    point: str | None
    measurement: str | None
    normsys_code: str
    histosys_code: str
    clip_negative_yields: bool

    def compile(self):
        """Load, patch (checking the patchset against the workspace) and compile."""
        from hfpipe import spec
        from hfpipe.model import compile_model

        ws = spec.load_workspace(self.workspace)
        chosen = [
            spec.Patch(path, (), tuple(spec.load_patch(path)), source=path) for path in self.patches
        ]
        if (self.patchset is None) != (self.point is None):
            raise HfpipeError("--patchset and --point go together")
        if self.patchset is not None:
            loaded = spec.load_patchset(self.patchset)
            spec.verify_patchset(loaded, ws, file=self.patchset)
            chosen.append(loaded[self.point])
        return compile_model(
            ws,
            patches=chosen,
            measurement=self.measurement,
            normsys_code=self.normsys_code,
            histosys_code=self.histosys_code,
            clip_negative_yields=self.clip_negative_yields,
            file=self.workspace,
        )


def _model_options(command):
    """Add the model options to a command, which receives them as one ``ModelInputs``
    (its first argument)."""

    @functools.wraps(command)
    def with_inputs(**kwargs):
        inputs = ModelInputs(**{f.name: kwargs.pop(f.name) for f in fields(ModelInputs)})
        return command(inputs, **kwargs)

    options = [
        click.argument("workspace", type=click.Path(dir_okay=False)),
        click.option(
            "-p",
            "--patch",
            "patches",
            multiple=True,
            type=click.Path(dir_okay=False),
            help="JSON Patch file applied to the workspace (repeatable, in order).",
        ),
        click.option(
            "--patchset",
            type=click.Path(dir_okay=False),
            help="pyhf PatchSet file; pick its point with --point.",
        ),
        click.option("--point", help="Name of the patchset's point to apply."),
        click.option("--measurement", help="Measurement name (default: the first)."),
        click.option(
            "--normsys-code", type=click.Choice(NORMSYS_CODES), default="code4", show_default=True
        ),
        click.option(
            "--histosys-code",
            type=click.Choice(HISTOSYS_CODES),
            default="code4p",
            show_default=True,
        ),
        _CLIP_OPTION,
    ]
    for option in reversed(options):
        with_inputs = option(with_inputs)
    return with_inputs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hfpipe")
def main() -> None:
    """Large-scale HistFactory limit scans with a batched JAX engine."""


@main.command()
@_model_options
@click.option(
    "--test-stat", type=click.Choice(["qtilde", "q", "q0"]), default="qtilde", show_default=True
)
@click.option("--poi-value", type=float, default=1.0, show_default=True)
@toy_options
@_one_line_errors
def cls(inputs: ModelInputs, test_stat, poi_value, **toy_settings):
    """CLs of WORKSPACE at --poi-value (JSON on stdout, pyhf's keys), asymptotic or toy-based.

    CLs_exp lists the expected CLs at -2σ, -1σ, median, +1σ, +2σ. For q0 the values are
    the discovery p-values.
    """
    from hfpipe.infer import hypotest_batch

    model = inputs.compile()
    if toy_settings.pop("calctype") == "toybased":
        named = {"workspace": inputs.workspace, "patches": list(inputs.patches)}
        named |= {"patchset": inputs.patchset, "point": inputs.point}
        toy_cls(model, poi_value, test_stat, named, **toy_settings)
        return
    result = hypotest_batch(model.structure, model.numbers, poi_value, test_stat=test_stat)
    if not result.converged[0]:
        _warn(result.message[0])
    if result.warning[0]:
        _warn(result.warning[0])
    output = {"CLs_obs": float(result.cls_obs[0]), "CLs_exp": result.cls_exp[0].tolist()}
    if not result.converged[0]:
        output["status"] = "failed"
        output["message"] = result.message[0]
    click.echo(json.dumps(output))
    sys.exit(0 if result.converged[0] else 3)


@main.command()
@_model_options
@click.option("--fixed-poi", type=float, help="Hold the POI at this value.")
@_one_line_errors
def fit(inputs: ModelInputs, fixed_poi):
    """Maximum-likelihood fit: best-fit values, Hesse uncertainties, -2 log L."""
    import jax.numpy as jnp

    from hfpipe.infer import fit_batch, hesse_uncertainties
    from hfpipe.infer.fit import covariance_warning

    model = inputs.compile()
    numbers = model.numbers
    init, fixed = np.array(numbers.init), np.array(numbers.fixed)
    if fixed_poi is not None:
        init[model.poi_index], fixed[model.poi_index] = fixed_poi, True
    data = jnp.asarray(model.observed_data())
    result = fit_batch(model.structure, numbers, data[None], init=init, fixed=fixed)
    covariance, errors = hesse_uncertainties(model.structure, numbers, result.pars[0], data, fixed)
    names = model.parameter_names
    warning = "; ".join(filter(None, [result.warning[0], covariance_warning(covariance, fixed)]))
    if not result.converged[0]:
        _warn(result.message[0])
    if warning:
        _warn(warning)
    click.echo(
        json.dumps(
            {
                "bestfit": dict(zip(names, result.pars[0].tolist(), strict=True)),
                "uncertainties": dict(zip(names, errors.tolist(), strict=True)),
                "twice_nll": float(result.twice_nll[0]),
                "converged": bool(result.converged[0]),
                "edm": float(result.edm[0]),
                "warning": warning,
            }
        )
    )
    sys.exit(0 if result.converged[0] else 3)


@main.command()
@click.argument("background", type=click.Path(dir_okay=False))
@click.argument("patchset", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Parquet file to write (atomically).",
)
@click.option("--points", help="Comma-separated patch names (default: all).")
@click.option("--analysis", help="Analysis name in the table (default: the patchset's).")
@click.option("--upper-limits", is_flag=True, help="Also compute upper limits on the POI.")
@click.option(
    "--cl",
    type=float,
    default=0.95,
    show_default=True,
    help="Confidence level of the upper limits.",
)
@click.option(
    "--test-stat", type=click.Choice(["qtilde", "q"]), default="qtilde", show_default=True
)
@click.option("--poi-value", type=float, default=1.0, show_default=True)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Points per compiled call (default: 1 on a CPU, 64 on a GPU).",
)
@click.option("--measurement", help="Measurement name (default: the first).")
@click.option(
    "--normsys-code", type=click.Choice(NORMSYS_CODES), default="code4", show_default=True
)
@click.option(
    "--histosys-code", type=click.Choice(HISTOSYS_CODES), default="code4p", show_default=True
)
@click.option(
    "--scheduler",
    help="Run the batches on Dask: local (a LocalCluster), slurm, condor (dask-jobqueue,"
    " see --cluster-config) or a scheduler address (tcp://host:8786). Default: in this process.",
)
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML cluster config for --scheduler local|slurm|condor (cores, memory, gpus, ...).",
)
@click.option("--workers", type=int, help="Dask workers (local) or batch jobs to start.")
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip points that an earlier run with the same output, inputs and settings finished.",
)
@click.option(
    "--calctype",
    type=click.Choice(["asymptotics", "toybased"]),
    default="asymptotics",
    show_default=True,
)
@click.option("--ntoys", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the toys.")
@click.option(
    "--toy-batch-size",
    type=click.IntRange(1),
    default=None,
    help="Toy fits run side by side [default: by model size, 1 to 128].",
)
@_CLIP_OPTION
@_one_line_errors
def scan(
    background,
    patchset,
    output,
    points,
    analysis,
    upper_limits,
    cl,
    test_stat,
    poi_value,
    batch_size,
    measurement,
    normsys_code,
    histosys_code,
    scheduler,
    cluster_config,
    workers,
    resume,
    calctype,
    ntoys,
    seed,
    toy_batch_size,
    clip_negative_yields,
):
    """CLs (and upper limits) for every point of PATCHSET on BACKGROUND → Parquet.

    Finished batches are kept next to the output (OUTPUT.parts/) as they come in; a
    killed scan rerun with the same output computes only the missing points.
    """
    from hfpipe.cluster import connect
    from hfpipe.results import scan_to_parquet
    from hfpipe.scan import ScanSettings

    overrides = {"batch_size": batch_size} if batch_size else {}
    settings = ScanSettings(
        mu=poi_value,
        test_stat=test_stat,
        upper_limits=upper_limits,
        cl=cl,
        normsys_code=normsys_code,
        histosys_code=histosys_code,
        measurement=measurement,
        calctype=calctype,
        ntoys=ntoys,
        seed=seed,
        toy_batch_size=toy_batch_size,
        clip_negative_yields=clip_negative_yields,
        **overrides,
    )
    chosen = [p.strip() for p in points.split(",")] if points else None
    with connect(scheduler, cluster_config, workers) as client:
        frame = scan_to_parquet(
            background,
            patchset,
            output,
            points=chosen,
            analysis=analysis,
            settings=settings,
            resume=resume,
            client=client,
            progress=True,
        )
    bad = frame[frame["status"] != "ok"]
    for _, row in frame[(frame["status"] != "ok") | (frame["message"] != "")].iterrows():
        _warn(f"{row['point']}: {row['status']}: {row['message']}")
    click.echo(
        f"{len(frame)} points ({frame.attrs['computed']} computed,"
        f" {frame.attrs['reused']} from an earlier run), {len(bad)} not ok → {output}",
        err=True,
    )


@main.command()
@click.argument("workspace", type=click.Path(dir_okay=False))
@_one_line_errors
def inspect(workspace):
    """Summarise a workspace: channels, samples, modifiers, parameters, measurements."""
    from hfpipe import spec

    ws = spec.load_workspace(workspace)
    lines = [f"workspace: {workspace}"]
    lines.append(f"channels ({len(ws['channels'])}):")
    modifier_types: Counter = Counter()
    parameters: dict[str, str] = {}
    for channel in sorted(ws["channels"], key=lambda c: c["name"]):
        nbins = len(channel["samples"][0]["data"])
        samples = ", ".join(s["name"] for s in channel["samples"])
        lines.append(f"  {channel['name']}: {nbins} bin(s); samples: {samples}")
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                modifier_types[modifier["type"]] += 1
                parameters.setdefault(modifier["name"], modifier["type"])
    lines.append("modifiers: " + ", ".join(f"{k} {v}" for k, v in sorted(modifier_types.items())))
    by_type = Counter(parameters.values())
    lines.append(
        f"parameters ({len(parameters)} named): "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()))
    )
    for measurement in ws["measurements"]:
        config = measurement["config"]
        present = "" if config["poi"] in parameters else " (not in this workspace: add signal)"
        lines.append(f"measurement {measurement['name']}: POI {config['poi']}{present}")
    observed = sum(sum(o["data"]) for o in ws["observations"])
    lines.append(f"observed events: {observed:g}")
    click.echo("\n".join(lines))


main.add_command(contour)
main.add_command(brazil)
main.add_command(convert)
main.add_command(prepare)
main.add_command(merge)
main.add_command(campaign)
main.add_command(merge_toys)

if __name__ == "__main__":
    main()
