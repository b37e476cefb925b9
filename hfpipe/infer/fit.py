"""Maximum-likelihood fits of many models, or of one model to many data sets.

``fit_batch`` minimises -2 log L for every row of a batch (signal points, or the several
fits of a hypothesis test) in one compiled, vmapped Newton call; ``fit_datasets`` fits
one model to a queue of data sets (toys) on a fixed number of lanes
(:mod:`hfpipe.infer.lanes`). Every result is checked by this project's own criterion
(EDM with a positive-definite Hessian), never by an optimiser's word. Rows that fail
are retried or named (:mod:`hfpipe.infer.retries`) and, if they still fail, come back
with ``converged = False`` and a message. Models with kinked interpolation codes get a
search over the sides of each kink (:mod:`hfpipe.infer.kinks`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float, Shaped

from hfpipe import _jax  # noqa: F401  (double precision)
from hfpipe.infer import compiled
from hfpipe.infer.fitresult import FitResult
from hfpipe.infer.kinks import kinked_parameters, orthant_search
from hfpipe.infer.lanes import lane_driver, queue_length
from hfpipe.infer.newton import MinimizeResult
from hfpipe.infer.retries import FitRows, edm_at, lbfgsb, retry_failed
from hfpipe.model.structure import Array, Numbers, Structure

__all__ = [
    "DEFAULT_OPTIONS",
    "FitOptions",
    "FitResult",
    "batched",
    "bound_warnings",
    "covariance_warning",
    "fit_batch",
    "fit_datasets",
    "hesse_uncertainties",
    "local_minima",
]


@dataclass(frozen=True)
class FitOptions:
    """Settings of every fit; hashable, so compiled fits are cached per options."""

    max_iterations: int = 200  # evaluations of value, gradient and curvature
    edm_tolerance: float = 1e-9  # in units of -2 log L
    #: EDM tolerance of toy fits (see :mod:`hfpipe.infer.toys`). The EDM is the
    #: remaining decrease of -2 log L the quadratic model predicts, so a toy's test
    #: statistic is within about this of its exact value: far below what moves a toy
    #: across the observed one.
    toy_edm_tolerance: float = 1e-6
    #: one more Newton step after convergence (:mod:`hfpipe.infer.newton`): best fits and
    #: test statistics exact to ~1e-9 σ instead of ~sqrt(2 · edm_tolerance) σ, for about
    #: one evaluation a fit. Toy fits (at ``toy_edm_tolerance``) do not polish.
    polish: bool = True
    first_method: str = "newton"  # or "lbfgsb" (first-order; for diagnostics)
    retry: bool = True
    #: wall-clock limit of one MIGRAD retry, after which its best point so far is polished
    retry_seconds: float = 60.0


DEFAULT_OPTIONS = FitOptions()


def batched(numbers: Numbers, n: int) -> Numbers:
    """Numbers with a leading batch axis of ``n`` (broadcast if they have none)."""
    if np.ndim(numbers.nominal) == 2:
        return numbers
    return jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (n, *np.shape(a))), numbers)


def _newton_fits(structure: Structure, options: FitOptions):
    """``(numbers, data, init, fixed) -> FitResult``: vmapped Newton fits, one a row."""
    newton = compiled.newton_batch(structure, options.max_iterations, options.edm_tolerance)

    def fit(numbers, data, init, fixed) -> FitResult:
        found = newton(
            jax.tree.map(jnp.asarray, numbers),
            jnp.asarray(data),
            jnp.asarray(init),
            jnp.asarray(fixed),
            options.polish,
        )
        return FitResult.of(found, "newton")

    return fit


def _lbfgsb_fits(structure: Structure, options: FitOptions, numbers, data, init, fixed):
    """SciPy's L-BFGS-B, row by row, its end points judged by the EDM."""
    rows = range(len(data))
    model = [jax.tree.map(lambda a, i=i: a[i], numbers) for i in rows]
    pars = np.stack([lbfgsb(structure, model[i], data[i], init[i], fixed[i]) for i in rows])
    edm = np.array([edm_at(structure, model[i], pars[i], data[i], fixed[i]) for i in rows])
    objective = compiled.objective(structure)
    fun = np.array([float(objective(model[i], pars[i], data[i])[0]) for i in rows])
    converged = edm < options.edm_tolerance
    found = MinimizeResult(pars, fun, edm, converged, np.zeros(len(data), dtype=int))
    return FitResult.of(found, "lbfgsb")


