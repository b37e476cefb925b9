"""Toy-based hypothesis tests: batched pseudo-experiments, their distributions, CLs.

The conventions are pyhf's ``ToyCalculator`` (``hypotest(calctype="toybased")``), to
the letter:

* **Generation.** The model is fitted to the observed data with the POI fixed at the
  tested value ``mu`` (signal+background) and at 0 (background only; 1 for ``q0``).
  Toys of each hypothesis are drawn from the model's pdf at those parameters: Poisson
  main counts with the expected rates, Gaussian auxiliary data ``Normal(θ, σ)`` for
  normsys, histosys, lumi and staterror constraints, Poisson auxiliary data
  ``Poisson(τ·γ)`` for shapesys constraints.
* **Test statistic.** Every toy gets the test statistic of the observed data (a fit
  with the POI fixed at ``mu`` — 0 for ``q0`` — and a free fit), with the model's
  bounds and fixed parameters.
* **p-values.** ``CLs+b`` and ``CLb`` are the fractions of toys of each hypothesis
  whose test statistic is ``>=`` the observed one; ``CLs = CLs+b / CLb`` (NaN for
  0/0, as pyhf's numpy division, with a message saying why: no background toy
  reached the observed test statistic). For ``q0`` the reported value is ``CLs+b``, the
  p-value of the hypothesis ``mu`` (pyhf's convention).
* **Expected band.** Every background-only toy's test statistic is taken as if
  observed, giving one CLs (CLs+b for ``q0``) per toy; the band is that sample's
  percentiles at Φ(-2), Φ(-1), 50%, Φ(1), Φ(2) (linear interpolation), lowest first:
  −2σ, −1σ, median, +1σ, +2σ as in pyhf. With many background toys at q = 0 the +1σ
  and +2σ values are exactly 1.

**Reproducibility.** Toy ``i`` of hypothesis ``h`` for seed ``s`` is drawn with the key
``fold_in(fold_in(key(s), h), i)``: it does not depend on how toys are chunked or on
the machine, so chunk ``[k·n, (k+1)·n)`` computed anywhere is the same toys, and
chunks merge (:func:`merge`) into the distribution of one run. Toys are fitted on a
fixed number of lanes (``batch_size``), each lane taking the next fit of a queue as
soon as its own is done (:func:`~hfpipe.infer.fit.fit_datasets`): one compilation per
model structure and batch size, and a toy's fit does not depend on its lane or its
neighbours. It does depend, to rounding (~1e-12 in -2 log L), on the batch size: XLA
compiles arithmetic differently for different batch shapes; and a single lane takes
the first steps of its fits by Fisher scoring (:func:`~hfpipe.infer.newton.step`), so
its minima agree with those of several lanes to the EDM tolerance (or, in about one
fit in 1,500 on 3L-eRJR, are other local minima). Bit-identical merging therefore
needs the same batch size in every chunk (the default is a function of the structure
only).

**Failed fits.** A toy whose free or fixed fit does not converge (after fit_batch's
retries) is kept with ``converged = False`` and left out of the distributions;
``n_failed`` counts them and :func:`cls_from_toys` raises :class:`ToyFitsFailed` only
when their fraction exceeds ``max_failed_fraction``.

Unlike pyhf, a toy's free fit starts from the generating parameters (its constrained
parameters at the toy's auxiliary data) rather than the model's suggested init, and its
fit with the POI fixed starts where the free fit ended (both converge to a minimum,
checked by EDM, in fewer steps). Toy fits stop at an EDM
of ``FitOptions.toy_edm_tolerance`` (1e-6 in -2 log L, so a toy's test statistic is
within about 1e-6 of its exact value); the fits to the observed data, which give the
observed test statistic and the generating parameters, at ``edm_tolerance`` (1e-9).
"""

from __future__ import annotations

