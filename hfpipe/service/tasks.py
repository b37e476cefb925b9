"""The work of a job: the command line's own functions, run on a request's JSON.

A request (the JSON of :mod:`hfpipe.service.schema`, defaults filled in) becomes a model
here exactly as ``hfpipe cls WS -p PATCH`` makes one, and the same functions compute it:
:func:`~hfpipe.commands.cls.asymptotic_cls`, :func:`~hfpipe.commands.toys.toy_cls_report`,
:func:`~hfpipe.commands.fit.maximum_likelihood_fit`,
:func:`~hfpipe.commands.upper_limit.upper_limits` and, for a scan,
:func:`hfpipe.scanning.scan_to_parquet`. So a job's result is what the command prints.

:func:`check_request` runs when a request arrives (its errors are the 422 answer),
:func:`run_model_job` is the Dask task of a hypotest, fit or upper limit, and
:func:`run_scan_job` runs a scan whose batches go to the Dask client. Errors name the
file ``request`` and the JSON path from the body's root
(``workspace.channels[0].samples[1].data``, ``patches[0][2].path``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path

from hfpipe import spec
from hfpipe.errors import HfpipeError, InputError

__all__ = ["REQUEST", "check_request", "run_model_job", "run_scan_job"]

#: what errors call the request body, in place of a file name
REQUEST = "request"


@contextlib.contextmanager
def _located(part: str, *, located: str | None = None):
    """Errors about ``part`` of the request give their JSON path from the body's root;
    errors whose path starts with ``located`` already do (a patch's, while compiling)."""
    try:
        yield
    except InputError as error:
        path = "" if error.path in ("", "(document root)") else error.path
        if located is not None and path.startswith(located):
            raise
        joined = part + (path if path.startswith("[") or not path else f".{path}")
        raise type(error)(error.problem, file=REQUEST, path=joined) from None
    except HfpipeError as error:
        raise InputError(str(error), file=REQUEST, path=part) from None


def build_model(request: dict):
    """The compiled model of a hypotest, fit or upper-limits request."""
    from hfpipe.model import compile_model

    settings = request["settings"]
    with _located("workspace"):
        workspace = spec.load_workspace(request["workspace"], name=REQUEST)
    patches = []
    for k, operations in enumerate(request["patches"]):
        with _located(f"patches[{k}]"):
            checked = spec.load_patch(operations, name=REQUEST)
        patches.append(
            spec.Patch(f"patches[{k}]", (), tuple(checked), source=REQUEST, path=("patches", k))
        )
    with _located("workspace", located="patches["):  # the patched workspace
        return compile_model(
            workspace,
            patches=patches,
            measurement=settings["measurement"],
            normsys_code=settings["normsys_code"],
            histosys_code=settings["histosys_code"],
            clip_negative_yields=settings["clip_negative_yields"],
            file=REQUEST,
        )


def _hypotest(model, settings: dict):
    from hfpipe.commands.cls import asymptotic_cls
    from hfpipe.commands.toys import toy_cls_report

    if settings["calctype"] == "toybased":
        return toy_cls_report(
            model,
            settings["poi_value"],
            settings["test_stat"],
            {},
            ntoys=settings["ntoys"],
            seed=settings["seed"],
            toy_batch_size=settings["toy_batch_size"],
            max_failed_fraction=settings["max_failed_fraction"],
        )
    return asymptotic_cls(model, settings["poi_value"], settings["test_stat"])


def _fit(model, settings: dict):
    from hfpipe.commands.fit import maximum_likelihood_fit

    return maximum_likelihood_fit(model, settings["fixed_poi"])


def _upper_limits(model, settings: dict):
    from hfpipe.commands.upper_limit import upper_limits

    return upper_limits(model, settings["cl"], settings["test_stat"])


_MODEL_TASKS = {"hypotest": _hypotest, "fit": _fit, "upper_limits": _upper_limits}


def load_scan_inputs(request: dict):
    """The background workspace and the patchset of a scan request, the patchset checked
    against the background and the points against the patchset."""
    with _located("background"):
        background = spec.load_workspace(request["background"], name=REQUEST)
    with _located("patchset"):
        patchset = spec.load_patchset(request["patchset"], name=REQUEST)
        spec.verify_patchset(patchset, background, file=REQUEST)
    known = set(patchset.names)
    for i, name in enumerate(request["points"] or []):
        if name not in known:
            raise InputError(f"no point {name!r} in the patchset", file=REQUEST, path=["points", i])
    return background, patchset


def scan_settings(settings: dict):
    """:class:`hfpipe.scanning.ScanSettings` from a scan request's settings, as ``hfpipe scan``
    makes them from its options."""
    from hfpipe.scanning import ScanSettings

    overrides = {"batch_size": settings["batch_size"]} if settings["batch_size"] else {}
    with _located("settings"):
        return ScanSettings(
            mu=settings["poi_value"],
            test_stat=settings["test_stat"],
            upper_limits=settings["upper_limits"],
            cl=settings["cl"],
            normsys_code=settings["normsys_code"],
            histosys_code=settings["histosys_code"],
            measurement=settings["measurement"],
            calctype=settings["calctype"],
            ntoys=settings["ntoys"],
            seed=settings["seed"],
            toy_batch_size=settings["toy_batch_size"],
            clip_negative_yields=settings["clip_negative_yields"],
            **overrides,
        )


def check_request(request: dict) -> None:
    """Everything a job would find wrong with its inputs, found now: raises an
    :class:`~hfpipe.errors.InputError` naming the request's JSON path."""
    if request["task"] == "scan":
        load_scan_inputs(request)
        scan_settings(request["settings"])
    else:
        build_model(request)


def run_model_job(request: dict) -> dict:
    """The Dask task of a hypotest, fit or upper-limits request: ``{"output", "ok",
    "warnings"}``, the command's JSON output (non-finite numbers as None), whether its
    fits converged, and its warnings with those about the input."""
    from hfpipe.spec import SpecWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpecWarning)
        report = _MODEL_TASKS[request["task"]](build_model(request), request["settings"])
    about_input = [str(w.message) for w in caught if issubclass(w.category, SpecWarning)]
    return {
        "output": finite(report.output),
        "ok": report.ok,
        "warnings": list(dict.fromkeys([*report.warnings, *about_input])),
    }


def run_scan_job(request: dict, output: Path, client) -> dict:
    """A (checked) scan request through :func:`hfpipe.scanning.scan_to_parquet` into ``output`` (its
    batches on ``client``), resuming from the parts an interrupted run left there:
    ``{"output": {"points", "computed", "reused", "not_ok"}, "ok", "warnings"}``."""
    from hfpipe.scanning import scan_to_parquet

    # checked when it came (check_request); the patchset as JSON, not a loaded PatchSet,
    # whose provenance digest fails (hfpipe.scanning.provenance)
    frame = scan_to_parquet(
        request["background"],
        request["patchset"],
        output,
        points=request["points"],
        analysis=request["analysis"],
        settings=scan_settings(request["settings"]),
        client=client,
    )
    noted = frame[(frame["status"] != "ok") | (frame["message"] != "")]
    return {
        "output": {
            "points": len(frame),
            "computed": int(frame.attrs["computed"]),
            "reused": int(frame.attrs["reused"]),
            "not_ok": int((frame["status"] != "ok").sum()),
        },
        "ok": True,
        "warnings": [f"{r.point}: {r.status}: {r.message}" for r in noted.itertuples()],
    }


def finite(value):
    """``value`` (JSON-like) with NaN and infinities as None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