def fit_batch(
    structure: Structure,
    numbers: Numbers,
    data: Float[Array, "fits data"],
    *,
    init: Float[Array, "*fits parameters"] | None = None,
    fixed: Bool[Array, "*fits parameters"] | None = None,
    options: FitOptions = DEFAULT_OPTIONS,
) -> FitResult:
    """Fit every row of a batch; ``numbers`` and ``data`` carry a leading batch axis.

    ``init`` and ``fixed`` default to the numbers' own (a fixed-POI fit sets the POI's
    init and fixes it). Returns converged fits, or rows marked unconverged with a
    message — never an unchecked optimiser result.
    """
    data = jnp.asarray(data, dtype=float)
    n = data.shape[0]
    init = jnp.asarray(numbers.init if init is None else init, dtype=float)
    init = jnp.broadcast_to(init, (n, structure.n_parameters))
    fixed = jnp.broadcast_to(
        jnp.asarray(numbers.fixed if fixed is None else fixed, dtype=bool),
        (n, structure.n_parameters),
    )
    numbers = batched(numbers, n)

    if options.first_method == "newton":
        result = _newton_fits(structure, options)(numbers, data, init, fixed)
    elif options.first_method == "lbfgsb":
        result = _lbfgsb_fits(structure, options, numbers, data, init, fixed)
    else:
        raise ValueError(f"unknown first_method {options.first_method!r}")
    result = retry_failed(FitRows(structure, numbers, False, data, fixed), result, options)
    result = orthant_search(
        _newton_fits(structure, options), numbers, data, fixed, result, structure.layout
    )
    return replace(result, warning=bound_warnings(structure, numbers, result.pars, fixed))


def fit_datasets(
    structure: Structure,
    numbers: Numbers,
    data: Float[Array, "fits data"],
    *,
    lanes: int,
    init: Float[Array, "*fits parameters"] | None = None,
    fixed: Bool[Array, "*fits parameters"] | None = None,
    options: FitOptions = DEFAULT_OPTIONS,
    queue: int | None = None,
) -> FitResult:
    """Fit one model to every row of ``data`` (toys): ``lanes`` fits run side by side.

    ``numbers`` is one model (no batch axis), shared by every fit; ``init`` and
    ``fixed`` are per row, or one for all (default: the model's). Each lane takes the
    next data set as soon as its fit is done (:mod:`hfpipe.infer.lanes`). Rows go
    through compiled calls of ``queue`` fits (default
    :func:`~hfpipe.infer.lanes.queue_length`; the last call filled partly; one
    compilation per structure, ``lanes``, ``queue`` and the maximum number of
    iterations). A row's result depends on its own data, init and fixed only.
    Unconverged fits are retried as in :func:`fit_batch`; no bound warnings are made.
    """
    if np.ndim(numbers.nominal) != 1:
        raise ValueError("fit_datasets fits one model: numbers must not have a batch axis")
    if lanes < 1:
        raise ValueError("lanes must be positive")
    data = np.asarray(data, dtype=float)
    if len(data) == 0:
        raise ValueError("no data sets to fit")
    n, shape = len(data), (len(data), structure.n_parameters)
    init = np.broadcast_to(np.asarray(numbers.init if init is None else init, float), shape)
    fixed = np.broadcast_to(np.asarray(numbers.fixed if fixed is None else fixed, bool), shape)
    length = queue_length(lanes) if queue is None else queue
    run = lane_driver(structure, options.max_iterations, lanes, length)
    parts = []
    for start in range(0, n, length):
        count = min(length, n - start)

        def queue(a, start=start, count=count):
            part = a[start : start + count]
            return np.concatenate([part, np.repeat(part[:1], length - count, axis=0)])

        found = run(
            numbers,
            queue(data),
            queue(init),
            queue(fixed),
            count,
            options.edm_tolerance,
            options.polish,
        )
        parts.append(
            FitResult.of(jax.tree.map(lambda a, c=count: np.asarray(a)[:c], found), "newton")
        )
    result = FitResult.concatenate(parts)
    result = retry_failed(FitRows(structure, numbers, True, data, fixed), result, options)
    if len(kinked_parameters(structure.layout)):
        each = batched(numbers, n)
        result = orthant_search(
            _newton_fits(structure, options), each, data, fixed, result, structure.layout
        )
    return result