import collections
import copy
import functools
import hashlib
import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float, Int

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import HfpipeError
from hfpipe.infer.asymptotic import HypotestResult, check_poi_values
from hfpipe.infer.calctypes import DEFAULT_TOY_BATCH_SIZE
from hfpipe.infer.calculators import ToyCalculator
from hfpipe.infer.fit import (
    DEFAULT_OPTIONS,
    FitOptions,
    fit_datasets,
    local_minima,
)
from hfpipe.infer.fitresult import FitResult
from hfpipe.infer.lanes import queue_length
from hfpipe.infer.teststats import (
    asimov_value,
    check_test_statistic,
    test_statistic,
    tested_value,
)
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.likelihood import expected_aux, expected_main, prepare
from hfpipe.model.structure import Layout, Numbers, Structure

__all__ = [
    "DEFAULT_TOY_BATCH_SIZE",
    "HYPOTHESES",
    "ToyCLs",
    "ToyDistributions",
    "ToyFitsFailed",
    "cls_from_toys",
    "merge",
    "sample_toys",
    "standard_errors",
    "toy_batch_size",
    "toy_distributions",
    "toy_hypotest_batch",
    "toys_per_call",
]

#: Hypotheses in key order: toys of ``HYPOTHESES[h]`` use ``fold_in(key(seed), h)``.
HYPOTHESES = ("signal", "background")


class ToyFitsFailed(HfpipeError):
    """More toy fits failed than the allowed fraction."""


@dataclass(frozen=True)
class ToyDistributions:
    """Test statistics of toys of both hypotheses, with the observed value.

    ``signal`` and ``background`` hold one test statistic per toy (NaN where a fit
    failed); ``*_converged`` says which fits succeeded; ``toy_index`` numbers the toys
    (the same for both hypotheses), which is what makes chunks mergeable.
    """

    mu: float  # tested POI value
    test_stat: str
    seed: int
    q_obs: float  # test statistic of the observed data
    mu_hat: float  # free fit to the observed data
    twice_nll: float  # free fit to the observed data
    toy_index: Int[np.ndarray, " toys"]
    signal: Float[np.ndarray, " toys"]  # test statistic of the signal+background toys
    background: Float[np.ndarray, " toys"]  # test statistic of the background-only toys
    signal_converged: Bool[np.ndarray, " toys"]
    background_converged: Bool[np.ndarray, " toys"]
    signal_pars: Float[np.ndarray, " parameters"]  # generating the signal toys
    background_pars: Float[np.ndarray, " parameters"]  # generating the background toys
    #: free fit to the observed data (None when read back from chunk files)
    bestfit: Float[np.ndarray, " parameters"] | None = None

    @property
    def ntoys(self) -> int:
        return len(self.toy_index)

    @property
    def n_failed(self) -> int:
        """Toys (of either hypothesis) whose fits failed."""
        return int(np.sum(~self.signal_converged) + np.sum(~self.background_converged))

    def cls(self, *, max_failed_fraction: float = 0.01) -> ToyCLs:
        """Toy-based CLs of these toys; see :func:`cls_from_toys`."""
        return cls_from_toys(self, max_failed_fraction=max_failed_fraction)

    def standard_errors(self, *, n_bootstrap: int = 200, seed: int = 0) -> np.ndarray:
        """Bootstrap errors of (CLs_obs, 5 expected values); see :func:`standard_errors`."""
        return standard_errors(self, n_bootstrap=n_bootstrap, seed=seed)


@dataclass(frozen=True)
class ToyCLs:
    """Toy-based CLs: observed values and the expected band (−2σ … +2σ)."""

    cls_obs: float  # CLs (CLs+b for q0)
    clsb_obs: float
    clb_obs: float
    cls_exp: Float[np.ndarray, " 5"]
    ntoys: int  # toys per hypothesis
    n_failed: int
    #: '' or why ``cls_obs`` is not a number (no background toy at or above q_obs)
    message: str = ""


#: Rule of :func:`toy_batch_size`: lanes ≈ _LANE_BUDGET / parameters², a power of two
#: in [1, _MAX_LANES].
_LANE_BUDGET, _MAX_LANES = 6400, 128


