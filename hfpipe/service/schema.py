"""What a job request may say: the JSON body of ``POST /v1/jobs``, checked at the door.

One request is one task (the ``task`` key picks it, ``hypotest`` when absent):

* ``hypotest``, ``fit``, ``upper_limits``: a ``workspace`` and optional ``patches`` (JSON
  Patch operation lists, applied in order), as ``hfpipe cls`` / ``fit`` / ``upper-limit``
  take a workspace and ``-p`` files;
* ``scan``: a ``background`` workspace, a ``patchset`` and optional ``points``, as
  ``hfpipe scan``.

``settings`` holds what the command's options hold, by the options' names
(``poi_value``, ``test_stat``, ``calctype``, ``ntoys``, …); a key a task does not take is
an error, not ignored. A bare pyhf workspace as the whole body is a hypotest at μ = 1.
These models check the shape of a request; what the workspace, patches and patchset say
is checked by :mod:`hfpipe.spec` (:mod:`hfpipe.service.tasks`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from hfpipe.infer.teststats import LIMIT_TEST_STATISTICS, TEST_STATISTICS
from hfpipe.spec.modifiers import HISTOSYS_CODES, NORMSYS_CODES

__all__ = [
    "TASKS",
    "FitJob",
    "HypotestJob",
    "JobAccepted",
    "JobRequest",
    "JobStatus",
    "ResultLookup",
    "ScanJob",
    "UpperLimitsJob",
]

TASKS = ("hypotest", "fit", "upper_limits", "scan")
#: toys a hypotest may ask for (the time limit bounds the work anyway)
MAX_TOYS = 1_000_000


class _Checked(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CompileSettings(_Checked):
    """How a workspace becomes a model: ``--measurement``, the interpolation codes and
    ``--clip-negative-yields``."""

    measurement: str | None = None
    normsys_code: Literal[NORMSYS_CODES] = "code4"
    histosys_code: Literal[HISTOSYS_CODES] = "code4p"
    clip_negative_yields: bool = False


class HypotestSettings(CompileSettings):
    """``hfpipe cls``: asymptotic or toy-based CLs at ``poi_value``."""

    poi_value: float = 1.0
    test_stat: Literal[TEST_STATISTICS] = "qtilde"
    calctype: Literal["asymptotics", "toybased"] = "asymptotics"
    ntoys: int = Field(2000, ge=1, le=MAX_TOYS)
    seed: int = 0
    toy_batch_size: int | None = Field(None, ge=1)
    max_failed_fraction: float = Field(0.01, ge=0, le=1)


class FitSettings(CompileSettings):
    """``hfpipe fit``: the POI held at ``fixed_poi`` if given."""

    fixed_poi: float | None = None


class UpperLimitsSettings(CompileSettings):
    """``hfpipe upper-limit``."""

    cl: float = Field(0.95, gt=0, lt=1)
    test_stat: Literal[LIMIT_TEST_STATISTICS] = "qtilde"


class ScanSettings(CompileSettings):
    """``hfpipe scan``."""

    poi_value: float = 1.0
    test_stat: Literal[LIMIT_TEST_STATISTICS] = "qtilde"
    upper_limits: bool = False
    cl: float = Field(0.95, gt=0, lt=1)
    calctype: Literal["asymptotics", "toybased"] = "asymptotics"
    ntoys: int = Field(1000, ge=1, le=MAX_TOYS)
    seed: int = 0
    toy_batch_size: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1, le=4096)


class _ModelJob(_Checked):
    workspace: dict[str, Any] = Field(description="A pyhf JSON workspace (schema 1.0.0).")
    patches: list[list[Any]] = Field(
        default_factory=list, description="JSON Patch operation lists, applied in order."
    )


class HypotestJob(_ModelJob):
    task: Literal["hypotest"]
    settings: HypotestSettings = Field(default_factory=HypotestSettings)


class FitJob(_ModelJob):
    task: Literal["fit"]
    settings: FitSettings = Field(default_factory=FitSettings)


class UpperLimitsJob(_ModelJob):
    task: Literal["upper_limits"]
    settings: UpperLimitsSettings = Field(default_factory=UpperLimitsSettings)


class ScanJob(_Checked):
    task: Literal["scan"]
    background: dict[str, Any] = Field(description="The background-only pyhf workspace.")
    patchset: dict[str, Any] = Field(description="A pyhf patchset made for the background.")
    points: list[str] | None = Field(None, description="Patch names (default: all).")
    analysis: str | None = Field(None, description="Analysis name (default: the patchset's).")
    settings: ScanSettings = Field(default_factory=ScanSettings)


_AnyJob = Annotated[HypotestJob | FitJob | UpperLimitsJob | ScanJob, Field(discriminator="task")]


class JobRequest(RootModel[_AnyJob]):
    """A job: one of the four tasks. A body without ``task`` is a hypotest, and a bare
    workspace (a body with ``channels``) is a hypotest of that workspace at μ = 1."""

    @model_validator(mode="before")
    @classmethod
    def _default_task(cls, data):
        if isinstance(data, dict) and "task" not in data:
            if "channels" in data and "workspace" not in data:
                return {"task": "hypotest", "workspace": data}
            return {"task": "hypotest", **data}
        return data


class JobAccepted(BaseModel):
    id: str
    state: str
    cached: bool = Field(description="Answered from the stored result of the same request.")


class JobStatus(BaseModel):
    id: str
    task: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    result: dict[str, Any] | None = Field(
        description="When done: what the command prints (for a hypotest pyhf's CLs_obs, CLs_exp)."
    )
    error: str | None
    ok: bool | None = Field(description="Whether every fit converged (the command's exit 0).")
    warnings: list[str]
    table: str | None = Field(description="Route of a done scan's Parquet table.")
    cached: bool
    attempts: int = Field(description="Times the job was started (a restart starts it again).")
    created: float
    started: float | None
    finished: float | None


class ResultLookup(BaseModel):
    id: str
    wait: float = Field(30.0, ge=0, le=300, description="Seconds to wait for the job to finish.")
