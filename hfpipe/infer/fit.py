"""Maximum-likelihood fits of a batch of models of one structure, with retries.

``fit_batch`` minimises -2 log L for every row of a batch (signal points, toys, or the
several fits of a hypothesis test) in one compiled, vmapped Newton call. Every result is
checked by this module's own criterion (EDM with a positive-definite Hessian), never
by an optimiser's word. Rows that fail are retried one by one — iminuit's MIGRAD
from the best point so far, then a Newton polish of its result — and, if they still
fail, come back with ``converged = False`` and a message. An unconverged fit that
ended where an expected bin yield is negative in a bin without events is not retried:
there the bin's Poisson term is just ν, so -2 log L can fall without bound until
parameters reach their bounds, and MIGRAD spent its whole time limit on each such fit
(1Lbb: 1.6 % of signal and 4.8 % of background toys). A converged fit there is kept:
it is a minimum of pyhf's formula, as pyhf would report it.

``first_method="lbfgsb"`` runs SciPy's L-BFGS-B first instead of Newton: it is the
kind of first-order fit that stalls on ill-conditioned likelihoods, kept so the
detection and recovery can be demonstrated and tested.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from hfpipe import _jax  # noqa: F401  (double precision)
from hfpipe.infer import newton
from hfpipe.infer.newton import bounded_edm, newton_minimize
from hfpipe.model.likelihood import (
    expected_main,
    prepare,
    twice_nll,
    twice_nll_derivatives,
    twice_nll_information,
    unconstrained_parameters,
)
from hfpipe.model.structure import Layout, Numbers, Structure

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
    "keep_lower",
    "local_minima",
    "replace_rows",
]


@dataclass(frozen=True)
class FitOptions:
    """Settings of every fit; hashable, so compiled fits are cached per options."""

    max_iterations: int = 200  # evaluations of value, gradient and curvature
    edm_tolerance: float = 1e-9  # in units of -2 log L
    #: EDM tolerance of toy fits (see :mod:`hfpipe.infer.toys`). The EDM is the
    #: remaining decrease of -2 log L the quadratic model predicts, so a toy's test
    #: statistic is within about this of its exact value: far below what moves a toy
    #: across the observed one. Measured on 3L-eRJR, 8,000 toys: |Δq| ≤ 1.0e-6 against
    #: the 1e-9 of other fits, identical CLs, 7 % fewer evaluations a toy.
    toy_edm_tolerance: float = 1e-6
    first_method: str = "newton"  # or "lbfgsb" (first-order; for diagnostics)
    retry: bool = True
    #: wall-clock limit of one MIGRAD retry, after which its best point so far is polished
    retry_seconds: float = 60.0


DEFAULT_OPTIONS = FitOptions()


@dataclass
class FitResult:
    """Results of a batch of fits (leading axis = batch)."""

    pars: np.ndarray  # (n, P)
    twice_nll: np.ndarray  # (n,)
    converged: np.ndarray  # (n,) bool
    edm: np.ndarray  # (n,)
    iterations: np.ndarray  # (n,)
    method: np.ndarray  # (n,) what produced the final result
    message: np.ndarray  # (n,) '' when converged
    #: (n,) '' or what makes a fit suspicious though converged: free parameters at a
    #: bound (see :func:`bound_warnings`)
    warning: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.twice_nll)


def _newton_batch(structure: Structure, options: FitOptions):
    return _newton_batch_for(structure.layout, options)


#: Halvings of one step after which a fit gives up (newton_minimize's default).
_MAX_HALVINGS = 30


@functools.cache
def _newton_batch_for(structure: Layout, options: FitOptions):
    def one(numbers: Numbers, data, init, fixed):
        prepared = prepare(structure, numbers)
        return newton_minimize(
            lambda x: twice_nll_derivatives(structure, prepared, x, data),
            init,
            numbers.lower,
            numbers.upper,
            fixed,
            max_iterations=options.max_iterations,
            edm_tolerance=options.edm_tolerance,
            max_halvings=_MAX_HALVINGS,
        )

    return jax.jit(jax.vmap(one))


#: Fits a call of the lane driver takes from its queue: at least this many per lane, and
#: at least :data:`_QUEUE_MINIMUM`. At the end of a call lanes fall idle one by one while
#: the slowest fits finish; with 64 fits a lane (~600 passes on 3L-eRJR toys, ~10
#: evaluations a fit) against a slowest fit of ~40 evaluations, that costs a few
#: percent. The minimum keeps the per-call overhead (drawing the toys, Python) small
#: where there are few lanes.
_QUEUE_PER_LANE, _QUEUE_MINIMUM = 64, 1024


def queue_length(lanes: int) -> int:
    """Fits one compiled call of :func:`fit_datasets` takes on ``lanes`` lanes."""
    return max(_QUEUE_PER_LANE * lanes, _QUEUE_MINIMUM)


@functools.cache
def _lanes_for(structure: Layout, max_iterations: int, lanes: int):
    """Jitted fits of one model to a queue of data sets on ``lanes`` lanes.

    One ``lax.while_loop``; each pass is one :func:`newton.step` of every lane. A lane
    whose fit is finished writes its result at its task's index and is loaded with the
    next task's data and a fresh state, so every lane stays busy until the queue is
    empty. Lanes past the last task idle (stepped, not recorded, and no factorisation is
    made for them alone). A task's fit is computed row by row, so its result does not
    depend on the lane it ran in, nor on its neighbours. The EDM tolerance is an
    argument, not a constant: fits of one model to different tolerances (toys and
    the observed data) share one compilation.

    On a single lane (the default for models of about 60 parameters or more), fits
    take their first steps by Fisher scoring (see :func:`newton.step`), which needs no
    (P, P) matrix: on 3L-eRJR toys ~1.8× more fits a CPU-second. A pass of several
    lanes scores only when no lane needs a Newton step, which would make a fit's path
    depend on its neighbours; there every pass is a Newton step (cheap for the small
    models that run many lanes).
    """
    length = queue_length(lanes)
    unconstrained = unconstrained_parameters(structure)
    scores = lanes == 1

    def run(numbers: Numbers, data, init, fixed, n_tasks, edm_tolerance):
        limits = {
            "max_iterations": max_iterations,
            "edm_tolerance": edm_tolerance,
            "max_halvings": _MAX_HALVINGS,
        }
        prepared = prepare(structure, numbers)  # once: every task shares the model
        shape = (lanes, structure.n_parameters)
        lower = jnp.broadcast_to(numbers.lower, shape)
        upper = jnp.broadcast_to(numbers.upper, shape)
        derivatives = jax.vmap(lambda x, d: twice_nll_derivatives(structure, prepared, x, d))
        information = jax.vmap(lambda x, d: twice_nll_information(structure, prepared, x, d))

        def load(task):
            row = jnp.minimum(task, length - 1)
            start = newton.initial_state(init[row], lower, upper, scoring=scores)
            return data[row], fixed[row], start

        def keep_going(carry):
            return jnp.any(carry[0] < n_tasks)

        def one_pass(carry):
            task, lane_data, lane_fixed, state, next_task, out = carry
            active = task < n_tasks
            scoring = None
            if scores:
                scoring = (lambda x: information(x, lane_data), unconstrained, edm_tolerance)
            state = newton.step(
                lambda x: derivatives(x, lane_data),
                state,
                lower,
                upper,
                lane_fixed,
                active,
                scoring=scoring,
            )
            done = active & newton.finished(state, **limits)
            carry = task, lane_data, lane_fixed, state, next_task, out
            # most passes finish no fit (one lane: 1 in ~5): the bookkeeping waits for one
            return jax.lax.cond(jnp.any(done), record_and_reload, lambda c, _: c, carry, done)

        def record_and_reload(carry, done):
            """Write the finished lanes' results at their tasks' indices and load the
            next tasks into those lanes."""
            task, lane_data, lane_fixed, state, next_task, out = carry
            slot = jnp.where(done, task, length)  # out of range: dropped
            found = newton.result(state, edm_tolerance)
            out = jax.tree.map(lambda o, r: o.at[slot].set(r, mode="drop"), out, found)
            task = jnp.where(done, next_task + jnp.cumsum(done) - 1, task)
            fresh = load(task)

            def refill(new, old):
                return jnp.where(done.reshape(done.shape + (1,) * (new.ndim - 1)), new, old)

            lane_data, lane_fixed, state = jax.tree.map(
                refill, fresh, (lane_data, lane_fixed, state)
            )
            return task, lane_data, lane_fixed, state, next_task + jnp.sum(done), out

        task = jnp.arange(lanes)
        empty = newton.MinimizeResult(
            jnp.zeros((length, structure.n_parameters)),
            jnp.full(length, jnp.nan),
            jnp.full(length, jnp.inf),
            jnp.zeros(length, bool),
            jnp.zeros(length, int),
        )
        carry = (task, *load(task), jnp.asarray(lanes), empty)
        return jax.lax.while_loop(keep_going, one_pass, carry)[-1]

    return jax.jit(run)


def fit_datasets(
    structure: Structure,
    numbers: Numbers,
    data,
    *,
    lanes: int,
    init=None,
    fixed=None,
    options: FitOptions = DEFAULT_OPTIONS,
) -> FitResult:
    """Fit one model to every row of ``data`` (toys): ``lanes`` fits run side by side.

    ``numbers`` is one model (no batch axis), shared by every fit; ``init`` and
    ``fixed`` are per row, or one for all (default: the model's). Unlike a vmapped
    batch, which runs until its slowest fit is done, each lane takes the next data set
    as soon as its fit is done: the cost follows the mean number of evaluations, not
    the largest. Rows go through compiled calls of :func:`queue_length` fits (the last
    one filled partly; one compilation per structure, options and ``lanes``). A row's
    result depends on its own data, init and fixed only. Unconverged fits are retried
    as in :func:`fit_batch`; no bound warnings are made.
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
    run = _lanes_for(structure.layout, options.max_iterations, lanes)
    length = queue_length(lanes)
    parts = []
    for start in range(0, n, length):
        count = min(length, n - start)

        def queue(a, start=start, count=count):
            part = a[start : start + count]
            return np.concatenate([part, np.repeat(part[:1], length - count, axis=0)])

        found = run(numbers, queue(data), queue(init), queue(fixed), count, options.edm_tolerance)
        parts.append([np.asarray(a)[:count] for a in found])
    pars, fun, edm, converged, iterations = (np.concatenate(p) for p in zip(*parts, strict=True))
    method = np.full(n, "newton", dtype=object)
    result = FitResult(pars, fun, converged, edm, iterations, method, _messages(converged, edm))
    _retry_failed(structure, numbers, True, data, fixed, options, result)
    return result


def _single(structure: Structure):
    return _single_for(structure.layout)


@functools.cache
def _single_for(structure: Layout):
    """Jitted single-model objective, gradient and derivatives (for retries)."""

    def objective(numbers, x, data):
        return twice_nll(structure, prepare(structure, numbers), x, data)

    def derivatives(numbers, x, data):
        return twice_nll_derivatives(structure, prepare(structure, numbers), x, data)

    return jax.jit(jax.value_and_grad(objective, argnums=1)), jax.jit(derivatives)


@functools.cache
def _yields_for(structure: Layout, shared_model: bool):
    """Jitted expected bin yields of a batch of points, of one model or one each."""

    def one(numbers, x):
        return expected_main(structure, prepare(structure, numbers), x)

    return jax.jit(jax.vmap(one, in_axes=(None if shared_model else 0, 0)))


#: Points per call of :func:`_yields_for`: every call has this shape, so the check
#: compiles once per structure (each new batch shape cost ~0.4 s of compilation on
#: 3L-eRJR, and the retried subsets of toys come in all sizes).
_YIELDS_BLOCK = 256


def _expected_yields(structure: Structure, numbers, shared_model: bool, pars) -> np.ndarray:
    """Expected bin yields at each row of ``pars`` (of ``numbers``' one model, or of its
    row each), in blocks of :data:`_YIELDS_BLOCK` rows, the last one padded."""
    yields, n = _yields_for(structure.layout, shared_model), len(pars)
    blocks = []
    for first in range(0, n, _YIELDS_BLOCK):
        rows = np.minimum(np.arange(first, first + _YIELDS_BLOCK), n - 1)
        models = numbers if shared_model else jax.tree.map(lambda a, r=rows: a[r], numbers)
        blocks.append(np.asarray(yields(models, jnp.asarray(pars[rows])))[: n - first])
    return np.concatenate(blocks)


def _row(numbers: Numbers, i: int) -> Numbers:
    return jax.tree.map(lambda a: a[i], numbers)


def _edm(structure, numbers, x, data, fixed) -> float:
    """The convergence measure of newton.py, for a point found by another method."""
    _, derivatives = _single(structure)
    x = jnp.asarray(x)
    _, g, h, _ = derivatives(numbers, x, data)
    return float(bounded_edm(x, g, h, numbers.lower, numbers.upper, jnp.asarray(fixed)))


def _scipy_lbfgsb(structure, numbers, data, init, fixed):
    import scipy.optimize

    value_and_grad, _ = _single(structure)
    free = ~np.asarray(fixed)
    x_all = np.array(init, dtype=float)

    def fun(x_free):
        x_all[free] = x_free
        f, g = value_and_grad(numbers, jnp.asarray(x_all), data)
        return float(f), np.asarray(g)[free]

    bounds = list(
        zip(np.asarray(numbers.lower)[free], np.asarray(numbers.upper)[free], strict=True)
    )
    result = scipy.optimize.minimize(fun, x_all[free], jac=True, method="L-BFGS-B", bounds=bounds)
    x_all[free] = result.x
    return x_all


class _OutOfTime(Exception):
    """Raised inside MIGRAD's objective to stop a retry at its time limit."""


def _minuit(structure, numbers, data, start, fixed, seconds: float):
    """MIGRAD (strategy 2) from ``start``; returns its result, or the best point it
    evaluated if it ran past ``seconds`` (a pathological input must not hold a scan)."""
    import iminuit

    value_and_grad, _ = _single(structure)
    deadline = time.monotonic() + seconds
    best = [np.inf, np.asarray(start, dtype=float)]

    def fun(x):
        if time.monotonic() > deadline:
            raise _OutOfTime
        value = float(value_and_grad(numbers, jnp.asarray(x), data)[0])
        if value < best[0]:
            best[:] = [value, np.array(x)]
        return value

    def grad(x):
        return np.asarray(value_and_grad(numbers, jnp.asarray(x), data)[1])

    minuit = iminuit.Minuit(fun, np.asarray(start, dtype=float), grad=grad)
    minuit.errordef = 1.0  # objective is -2 log L
    minuit.strategy = 2
    minuit.tol = 1e-6
    minuit.limits = list(zip(np.asarray(numbers.lower), np.asarray(numbers.upper), strict=True))
    minuit.fixed = list(np.asarray(fixed, dtype=bool))
    try:
        minuit.migrad(ncall=100_000)
    except _OutOfTime:
        return best[1]
    return np.asarray(minuit.values)


def batched(numbers: Numbers, n: int) -> Numbers:
    """Numbers with a leading batch axis of ``n`` (broadcast if they have none)."""
    if np.ndim(numbers.nominal) == 2:
        return jax.tree.map(jnp.asarray, numbers)
    return jax.tree.map(lambda a: jnp.broadcast_to(jnp.asarray(a), (n, *np.shape(a))), numbers)


def fit_batch(
    structure: Structure,
    numbers: Numbers,
    data,
    *,
    init=None,
    fixed=None,
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
        result = _newton_batch(structure, options)(numbers, data, init, fixed)
        pars, fun = np.array(result.x), np.array(result.fun)
        edm, converged = np.array(result.edm), np.array(result.converged)
        iterations, method = np.array(result.iterations), np.full(n, "newton", dtype=object)
    elif options.first_method == "lbfgsb":
        pars = np.stack(
            [
                _scipy_lbfgsb(structure, _row(numbers, i), data[i], init[i], fixed[i])
                for i in range(n)
            ]
        )
        edm = np.array(
            [_edm(structure, _row(numbers, i), pars[i], data[i], fixed[i]) for i in range(n)]
        )
        value_and_grad, _ = _single(structure)
        fun = np.array(
            [float(value_and_grad(_row(numbers, i), pars[i], data[i])[0]) for i in range(n)]
        )
        converged = edm < options.edm_tolerance
        iterations, method = np.zeros(n, dtype=int), np.full(n, "lbfgsb", dtype=object)
    else:
        raise ValueError(f"unknown first_method {options.first_method!r}")

    result = FitResult(pars, fun, converged, edm, iterations, method, _messages(converged, edm))
    _retry_failed(structure, numbers, False, data, fixed, options, result)
    result.warning = bound_warnings(structure, numbers, result.pars, fixed)
    return result


#: A free fit whose -2 log L exceeds a constrained fit's (same data, a parameter held) by
#: more than this ended in a local minimum (fits converge to ~1e-9).
LOCAL_MINIMUM_TOLERANCE = 1e-6


def local_minima(free: FitResult, constrained: list[FitResult]) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose free fit ended in a local minimum, and where to fit them again.

    A free fit can never end above a fit of the same data with a parameter held (the POI
    fixed): where it does, it is stuck in a local minimum. Real likelihoods have them
    (3L-eRJR: 0.1–1 % of toy data sets, 0.1–2.6 in -2 log L). Returns those rows and, for
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


def replace_rows(result: FitResult, rows: np.ndarray, again: FitResult, where=True) -> None:
    """Replace ``result``'s ``rows`` (in place) by the fits of ``again`` (one row each),
    where ``where`` (a mask over ``rows``; default: all)."""
    where = np.broadcast_to(where, rows.shape)
    for name, values in vars(result).items():
        if values is not None:
            values[rows[where]] = getattr(again, name)[where]


def keep_lower(result: FitResult, rows: np.ndarray, again: FitResult) -> None:
    """Replace ``result``'s ``rows`` (in place) by the converged fits of ``again`` (one
    row each) that end lower."""
    replace_rows(result, rows, again, again.converged & (again.twice_nll < result.twice_nll[rows]))


def _messages(converged, edm) -> np.ndarray:
    return np.array(
        [_unconverged(e) if not c else "" for c, e in zip(converged, edm, strict=True)],
        dtype=object,
    )


def _unconverged(edm: float, prefix: str = "not converged") -> str:
    """Why a fit is not converged: convergence needs a positive-definite Hessian (over the
    parameters free to move) and an EDM below tolerance."""
    if not np.isfinite(edm):
        return f"{prefix}: Hessian not positive definite at the last point"
    return f"{prefix}: EDM {edm:.3g} above tolerance"


def bound_warnings(structure: Structure, numbers: Numbers, pars, fixed) -> np.ndarray:
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


def _mark_runaways(structure: Structure, numbers, shared_model, data, result) -> np.ndarray:
    """The unconverged fits of ``result`` that ended with a negative expected yield in a
    bin where their data have no events, with a message saying so.

    The Poisson term of such a bin is ν itself, so -2 log L falls as the yield goes
    further negative (histosys extrapolated to large pulls, scaled up by a free
    factor), possibly until parameters reach their bounds (1Lbb toys: yields of -4e5):
    no retry mends that.
    """
    runaway = np.zeros(len(result), dtype=bool)
    unconverged = np.flatnonzero(~np.asarray(result.converged))
    if not len(unconverged):  # the usual case: no yields to compute
        return runaway
    models = numbers if shared_model else jax.tree.map(lambda a: a[unconverged], numbers)
    nu = _expected_yields(structure, models, shared_model, result.pars[unconverged])
    negative = (np.asarray(data)[unconverged, : structure.n_bins] == 0) & (nu < 0)
    ends = np.cumsum(structure.channel_bins)
    for k in np.flatnonzero(negative.any(axis=1)):
        i, b = unconverged[k], int(np.flatnonzero(negative[k])[np.argmin(nu[k][negative[k]])])
        channel = int(np.searchsorted(ends, b, side="right"))
        local = b - (int(ends[channel - 1]) if channel else 0)
        result.message[i] = (
            f"not converged: the expected yield of bin {local} of channel "
            f"'{structure.channels[channel]}' went negative ({nu[k, b]:.3g}) where the data "
            "have no events, and -2 log L can fall without bound there (not retried)"
        )
        runaway[i] = True
    return runaway


def _retry_failed(structure, numbers, shared_model, data, fixed, options, result) -> None:
    """Mark runaway fits (:func:`_mark_runaways`), then, if ``options.retry``, retry every
    other unconverged fit of ``result`` in place (:func:`_retry`) and check the retried
    ones for runaways too. ``numbers``: one model for all fits (``shared_model``) or
    one per fit."""
    runaway = _mark_runaways(structure, numbers, shared_model, data, result)
    if not options.retry:
        return
    retried = np.flatnonzero(~result.converged & ~runaway)
    for i in retried:
        row = numbers if shared_model else _row(numbers, i)
        _retry(structure, row, data[i], fixed[i], options, i, result)
    if len(retried):
        _mark_runaways(structure, numbers, shared_model, data, result)


def _retry(structure, row, data, fixed, options, i, result: FitResult) -> None:
    """MIGRAD from the best point so far, then a Newton polish; update row ``i`` of
    ``result`` in place (``row``, ``data``, ``fixed``: that fit's model and data)."""
    start = _minuit(structure, row, data, result.pars[i], fixed, options.retry_seconds)
    polish = _newton_batch(structure, options)(
        jax.tree.map(lambda a: jnp.asarray(a)[None], row),
        jnp.asarray(data)[None],
        jnp.asarray(start)[None],
        jnp.asarray(fixed)[None],
    )
    result.pars[i], result.twice_nll[i] = np.array(polish.x[0]), float(polish.fun[0])
    result.edm[i], result.converged[i] = float(polish.edm[0]), bool(polish.converged[0])
    result.iterations[i] += int(polish.iterations[0])
    result.method[i] = f"{result.method[i]}>minuit>newton"
    result.message[i] = (
        "" if result.converged[i] else _unconverged(result.edm[i], "not converged after retries")
    )


def hesse_uncertainties(structure: Structure, numbers: Numbers, pars, data, fixed=None):
    """Covariance matrix and uncertainties from the exact Hessian of -2 log L.

    Fixed parameters get zero uncertainty. ``numbers`` is one model (no batch axis).
    """
    _, derivatives = _single(structure)
    _, _, hessian, _ = derivatives(
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