def toy_batch_size(structure: Structure) -> int:
    """Default number of toy fits run side by side (lanes) for a model of this structure.

    Fewer lanes for larger models: the per-lane work is dominated by (P, P) matrices
    (Hessian, its Cholesky factor), and once a batch of them outgrows the CPU's caches
    a wider batch only costs more per fit, while the factorisations that some lane
    needs (the Gauss–Newton stand-in, the undamped Hessian) are made for all lanes;
    and a single lane fits by Fisher scoring first. The rule ``6400 / P²`` rounded
    down to a power of two (1 to 128): one lane from ~60 parameters, 128 for a few;
    it picked the best or a near-best lane count on every model measured
    (docs/performance.md). It depends on the structure only, so chunks of toys made
    anywhere with the default batch size merge bit for bit.
    """
    lanes = _LANE_BUDGET / max(structure.n_parameters, 1) ** 2
    return int(min(max(2 ** math.floor(math.log2(max(lanes, 1))), 1), _MAX_LANES))


# -- generation ---------------------------------------------------------------------


def toy_keys(seed: int, hypothesis: int, first: int, n: int) -> jax.Array:
    """Keys of toys ``first … first+n-1`` of one hypothesis (independent of chunking)."""
    return _toy_keys(seed, hypothesis, first, n)


@functools.partial(jax.jit, static_argnums=3)
def _toy_keys(seed, hypothesis, first, n: int) -> jax.Array:
    base = jax.random.fold_in(jax.random.key(seed), hypothesis)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(first + jnp.arange(n))


@per_layout
def _sampler(structure: Layout):
    normal_aux = jnp.asarray(structure.normal_aux, dtype=int)
    poisson_aux = jnp.asarray(structure.poisson_aux, dtype=int)

    def one(numbers: Numbers, pars, key):
        prepared = prepare(structure, numbers)
        rate = expected_main(structure, prepared, pars)
        aux_rate = expected_aux(structure, prepared, pars)
        k_main, k_normal, k_poisson = jax.random.split(key, 3)
        main = jax.random.poisson(k_main, rate).astype(pars.dtype)
        normal = aux_rate[normal_aux] + numbers.normal_sigma * jax.random.normal(
            k_normal, (len(structure.normal_aux),), pars.dtype
        )
        poisson = jax.random.poisson(k_poisson, aux_rate[poisson_aux]).astype(pars.dtype)
        aux = jnp.zeros(structure.n_aux, pars.dtype).at[normal_aux].set(normal)
        return jnp.concatenate([main, aux.at[poisson_aux].set(poisson)])

    return jax.jit(jax.vmap(one, in_axes=(None, None, 0)))


def sample_toys(structure: Structure, numbers: Numbers, pars, keys: jax.Array) -> jax.Array:
    """One pseudo-data set (main counts then auxiliary data) per key, drawn at ``pars``."""
    return _sampler(structure)(numbers, jnp.asarray(pars, dtype=float), keys)


# -- fits and distributions -----------------------------------------------------------


def _auxiliary_start(structure: Structure, numbers: Numbers, data, start) -> np.ndarray:
    """Where each toy's free fit starts: its generating parameters ``start``, except that
    every free constrained parameter starts where its own auxiliary measurement puts
    it: at the toy's auxiliary datum for a Gaussian constraint, at datum / τ for a
    Poisson one (within the bounds). Toys draw their auxiliary data afresh, and the fit
    moves the constrained parameters most of the way there; a shapesys γ with a small
    τ whose toy datum is 0 goes to its lower bound, which from the generating value
    took the first steps several step shortenings (the free fit's evaluations fall by
    nearly half, docs/performance.md). Such a start can be far off for a Poisson
    constraint with a small τ (a datum of 1 with τ = 0.058 puts γ at its bound of 10)
    and, with Gaussian data a few σ out, leave a bin with events no expected yield: the
    few free fits that fail from there are run again from the generating parameters."""
    start = np.array(start, dtype=float)  # (toys, parameters)
    aux = np.asarray(data)[:, structure.n_bins :]
    free = ~np.asarray(numbers.fixed, dtype=bool)
    lower, upper = np.asarray(numbers.lower), np.asarray(numbers.upper)
    for params, aux_index, scale in (
        (structure.normal_params, structure.normal_aux, 1.0),
        (structure.poisson_params, structure.poisson_aux, np.asarray(numbers.poisson_factor)),
    ):
        params = np.asarray(params, dtype=int)
        own = np.clip(
            aux[:, np.asarray(aux_index, dtype=int)] / scale, lower[params], upper[params]
        )
        start[:, params] = np.where(free[params], own, start[:, params])
    return start