#: A free fit whose -2 log L exceeds a constrained fit's (same data, a parameter held) by
#: more than this ended in a local minimum (fits converge to ~1e-9).
LOCAL_MINIMUM_TOLERANCE = 1e-6


def local_minima(free: FitResult, constrained: list[FitResult]) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose free fit ended in a local minimum, and where to fit them again.

    A free fit can never end above a fit of the same data with a parameter held (the POI
    fixed): where it does, it is stuck in a local minimum. Real likelihoods have them
    (3L-eRJR: about one toy data set in a few hundred). Returns those rows and, for
    each, the parameters of the lowest constrained fit: a free fit started there (with
    the parameter released) ends at or below it. pyhf keeps such fits, and clips the
    test statistic to 0.
    """
    values = np.stack([np.where(c.converged, c.twice_nll, np.inf) for c in constrained])
    lowest = np.argmin(values, axis=0)
    below = values.min(axis=0) < free.twice_nll - LOCAL_MINIMUM_TOLERANCE
    rows = np.flatnonzero(free.converged & below)
    starts = np.stack([c.pars for c in constrained])[lowest[rows], rows]
    return rows, starts


def bound_warnings(
    structure: Structure,
    numbers: Numbers,
    pars: Float[Array, "*fits parameters"],
    fixed: Bool[Array, "*fits parameters"],
) -> Shaped[np.ndarray, " fits"]:
    """Per fit, '' or the free parameters that ended at a bound (``alpha_x at its upper
    bound 5``), which makes a converged fit suspicious: the true minimum may lie beyond.

    The POI is left out: its bounds belong to the test statistic (q~ bounds it at 0).
    """
    pars = np.atleast_2d(np.asarray(pars))
    lower = np.broadcast_to(np.asarray(numbers.lower), pars.shape)
    upper = np.broadcast_to(np.asarray(numbers.upper), pars.shape)
    free = ~np.broadcast_to(np.asarray(fixed, dtype=bool), pars.shape).copy()
    free[:, structure.poi_index] = False
    tolerance = 1e-9 * np.maximum(1.0, upper - lower)
    at_lower = free & (pars <= lower + tolerance)
    at_upper = free & (pars >= upper - tolerance)
    names = structure.parameter_names
    out = []
    for i in range(len(pars)):
        found = [
            f"{names[j]} at its {side} bound {bound[i, j]:g}"
            for side, mask, bound in (("lower", at_lower, lower), ("upper", at_upper, upper))
            for j in np.flatnonzero(mask[i])
        ]
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        out.append(f"parameter at a bound: {shown}" if found else "")
    return np.array(out, dtype=object)


def hesse_uncertainties(
    structure: Structure,
    numbers: Numbers,
    pars: Float[Array, " parameters"],
    data: Float[Array, " data"],
    fixed: Bool[Array, " parameters"] | None = None,
) -> tuple[Float[np.ndarray, "parameters parameters"], Float[np.ndarray, " parameters"]]:
    """Covariance matrix and uncertainties from the exact Hessian of -2 log L.

    Fixed parameters get zero uncertainty. ``numbers`` is one model (no batch axis).
    """
    _, _, hessian, _ = compiled.derivatives(structure)(
        numbers, jnp.asarray(pars, dtype=float), jnp.asarray(data, dtype=float)
    )
    fixed = np.asarray(numbers.fixed if fixed is None else fixed, dtype=bool)
    free = np.flatnonzero(~fixed)
    covariance = np.zeros((len(fixed), len(fixed)))
    covariance[np.ix_(free, free)] = 2.0 * np.linalg.inv(np.asarray(hessian)[np.ix_(free, free)])
    return covariance, np.sqrt(np.clip(np.diag(covariance), 0.0, None))


def covariance_warning(covariance, fixed) -> str:
    """'' or why the Hesse covariance of a fit is not to be trusted: a Hessian that is not
    positive definite over the free parameters (possible at a bound, where the fit's own
    convergence test leaves the parameter out) gives negative or infinite variances."""
    free = np.flatnonzero(~np.asarray(fixed, dtype=bool))
    block = np.asarray(covariance)[np.ix_(free, free)]
    try:
        np.linalg.cholesky(block)
    except np.linalg.LinAlgError:
        return "Hessian not positive definite at the best fit: uncertainties are not reliable"
    if not np.all(np.isfinite(block)):
        return "Hessian singular at the best fit: uncertainties are not reliable"
    return ""
