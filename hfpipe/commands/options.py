"""Option groups shared by several commands, each defined once.

* :func:`model_options`: a workspace, the patches to apply (``-p`` files, a
  ``--patchset`` point), the measurement, the interpolation codes and
  ``--clip-negative-yields``; the command receives them as one :class:`ModelInputs`.
* :func:`compile_options`: the measurement, interpolation codes and the clip flag alone,
  for commands that take their signal from a patchset (``scan``).
* :func:`cl_option` (``--cl``) and :func:`sampling_options` (``--calctype``, ``--ntoys``,
  ``--seed``) for the commands that compute CLs or limits, and
  :data:`toy_batch_size_option` for those that run toys.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import click

from hfpipe.errors import HfpipeError
from hfpipe.spec.modifiers import HISTOSYS_CODES, NORMSYS_CODES

__all__ = [
    "ModelInputs",
    "apply_options",
    "cl_option",
    "compile_options",
    "model_options",
    "sampling_options",
    "toy_batch_size_option",
]


def apply_options(command, options: list):
    """``command`` decorated with ``options`` (click decorators), first one on top."""
    for option in reversed(options):
        command = option(command)
    return command


def cl_option(help: str = "Confidence level."):
    """``--cl``: a confidence level strictly between 0 and 1, by default 0.95."""
    return click.option(
        "--cl",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=0.95,
        show_default=True,
        help=help,
    )


def sampling_options(command, *, ntoys: int = 1000):
    """``--calctype`` (asymptotics or toybased), ``--ntoys`` (default ``ntoys``), ``--seed``."""
    return apply_options(
        command,
        [
            click.option(
                "--calctype",
                type=click.Choice(["asymptotics", "toybased"]),
                default="asymptotics",
                show_default=True,
            ),
            click.option("--ntoys", type=click.IntRange(1), default=ntoys, show_default=True),
            click.option(
                "--seed", type=int, default=0, show_default=True, help="Seed of the toys."
            ),
        ],
    )


#: ``--toy-batch-size``: toy fits side by side (default: hfpipe.infer.toys picks by size)
toy_batch_size_option = click.option(
    "--toy-batch-size",
    type=click.IntRange(1),
    default=None,
    help="Toy fits run side by side [default: by model size, 1 to 128].",
)


def compile_options(command):
    """``--measurement``, ``--normsys-code``, ``--histosys-code``, ``--clip-negative-yields``."""
    return apply_options(
        command,
        [
            click.option("--measurement", help="Measurement name (default: the first)."),
            click.option(
                "--normsys-code",
                type=click.Choice(NORMSYS_CODES),
                default="code4",
                show_default=True,
            ),
            click.option(
                "--histosys-code",
                type=click.Choice(HISTOSYS_CODES),
                default="code4p",
                show_default=True,
            ),
            click.option(
                "--clip-negative-yields",
                is_flag=True,
                help="Fit models with negative expected yields, clipping them at a small "
                "positive floor in the likelihood (off: such models are rejected).",
            ),
        ],
    )


@dataclass(frozen=True)
class ModelInputs:
    """What :func:`model_options` name: a workspace, the patches to apply (files and/or
    one patchset point) and the compile settings."""

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

    def provenance(self) -> dict:
        """The inputs as named in a toy chunk file's provenance."""
        return {
            "workspace": self.workspace,
            "patches": list(self.patches),
            "patchset": self.patchset,
            "point": self.point,
        }


def model_options(command):
    """Add the model options to a command, which receives them as one
    :class:`ModelInputs` (its first argument)."""

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
        compile_options,
    ]
    return apply_options(with_inputs, options)