def _test_statistics(structure, numbers, data, start, tested, test_stat, lanes, options):
    """Test statistic and convergence of every row of ``data``: a free fit starting at
    its row of ``start`` (the toy's generating parameters) with the constrained
    parameters at their auxiliary data (:func:`_auxiliary_start`), then the fit with
    the POI fixed at ``tested``, starting where the free fit ended (at ``start`` where
    that did not converge). The two minima are close, so the second fit takes about
    half the evaluations it takes from the generating parameters. A free fit that
    ended above the fixed one is fitted again
    (:func:`~hfpipe.infer.fit.local_minima`). Every fit here stops at
    ``options.toy_edm_tolerance``."""
    options = replace(options, edm_tolerance=options.toy_edm_tolerance, polish=False)
    n, poi = data.shape[0], structure.poi_index
    fixed = np.broadcast_to(np.asarray(numbers.fixed, dtype=bool), (n, structure.n_parameters))
    start = np.broadcast_to(np.asarray(start, dtype=float), (n, structure.n_parameters))
    fit = functools.partial(fit_datasets, structure, numbers, lanes=lanes, options=options)
    free = fit(
        data,
        init=_auxiliary_start(structure, numbers, data, start),
        fixed=fixed,
        options=replace(options, retry=False),
    )
    failed = np.flatnonzero(~free.converged)
    if len(failed):  # fitted again from the generating parameters (with retries)
        free = free.replace_rows(failed, fit(data[failed], init=start[failed], fixed=fixed[failed]))
    fixed_init = np.where(free.converged[:, None], free.pars, start)
    fixed_init[:, poi] = tested
    fixed_fixed = fixed.copy()
    fixed_fixed[:, poi] = True
    conditional = fit(data, init=fixed_init, fixed=fixed_fixed)
    stuck, starts = local_minima(free, [conditional])
    if len(stuck):  # fitted again from the fixed fit's minimum
        free = free.keep_lower(stuck, fit(data[stuck], init=starts, fixed=fixed[stuck]))
    q = test_statistic(test_stat, tested, free.pars[:, poi], conditional.twice_nll, free.twice_nll)
    converged = free.converged & conditional.converged
    return np.where(converged, q, np.nan), converged


#: Models whose fits to the observed data a process keeps (:func:`_observed_fits_once`)
_OBSERVED_KEPT = 4
_observed: collections.OrderedDict[tuple, tuple[FitResult, float]] = collections.OrderedDict()


def _observed_fits_once(structure, numbers, mu, test_stat, lanes, options):
    """:func:`_observed_fits`, made once a process for the same model and settings: every
    chunk of a run shared among processes (:func:`~hfpipe.scanning.pool.toys_in_processes`)
    needs them, and they are the same fits of the same data each time. The model is
    recognised by its structure and a digest of its numbers; the caller gets a copy."""
    key = (structure, _digest(numbers), float(mu), test_stat, lanes, options)
    if key not in _observed:
        _observed[key] = _observed_fits(structure, numbers, mu, test_stat, lanes, options)
        while len(_observed) > _OBSERVED_KEPT:
            _observed.popitem(last=False)
    _observed.move_to_end(key)
    return copy.deepcopy(_observed[key])


def _digest(numbers: Numbers) -> bytes:
    """sha256 of a model's arrays: their types, shapes and values."""
    found = hashlib.sha256()
    for field in numbers:
        array = np.ascontiguousarray(field)
        found.update(f"{array.dtype.str}{array.shape}".encode())
        found.update(array.tobytes())
    return found.digest()


