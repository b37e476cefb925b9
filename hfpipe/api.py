"""The public functions, as ``hfpipe.<name>``: a workspace in, a result out.

Each takes a workspace as a path (``.json``/``.json.gz``), a loaded dict or a compiled
:class:`~hfpipe.model.Model`, with optional ``patches`` (JSON Patch lists or patchset
points, applied in order) and compile options (``measurement``, ``normsys_code``,
``histosys_code``, ``clip_negative_yields``; see :func:`~hfpipe.model.compile_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from hfpipe.infer.asymptotic import HypotestResult, check_poi_values, hypotest_batch
from hfpipe.infer.bestfit import BestFit, best_fit
from hfpipe.infer.calctypes import ToySettings
from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions
from hfpipe.infer.limits import UpperLimits, upper_limits_batch
from hfpipe.infer.toys import DEFAULT_TOY_BATCH_SIZE, ToyDistributions, toy_distributions
from hfpipe.model import Model, compile_model
from hfpipe.scanning import scan
from hfpipe.scanning.pool import prepare_toy_processes, toys_in_processes

if TYPE_CHECKING:  # imported where used: profiles and discovery tables need pandas and
    # more of SciPy, which a command that runs toys or fits would import for nothing
    import pandas as pd

    from hfpipe.infer.profile import ProfileResult

__all__ = [
    "compile_model",
    "discovery_table",
    "fit",
    "hypotest",
    "profile",
    "scan",
    "toys",
    "upper_limits",
]


def _model(workspace, patches: Sequence, compile_options: dict) -> Model:
    if isinstance(workspace, Model):
        if patches or compile_options:
            raise TypeError("patches and compile options go with a workspace, not a Model")
        return workspace
    return compile_model(workspace, patches=patches, **compile_options)


def fit(
    workspace, *, patches: Sequence = (), fixed_poi: float | None = None, **compile_options
) -> BestFit:
    """The maximum-likelihood fit to the observed data, with Hesse uncertainties and the
    covariance (the POI held at ``fixed_poi`` if given). Raises
    :class:`~hfpipe.errors.FitFailed` if the fit does not converge."""
    model = _model(workspace, patches, compile_options)
    if fixed_poi is None:
        return best_fit(model)
    check_poi_values(model.structure, model.numbers, fixed_poi)
    init, fixed = model.init().copy(), model.fixed().copy()
    init[model.poi_index], fixed[model.poi_index] = fixed_poi, True
    held = Model(model.structure, model.numbers._replace(init=init))
    return best_fit(held, fixed=fixed)


def hypotest(
    workspace,
    mu: float = 1.0,
    *,
    patches: Sequence = (),
    test_stat: str = "qtilde",
    **compile_options,
) -> HypotestResult:
    """Asymptotic CLs at POI value ``mu``: ``result.cls_obs[0]``, ``result.cls_exp[0]``
    (−2σ … +2σ), with every fit it rests on. Toy-based CLs: :func:`toys`."""
    model = _model(workspace, patches, compile_options)
    return hypotest_batch(model.structure, model.numbers, mu, test_stat=test_stat)


def upper_limits(
    workspace,
    *,
    patches: Sequence = (),
    cl: float = 0.95,
    test_stat: str = "qtilde",
    **compile_options,
) -> UpperLimits:
    """Upper limits on the POI (asymptotic CLs = 1 − ``cl``): ``result.values[0]`` holds
    the observed limit, then the expected ones −2σ … +2σ."""
    model = _model(workspace, patches, compile_options)
    return upper_limits_batch(model.structure, model.numbers, cl=cl, test_stat=test_stat)


def toys(
    workspace,
    mu: float = 1.0,
    *,
    patches: Sequence = (),
    ntoys: int = 1000,
    seed: int = 0,
    first_toy: int = 0,
    test_stat: str = "qtilde",
    batch_size: int | None = DEFAULT_TOY_BATCH_SIZE,
    options: FitOptions = DEFAULT_OPTIONS,
    workers: int | None = 1,
    **compile_options,
) -> ToyDistributions:
    """Toy distributions at ``mu`` (:func:`~hfpipe.infer.toys.toy_distributions`):
    ``hfpipe.toys(ws, ntoys=10_000).cls()`` gives CLs; chunks made with ``first_toy``
    merge with :func:`~hfpipe.infer.toys.merge`; ``workers`` processes share the toys
    (:func:`~hfpipe.scanning.pool.toys_in_processes`; ``None``: every core, as many as
    the toys keep busy). The toys are the same, bit for bit, however many processes."""
    if workers is not None and workers < 1:
        raise ValueError("workers must be positive")
    workers = prepare_toy_processes(ntoys, workers)
    model = _model(workspace, patches, compile_options)
    settings = {"seed": seed, "test_stat": test_stat, "batch_size": batch_size, "options": options}
    args = (model.structure, model.numbers, mu)
    if workers > 1:
        return toys_in_processes(
            *args, ntoys=ntoys, first_toy=first_toy, workers=workers, **settings
        )
    return toy_distributions(*args, ntoys=ntoys, first_toy=first_toy, **settings)


def profile(
    workspace,
    grid: Mapping[str, Sequence[float]],
    *,
    patches: Sequence = (),
    cls: Sequence[float] | None = None,
    extend_bounds: bool = False,
    refine: bool = True,
    **compile_options,
) -> ProfileResult:
    """The profile likelihood of one or two parameters on a grid (``{"mu": values}``, or
    two such entries): ``result.table()`` holds Δ(−2 ln L) per grid point,
    ``result.intervals`` the intervals (1-D), ``result.contours`` the contours (2-D) at
    confidence levels ``cls`` (default: 68.27 % and 95 %); see :mod:`hfpipe.infer.profile`."""
    from hfpipe.infer.profile import profile as profile_model
    from hfpipe.infer.profile_scan import DEFAULT_CLS

    model = _model(workspace, patches, compile_options)
    cls = DEFAULT_CLS if cls is None else cls
    return profile_model(model, grid, cls=cls, extend_bounds=extend_bounds, refine=refine)


def discovery_table(
    workspace,
    regions: Sequence[str],
    *,
    patches: Sequence = (),
    cl: float = 0.95,
    lumi: float | None = None,
    lumi_unit: str = "fb-1",
    calctype: str = "asymptotics",
    ntoys: int = 1000,
    seed: int = 0,
    **options,
) -> pd.DataFrame:
    """The model-independent limit table of single-bin ``regions`` of a background-only
    workspace (a path or dict): S_obs^95, S_exp^95 and its band, ⟨εσ⟩_obs^95 (with
    ``lumi``), CL_B, p(s = 0) and Z, one row a region (a pandas DataFrame; see
    :mod:`hfpipe.scanning.discovery` for ``options``: signal and POI names, compile
    options)."""
    from hfpipe.scanning.discovery import discovery_table as make_discovery_table

    return make_discovery_table(
        workspace,
        regions,
        patches=patches,
        cl=cl,
        lumi=lumi,
        lumi_unit=lumi_unit,
        calctype=calctype,
        toys=ToySettings(ntoys=ntoys, seed=seed),
        **options,
    )