def _observed_fits(structure, numbers, mu, test_stat, lanes, options):
    """The fits to the observed data and the observed test statistic.

    Four fits to the observed data: free, POI fixed at the tested value (the test
    statistic), at ``mu`` (signal+background toys) and at 0 (background toys; 1 for
    ``q0``). They reuse the toy fits' compiled lanes (four tasks of a queue).
    """
    poi, tested = structure.poi_index, float(tested_value(test_stat, mu))
    data = np.concatenate([np.asarray(numbers.observed), np.asarray(numbers.auxdata)])
    inits = np.tile(np.asarray(numbers.init, dtype=float), (4, 1))
    fixeds = np.tile(np.asarray(numbers.fixed, dtype=bool), (4, 1))
    inits[1:4, poi] = [tested, mu, asimov_value(test_stat)]
    fixeds[1:4, poi] = True
    fits = fit_datasets(
        structure,
        numbers,
        np.tile(data, (4, 1)),
        init=inits,
        fixed=fixeds,
        lanes=lanes,
        options=options,
    )
    if not fits.converged.all():
        raise ToyFitsFailed(
            "fits to the observed data did not converge: " + "; ".join(m for m in fits.message if m)
        )
    q_obs = test_statistic(
        test_stat, tested, fits.pars[0, poi], fits.twice_nll[1], fits.twice_nll[0]
    )
    return fits, float(q_obs)


def toys_per_call(structure: Structure, batch_size: int | None = DEFAULT_TOY_BATCH_SIZE) -> int:
    """Toys of each hypothesis whose fits (2 hypotheses) fill one compiled call of
    :func:`toy_distributions`: a chunk of a multiple of this many wastes no fits."""
    lanes = toy_batch_size(structure) if batch_size is None else batch_size
    return queue_length(lanes) // 2


def toy_distributions(
    structure: Structure,
    numbers: Numbers,
    mu: float = 1.0,
    *,
    ntoys: int = 1000,
    seed: int = 0,
    first_toy: int = 0,
    test_stat: str = "qtilde",
    batch_size: int | None = DEFAULT_TOY_BATCH_SIZE,
    options: FitOptions = DEFAULT_OPTIONS,
) -> ToyDistributions:
    """Test-statistic distributions of toys ``first_toy … first_toy+ntoys-1`` of one model.

    ``numbers`` is one model (no batch axis). ``batch_size`` fits run side by side
    (default: :func:`toy_batch_size` of the structure), each taking the next fit of the
    queue when its own is done (:func:`~hfpipe.infer.fit.fit_datasets`). For a given
    batch size the result of toy ``i`` depends only on (model, mu, seed, i); other
    batch sizes agree to rounding. Chunks of one run computed anywhere merge
    (:func:`merge`) into the same distribution: several processes can share the toys
    (``hfpipe.toys(..., workers=N)``).
    """
    check_test_statistic(test_stat)
    lanes = toy_batch_size(structure) if batch_size is None else batch_size
    if ntoys < 1 or lanes < 1:
        raise ValueError("ntoys and batch_size must be positive")
    check_poi_values(structure, numbers, [tested_value(test_stat, mu), mu])
    tested = float(tested_value(test_stat, mu))
    observed, q_obs = _observed_fits_once(structure, numbers, mu, test_stat, lanes, options)
    generating = (observed.pars[2], observed.pars[3])  # signal, background
    size = toys_per_call(structure, lanes)
    qs, oks = [], []
    for start in range(first_toy, first_toy + ntoys, size):
        count = min(size, first_toy + ntoys - start)
        data = []
        for h, pars in enumerate(generating):
            keys = toy_keys(seed, h, start, size)  # full size: one shape, one compilation
            data.append(np.asarray(sample_toys(structure, numbers, pars, keys))[:count])
        q, ok = _test_statistics(
            structure,
            numbers,
            np.concatenate(data),
            np.repeat(np.stack(generating), count, axis=0),
            tested,
            test_stat,
            lanes,
            options,
        )
        qs.append(q.reshape(2, count))
        oks.append(ok.reshape(2, count))
    (signal, background), (signal_ok, background_ok) = (
        np.concatenate(a, axis=1) for a in (qs, oks)
    )
    signal_pars, background_pars = generating
    return ToyDistributions(
        mu=float(mu),
        test_stat=test_stat,
        seed=int(seed),
        q_obs=q_obs,
        mu_hat=float(observed.pars[0, structure.poi_index]),
        twice_nll=float(observed.twice_nll[0]),
        toy_index=np.arange(first_toy, first_toy + ntoys),
        signal=signal,
        background=background,
        signal_converged=signal_ok,
        background_converged=background_ok,
        signal_pars=np.asarray(signal_pars),
        background_pars=np.asarray(background_pars),
        bestfit=np.asarray(observed.pars[0]),
    )


def merge(parts: list[ToyDistributions]) -> ToyDistributions:
    """One distribution from chunks of the same run (same mu, test statistic, seed).

    Toys are ordered by index; chunks must not overlap. The result equals, bit for bit,
    the distribution of one run over the union of the chunks' toys.
    """
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]
    for part in parts[1:]:
        same = (part.mu, part.test_stat, part.seed) == (first.mu, first.test_stat, first.seed)
        if not same or part.q_obs != first.q_obs:
            raise HfpipeError(
                "toy chunks come from different runs (mu, test statistic, seed or observed "
                f"test statistic differ): {first.mu, first.test_stat, first.seed, first.q_obs} "
                f"vs {part.mu, part.test_stat, part.seed, part.q_obs}"
            )
    index = np.concatenate([p.toy_index for p in parts])
    order = np.argsort(index, kind="stable")
    if np.any(np.diff(index[order]) == 0):
        raise HfpipeError("toy chunks overlap: the same toy index appears twice")

    def joined(field):
        return np.concatenate([getattr(p, field) for p in parts])[order]

    return replace(
        first,
        toy_index=index[order],
        signal=joined("signal"),
        background=joined("background"),
        signal_converged=joined("signal_converged"),
        background_converged=joined("background_converged"),
    )


# -- p-values and CLs -----------------------------------------------------------------


def _cls(signal: np.ndarray, background: np.ndarray, q_obs: float, test_stat: str):
    """(cls_obs, clsb_obs, clb_obs, cls_exp) from the converged toys' test statistics."""
    observed, band = ToyCalculator(test_stat).hypotest(q_obs, signal, background)
    return float(observed.reported), float(observed.clsb), float(observed.clb), band


def cls_from_toys(distributions: ToyDistributions, *, max_failed_fraction: float = 0.01) -> ToyCLs:
    """Toy-based CLs_obs and expected band (pyhf's conventions, see the module docstring).

    Toys with a failed fit are left out; more than ``max_failed_fraction`` of them (of
    either hypothesis) raises :class:`ToyFitsFailed`.
    """
    d = distributions
    for name, ok in (("signal", d.signal_converged), ("background", d.background_converged)):
        failed = int(np.sum(~ok))
        if failed > max_failed_fraction * len(ok) or failed == len(ok):
            raise ToyFitsFailed(
                f"{failed} of {len(ok)} {name} toy fits failed "
                f"(more than max_failed_fraction = {max_failed_fraction})"
            )
    signal, background = d.signal[d.signal_converged], d.background[d.background_converged]
    observed, clsb, clb, band = _cls(signal, background, d.q_obs, d.test_stat)
    message = ""
    if not np.isfinite(observed):
        message = (
            f"CLs undefined: none of the {len(background)} background toys has a test "
            f"statistic at or above the observed {d.q_obs:.4g} (CLb = CLs+b = 0); run more toys"
        )
    return ToyCLs(observed, clsb, clb, band, d.ntoys, d.n_failed, message)


def standard_errors(
    distributions: ToyDistributions, *, n_bootstrap: int = 200, seed: int = 0
) -> np.ndarray:
    """Bootstrap standard errors of (cls_obs, 5 expected values) from the toys' finite number.

    Both hypotheses' converged toys are resampled with replacement, independently;
    the standard deviation of the replicas' CLs estimates the statistical error. For a
    CLs_obs of 0/0 (no background toy above the observed value) the error is NaN.
    """
    d = distributions
    signal = _Resampled(d.signal[d.signal_converged])
    background = _Resampled(d.background[d.background_converged])
    rng = np.random.default_rng(seed)
    replicas = []
    for _ in range(n_bootstrap):
        s, b = signal.draw(rng), background.draw(rng)
        observed, _, _, band = _cls(s, b, d.q_obs, d.test_stat)
        replicas.append([observed, *band])
    return np.std(np.asarray(replicas), axis=0, ddof=1)


class _Resampled:
    """Bootstrap replicas of toys' test statistics, each made in ascending order.

    A replica is the toys drawn with replacement (``rng.choice(samples, n)``: the same
    draws), given as the sorted multiset they form: counting how often each toy was
    drawn takes linear time, where sorting each replica for its p-values took most of
    a 40,000-toy run's bootstrap; p-values and percentiles depend on the multiset only.
    """

    def __init__(self, samples: np.ndarray):
        order = np.argsort(samples, kind="stable")
        self.ordered = samples[order]
        self.rank = np.empty(len(samples), dtype=np.intp)
        self.rank[order] = np.arange(len(samples))

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.ordered)
        drawn = rng.choice(n, n)
        return np.repeat(self.ordered, np.bincount(self.rank[drawn], minlength=n))


class _ToyRow(NamedTuple):
    """One model's toy-based test, as the fields of a HypotestResult row."""

    cls_obs: float
    cls_exp: np.ndarray
    clsb_obs: float
    clb_obs: float
    q_obs: float
    mu_hat: float
    twice_nll: float
    bestfit: np.ndarray
    converged: bool
    message: str
    n_failed: int


def _toy_row(structure, numbers, mu, test_stat, settings: dict, max_failed_fraction) -> _ToyRow:
    """The toy-based test of one model; failures become a row with a message."""
    nothing = np.full(5, np.nan), np.full(structure.n_parameters, np.nan)
    try:
        toys = toy_distributions(structure, numbers, mu, test_stat=test_stat, **settings)
        cls = toys.cls(max_failed_fraction=max_failed_fraction)
    except ToyFitsFailed as error:
        return _ToyRow(
            np.nan,
            nothing[0],
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            nothing[1],
            False,
            str(error),
            0,
        )
    messages = [cls.message] if cls.message else []
    if cls.n_failed:
        messages.append(f"{cls.n_failed} toy fits failed")
    return _ToyRow(
        cls.cls_obs,
        np.asarray(cls.cls_exp, dtype=float),
        cls.clsb_obs,
        cls.clb_obs,
        toys.q_obs,
        toys.mu_hat,
        toys.twice_nll,
        toys.bestfit,
        not cls.message,
        "; ".join(messages),
        cls.n_failed,
    )


def toy_hypotest_batch(
    structure: Structure,
    numbers: Numbers,
    mu,
    *,
    rows: int | None = None,
    test_stat: str = "qtilde",
    ntoys: int = 1000,
    seed: int = 0,
    batch_size: int | None = DEFAULT_TOY_BATCH_SIZE,
    max_failed_fraction: float = 0.01,
    options: FitOptions = DEFAULT_OPTIONS,
) -> HypotestResult:
    """Toy-based CLs of the first ``rows`` models of a batch (default: all), one model
    after the other (the toys are each model's batch), as a :class:`HypotestResult`.

    A model whose fits to the observed data, or too many of whose toy fits, failed
    (:class:`ToyFitsFailed`), or whose CLs is 0/0, is not converged, with a message;
    its values are NaN where they could not be computed. A model's toys depend on
    (model, mu, seed) only: the same in any batch.
    """
    n = np.shape(numbers.nominal)[0]
    mu = np.broadcast_to(np.atleast_1d(np.asarray(mu, dtype=float)), (n,))
    rows = n if rows is None else rows
    settings = {"ntoys": ntoys, "seed": seed, "batch_size": batch_size, "options": options}
    found = [
        _toy_row(
            structure,
            jax.tree.map(lambda a, i=i: np.asarray(a)[i], numbers),
            float(mu[i]),
            test_stat,
            settings,
            max_failed_fraction,
        )
        for i in range(rows)
    ]
    field = {name: np.array([getattr(r, name) for r in found]) for name in _ToyRow._fields}
    return HypotestResult(
        mu=tested_value(test_stat, mu[:rows]),
        cls_obs=field["cls_obs"],
        cls_exp=field["cls_exp"],
        clsb_obs=field["clsb_obs"],
        clb_obs=field["clb_obs"],
        q_obs=field["q_obs"],
        q_asimov=np.full(rows, np.nan),
        mu_hat=field["mu_hat"],
        twice_nll=field["twice_nll"],
        bestfit=field["bestfit"],
        converged=field["converged"],
        message=field["message"].astype(object),
        fits={},
        warning=np.full(rows, "", dtype=object),
        ntoys=np.full(rows, ntoys),
        n_failed=field["n_failed"],
    )
