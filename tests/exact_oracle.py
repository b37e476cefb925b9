"""Exact answers for small HistFactory models: a tests-only oracle, independent of hfpipe.

The likelihood is pyhf 0.7.6's, written here again from its formulas (never from
hfpipe's model code) and evaluated in mpmath at :data:`DIGITS` significant digits:

* main terms: Poisson with the continuous normalisation ``n ln ν - ν - lnΓ(n + 1)``;
* ``ν`` of a (sample, bin): ``(nominal + Σ histosys deltas) × Π normsys factors ×
  Π (normfactor, shapefactor, shapesys, staterror, lumi parameters)``;
* constraints: Gaussian ``-(a - θ)² / 2σ² - ln σ - ln √(2π)`` for normsys and histosys
  (a = 0, σ = 1), staterror (a = 1, σ = sqrt(Σ δ²) / Σ nominal over the samples that
  carry it in the bin) and lumi (a, σ from the measurement); Poisson
  ``a ln(γτ) - γτ - lnΓ(a + 1)`` for shapesys with ``τ = (nominal / δ)²`` and a = τ;
* interpolation codes: normsys code1 (``hi^α`` / ``lo^-α``), code4 (6th-order polynomial
  in ``|α| < 1`` whose coefficients are solved here from its six boundary conditions,
  exponential outside), histosys code0 (piecewise linear), code2 (``aα² + bα`` in
  ``|α| ≤ 1``; outside it the linear continuation of ROOT's code 2, which hfpipe
  follows: pyhf 0.7.6 drops the constant ``hi - nom`` / ``lo - nom`` term there and
  jumps at ``|α| = 1``, so a model meant for pyhf comparisons keeps ``|α| ≤ 1``),
  code4p (6th-order polynomial in ``|α| ≤ 1``, linear outside).

Global minima are found robustly: code0 and code1 have a kink at α = 0, so the range of
every parameter they act through is split there into two boxes, on each of which the
likelihood is smooth; in every box a coarse float grid finds the basins, a bounded
(projected) Newton method in float64 descends into each, and the lowest ones are
polished by Newton steps in mpmath until the step is below ``10^-(DIGITS - 8)``. First
and second derivatives are exact: the likelihood is evaluated on second-order jets
(value, gradient, Hessian). A minimum held at a kink by its one-sided gradients is
reported as such (``Fit.at_kink``): no gradient vanishes there.

On top of the fits: pyhf's ``AsymptoticCalculator`` (Cowan et al., arXiv:1007.1727;
q~μ, qμ, q0, Asimov data from the fit with the POI at 0, at 1 for q0, expected band in
pyhf's order -2σ … +2σ) and the 95 % CL upper limits (roots of CLs(μ) = 0.05, found in
float64 and finished by secant steps on exact fits). Every result is cached.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import mpmath

__all__ = [
    "DIGITS",
    "EXPECTED_SIGMAS",
    "Fit",
    "Hypotest",
    "Limits",
    "Model",
    "OracleError",
    "expected_data",
    "fit",
    "hypotest",
    "model",
    "twice_nll",
    "upper_limits",
]

#: Working precision of the exact computations, in decimal digits.
DIGITS = 50
#: The expected band's order in pyhf: CLs at -2σ, -1σ, median, +1σ, +2σ.
EXPECTED_SIGMAS = (2, 1, 0, -1, -2)
#: Parameters with these modifiers have a kink at α = 0.
_KINKED = {("normsys", "code1"), ("histosys", "code0")}


class OracleError(RuntimeError):
    """The oracle could not certify an answer (a fit that did not converge)."""


# --- numbers: float64 or mpmath, and second-order jets over them ----------------------


@dataclass(frozen=True)
class _Ops:
    """The arithmetic of one number type: float64 for searching, mpmath for answers."""

    num: Callable
    log: Callable
    exp: Callable
    lgamma: Callable
    sqrt: Callable
    pi: Callable
    #: the model's constants and their logarithms in this type, converted once
    _constants: dict = field(default_factory=dict, compare=False, repr=False)

    def const(self, value: float):
        if (key := ("value", value)) not in self._constants:
            self._constants[key] = self.num(value)
        return self._constants[key]

    def const_log(self, value: float):
        if (key := ("log", value)) not in self._constants:
            self._constants[key] = self.log(self.num(value))
        return self._constants[key]


FLOAT = _Ops(float, math.log, math.exp, math.lgamma, math.sqrt, lambda: math.pi)
EXACT = _Ops(mpmath.mpf, mpmath.log, mpmath.exp, mpmath.loggamma, mpmath.sqrt, lambda: +mpmath.pi)


class Jet:
    """A value with its exact gradient and Hessian in a few variables (forward mode)."""

    __slots__ = ("grad", "hess", "value")

    def __init__(self, value, grad, hess):
        self.value, self.grad, self.hess = value, grad, hess

    @classmethod
    def variable(cls, value, index: int, size: int, zero) -> Jet:
        grad = [zero] * size
        grad[index] = zero + 1
        return cls(value, grad, [[zero] * size for _ in range(size)])

    def _scaled(self, factor) -> Jet:
        return Jet(
            self.value * factor,
            [g * factor for g in self.grad],
            [[h * factor for h in row] for row in self.hess],
        )

    def chain(self, f0, f1, f2) -> Jet:
        """f(self) from f, f' and f'' at self's value."""
        g = self.grad
        return Jet(
            f0,
            [f1 * gi for gi in g],
            [
                [f1 * hij + f2 * gi * gj for hij, gj in zip(row, g, strict=True)]
                for row, gi in zip(self.hess, g, strict=True)
            ],
        )

    def __add__(self, other):
        if not isinstance(other, Jet):
            return Jet(self.value + other, self.grad, self.hess)
        return Jet(
            self.value + other.value,
            [a + b for a, b in zip(self.grad, other.grad, strict=True)],
            [
                [a + b for a, b in zip(r, s, strict=True)]
                for r, s in zip(self.hess, other.hess, strict=True)
            ],
        )

    __radd__ = __add__

    def __neg__(self):
        return self._scaled(-1)

    def __sub__(self, other):
        return self + (-other)

    def __mul__(self, other):
        if not isinstance(other, Jet):
            return self._scaled(other)
        a, b = self, other
        return Jet(
            a.value * b.value,
            [a.value * gb + b.value * ga for ga, gb in zip(a.grad, b.grad, strict=True)],
            [
                [
                    a.value * hb + b.value * ha + ga_i * gb_j + gb_i * ga_j
                    for ha, hb, ga_j, gb_j in zip(ra, rb, a.grad, b.grad, strict=True)
                ]
                for ra, rb, ga_i, gb_i in zip(a.hess, b.hess, a.grad, b.grad, strict=True)
            ],
        )

    __rmul__ = __mul__

    def __truediv__(self, number):
        return self._scaled(1 / number)

    def __pow__(self, k: int):
        v = self.value
        return self.chain(v**k, k * v ** (k - 1), k * (k - 1) * v ** (k - 2))


def _value(x):
    return x.value if isinstance(x, Jet) else x


def _log(x, ops: _Ops):
    if isinstance(x, Jet):
        v = x.value
        return x.chain(ops.log(v), 1 / v, -1 / v**2)
    return ops.log(x)


def _exp(x, ops: _Ops):
    if isinstance(x, Jet):
        e = ops.exp(x.value)
        return x.chain(e, e, e)
    return ops.exp(x)


# --- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One scalar parameter (a component of a per-bin modifier is one of its own)."""

    name: str  # pyhf's: "mu", "staterror_CR[0]"
    kind: str  # modifier type (of a normsys and histosys sharing the name: the first seen)
    init: float
    lower: float
    upper: float
    fixed: bool
    constraint: str | None  # "normal", "poisson" or None
    aux: float = 0.0  # observed auxiliary datum
    width: float = 1.0  # σ of a Gaussian constraint, τ of a Poisson one
    kinked: bool = False  # acted on by code0 histosys or code1 normsys


@dataclass(frozen=True)
class _Term:
    """The expected yield of one sample in one bin."""

    nominal: float
    histosys: tuple[tuple[int, float, float, float], ...]  # (parameter, lo, nom, hi)
    normsys: tuple[tuple[int, float, float], ...]  # (parameter, hi, lo)
    factors: tuple[int, ...]  # multiplying parameters


@dataclass(frozen=True)
class Model:
    """A workspace's measurement as the oracle sees it; data are (main, aux) tuples with
    the main counts in pyhf's bin order and one aux datum per constrained parameter."""

    parameters: tuple[Parameter, ...]
    poi: int
    bins: tuple[tuple[_Term, ...], ...]
    observed: tuple[float, ...]
    normsys_code: str
    histosys_code: str

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def constrained(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(self.parameters) if p.constraint)

    def observed_data(self) -> tuple[tuple, tuple]:
        aux = tuple(self.parameters[i].aux for i in self.constrained)
        return tuple(map(mpmath.mpf, self.observed)), tuple(map(mpmath.mpf, aux))


def _modifier_settings(kind: str, samples: list[tuple[str, dict, dict]]) -> list[dict]:
    """pyhf's default settings of each component of a modifier, from the (channel,
    sample, modifier) triples carrying it."""
    if kind in ("normsys", "histosys"):
        return [dict(init=0.0, lower=-5.0, upper=5.0, constraint="normal", aux=0.0)]
    if kind == "normfactor":
        return [dict(init=1.0, lower=0.0, upper=10.0, constraint=None)]
    if kind == "lumi":  # everything from the measurement
        return [dict(constraint="normal")]
    _, sample, modifier = samples[0]
    nominal = sample["data"]
    if kind == "shapefactor":
        return [dict(init=1.0, lower=0.0, upper=10.0, constraint=None) for _ in nominal]
    if kind == "shapesys":
        settings = []
        for nom, delta in zip(nominal, modifier["data"], strict=True):
            valid = nom > 0 and delta > 0
            tau = (nom / delta) ** 2 if valid else 1.0
            settings.append(
                dict(init=1.0, lower=1e-10, upper=10.0, fixed=not valid)
                | dict(constraint="poisson", aux=tau, width=tau)
            )
        return settings
    # staterror: combined relative width per bin (one channel per name in these models)
    if len({channel for channel, _, _ in samples}) != 1:
        raise OracleError("the oracle supports a staterror name in one channel only")
    settings = []
    for b in range(len(nominal)):
        total = sum(s["data"][b] for _, s, _ in samples)
        squares = sum(m["data"][b] ** 2 for _, _, m in samples)
        sigma = math.sqrt(squares) / total if total > 0 else 0.0
        settings.append(
            dict(init=1.0, lower=1e-10, upper=10.0, fixed=sigma == 0)
            | dict(constraint="normal", aux=1.0, width=sigma if sigma > 0 else 1.0)
        )
    return settings


def _parameters(channels: list[dict], measurement: dict, codes: dict) -> list[Parameter]:
    """The model's parameters, in first-seen order, with the measurement's overrides."""
    carriers: dict[str, list] = {}
    kinds: dict[str, str] = {}
    kinked: dict[str, bool] = {}
    for channel in channels:
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                name, kind = modifier["name"], modifier["type"]
                carriers.setdefault(name, []).append((channel["name"], sample, modifier))
                kinds.setdefault(name, kind)
                code = codes.get(kind)
                kinked[name] = kinked.get(name, False) or (kind, code) in _KINKED
    user = {p["name"]: p for p in measurement["config"].get("parameters", [])}
    parameters = []
    for name, kind in kinds.items():
        settings = _modifier_settings(kind, carriers[name])
        override = user.get(name, {})
        per_bin = kind in ("shapefactor", "shapesys", "staterror")
        for k, setting in enumerate(settings):
            if "inits" in override:
                setting["init"] = override["inits"][k]
            if "bounds" in override:
                setting["lower"], setting["upper"] = override["bounds"][k]
            if "auxdata" in override:
                setting["aux"] = override["auxdata"][k]
            if "sigmas" in override:
                setting["width"] = override["sigmas"][k]
            setting["fixed"] = override.get("fixed", setting.get("fixed", False))
            label = f"{name}[{k}]" if per_bin else name
            parameters.append(Parameter(label, kind, kinked=kinked[name], **setting))
    return parameters


def _terms(channel: dict, index: Mapping[str, int]) -> tuple[tuple[_Term, ...], ...]:
    """Per bin of the channel, the expected-yield terms of its samples."""
    bins = []
    for b in range(len(channel["samples"][0]["data"])):
        terms = []
        for sample in channel["samples"]:
            histosys, normsys, factors = [], [], []
            for m in sample["modifiers"]:
                kind, name = m["type"], m["name"]
                if kind == "histosys":
                    data = m["data"]
                    histosys.append(
                        (index[name], data["lo_data"][b], sample["data"][b], data["hi_data"][b])
                    )
                elif kind == "normsys":
                    normsys.append((index[name], m["data"]["hi"], m["data"]["lo"]))
                elif kind in ("shapefactor", "shapesys", "staterror"):
                    factors.append(index[f"{name}[{b}]"])
                else:
                    factors.append(index[name])
            terms.append(_Term(sample["data"][b], tuple(histosys), tuple(normsys), tuple(factors)))
        bins.append(tuple(terms))
    return tuple(bins)


@functools.cache
def _model(key: str) -> Model:
    spec = json.loads(key)
    workspace, codes = spec["workspace"], spec["codes"]
    channels = sorted(workspace["channels"], key=lambda c: c["name"])
    measurement = workspace["measurements"][0]
    parameters = _parameters(channels, measurement, codes)
    index = {p.name: i for i, p in enumerate(parameters)}
    observations = {o["name"]: o["data"] for o in workspace["observations"]}
    return Model(
        parameters=tuple(parameters),
        poi=index[measurement["config"]["poi"]],
        bins=tuple(b for channel in channels for b in _terms(channel, index)),
        observed=tuple(float(n) for c in channels for n in observations[c["name"]]),
        normsys_code=codes["normsys"],
        histosys_code=codes["histosys"],
    )


def _key(workspace: Mapping, normsys_code: str, histosys_code: str) -> str:
    codes = {"normsys": normsys_code, "histosys": histosys_code}
    return json.dumps({"workspace": workspace, "codes": codes}, sort_keys=True)


def model(workspace: Mapping, *, normsys_code: str = "code4", histosys_code: str = "code4p"):
    """The oracle's :class:`Model` of a workspace's first measurement."""
    return _model(_key(workspace, normsys_code, histosys_code))


# --- interpolation --------------------------------------------------------------------


@functools.cache
def _code4_coefficients(hi: float, lo: float) -> tuple:
    """a_1 … a_6 of code4 (α0 = 1): value, slope and curvature of ``1 + Σ a_i α^i`` match
    ``hi^α`` at α = 1 and ``lo^-α`` at α = -1 (solved at the oracle's precision)."""
    with mpmath.workdps(DIGITS + 10):
        h, lo_ = mpmath.mpf(hi), mpmath.mpf(lo)
        rows, rhs = [], []
        for sign, base in ((1, h), (-1, lo_)):
            ln = mpmath.log(base)
            rows.append([mpmath.mpf(sign) ** i for i in range(1, 7)])
            rhs.append(base - 1)
            rows.append([i * mpmath.mpf(sign) ** (i - 1) for i in range(1, 7)])
            rhs.append(sign * base * ln)  # d/dα of hi^α at 1, of lo^-α at -1
            rows.append([i * (i - 1) * mpmath.mpf(sign) ** (i - 2) for i in range(1, 7)])
            rhs.append(base * ln**2)
        solution = mpmath.lu_solve(mpmath.matrix(rows), mpmath.matrix(rhs))
        return tuple(solution[i] for i in range(6))


def _normsys(code: str, alpha, hi: float, lo: float, positive: bool, ops: _Ops):
    """Multiplicative factor; ``positive`` picks code1's branch (α > 0 in pyhf)."""
    a = _value(alpha)
    if code == "code1":
        return _exp(alpha * (ops.const_log(hi) if positive else -ops.const_log(lo)), ops)
    if a >= 1:
        return _exp(alpha * ops.const_log(hi), ops)
    if a <= -1:
        return _exp(-alpha * ops.const_log(lo), ops)
    polynomial = 0
    for coefficient in reversed(_code4_coefficients(hi, lo)):
        polynomial = (polynomial + ops.const(coefficient)) * alpha
    return polynomial + 1


def _histosys(code: str, alpha, lo: float, nom: float, hi: float, positive: bool, ops: _Ops):
    """Additive shift; ``positive`` picks code0's branch (α > 0 in pyhf)."""
    lo, nom, hi = ops.const(lo), ops.const(nom), ops.const(hi)
    up, down = hi - nom, nom - lo
    a = _value(alpha)
    if code == "code0":
        return alpha * up if positive else alpha * down
    if code == "code2":
        quad, lin = (hi + lo) / 2 - nom, (hi - lo) / 2
        if a > 1:
            return (alpha - 1) * (lin + 2 * quad) + up
        if a < -1:
            return (alpha + 1) * (lin - 2 * quad) - down
        return alpha * alpha * quad + alpha * lin
    if a > 1:
        return alpha * up
    if a < -1:
        return alpha * down
    s, asym = (up + down) / 2, (up - down) / 16
    square = alpha * alpha
    return alpha * s + square * (square * (square * 3 - 10) + 15) * asym


# --- the likelihood -------------------------------------------------------------------


def _expected_main(m: Model, x: list, sides: tuple, ops: _Ops) -> list:
    """Expected counts per bin; ``sides[i]`` is the branch (+1, -1) of a kinked parameter
    held to one side of its kink, 0 to take it from the value as pyhf does."""

    def positive(i: int) -> bool:
        return sides[i] > 0 if sides[i] else _value(x[i]) > 0

    counts = []
    for terms in m.bins:
        total = 0
        for term in terms:
            y = ops.const(term.nominal)
            for i, lo, nom, hi in term.histosys:
                y = y + _histosys(m.histosys_code, x[i], lo, nom, hi, positive(i), ops)
            for i, hi, lo in term.normsys:
                y = y * _normsys(m.normsys_code, x[i], hi, lo, positive(i), ops)
            for i in term.factors:
                y = y * x[i]
            total = total + y
        counts.append(total)
    return counts


def _expected_aux(m: Model, x: list) -> list:
    """Expected auxiliary data: θ for a Gaussian constraint, γτ for a Poisson one."""
    out = []
    for i in m.constrained:
        p = m.parameters[i]
        out.append(x[i] * mpmath.mpf(p.width) if p.constraint == "poisson" else x[i])
    return out


def _twice_nll(m: Model, x: list, data: tuple, sides: tuple, ops: _Ops):
    """-2 ln L at ``x`` (numbers or jets); +inf where an expected count is not positive."""
    main, aux = data
    log_l = 0
    for n, nu in zip(main, _expected_main(m, x, sides, ops), strict=True):
        if _value(nu) <= 0:
            return ops.num("inf")
        n = ops.num(n)
        log_l = log_l + n * _log(nu, ops) - nu - ops.lgamma(n + 1)
    half_log_2pi = ops.log(2 * ops.pi()) / 2
    for i, a in zip(m.constrained, aux, strict=True):
        p, a, width = m.parameters[i], ops.num(a), ops.const(m.parameters[i].width)
        if p.constraint == "normal":
            log_l = log_l - (x[i] - a) ** 2 / (2 * width**2) - ops.const_log(p.width) - half_log_2pi
        else:
            rate = x[i] * width
            if _value(rate) <= 0:
                return ops.num("inf")
            log_l = log_l + a * _log(rate, ops) - rate - ops.lgamma(a + 1)
    return -2 * log_l


def twice_nll(m: Model, pars: Mapping[str, float], data: tuple):
    """Exact -2 ln L of ``m`` at parameters given by name, on (main, aux) data."""
    with mpmath.workdps(DIGITS):
        x = [mpmath.mpf(pars[name]) for name in m.parameter_names]
        return _twice_nll(m, x, data, (0,) * len(x), EXACT)


def expected_data(m: Model, pars: Mapping[str, float]) -> tuple[tuple, tuple]:
    """Exact (main, aux) data expected at ``pars``: an Asimov data set."""
    with mpmath.workdps(DIGITS):
        x = [mpmath.mpf(pars[name]) for name in m.parameter_names]
        main = _expected_main(m, x, (0,) * len(x), EXACT)
        return tuple(main), tuple(_expected_aux(m, x))


# --- minimisation ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Minimise -2 ln L over the ``free`` parameters in one box; the others at ``base``."""

    model: Model
    data: tuple
    base: tuple
    free: tuple[int, ...]
    lower: tuple
    upper: tuple
    sides: tuple

    @functools.cached_property
    def _bases(self) -> dict:
        return {id(ops): [ops.num(v) for v in self.base] for ops in (FLOAT, EXACT)}

    def point(self, values, ops: _Ops) -> list:
        x = list(self._bases[id(ops)])
        for i, v in zip(self.free, values, strict=True):
            x[i] = v
        return x

    def value(self, values, ops: _Ops):
        return _twice_nll(self.model, self.point(values, ops), self.data, self.sides, ops)

    def jet(self, values, ops: _Ops) -> Jet:
        n, zero = len(values), ops.num(0)
        jets = [Jet.variable(ops.num(v), k, n, zero) for k, v in enumerate(values)]
        result = _twice_nll(self.model, self.point(jets, ops), self.data, self.sides, ops)
        if isinstance(result, Jet):
            return result
        if n == 0 and result < ops.num("inf"):  # nothing free: a constant
            return Jet(result, [], [])
        raise OracleError("-2 ln L is not finite at a Newton iterate")


def _cholesky_solve(matrix: list, rhs: list, ops: _Ops):
    """Solve matrix · d = rhs for a symmetric positive-definite matrix; None if it is not."""
    n = len(rhs)
    low = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = matrix[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if s <= 0:
                    return None
                low[i][i] = ops.sqrt(s)
            else:
                low[i][j] = s / low[j][j]
    y = [0] * n
    for i in range(n):
        y[i] = (rhs[i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
    d = [0] * n
    for i in reversed(range(n)):
        d[i] = (y[i] - sum(low[k][i] * d[k] for k in range(i + 1, n))) / low[i][i]
    return d


def _direction(problem: _Problem, x: list, jet: Jet, ops: _Ops) -> tuple[list, list]:
    """Projected Newton direction: parameters on a bound that the gradient pushes outward
    are held; on the others the Newton step, Levenberg-damped where the Hessian is not
    positive definite. Returns the direction and the held flags."""
    g, h = jet.grad, jet.hess
    held = [
        (xi <= lo and gi > 0) or (xi >= hi and gi < 0)
        for xi, gi, lo, hi in zip(x, g, problem.lower, problem.upper, strict=True)
    ]
    moving = [k for k, hold in enumerate(held) if not hold]
    sub = [[h[i][j] for j in moving] for i in moving]
    rhs = [-g[i] for i in moving]
    shift = ops.num(0)
    scale = max((abs(sub[k][k]) for k in range(len(moving))), default=ops.num(1)) or 1
    while (step := _cholesky_solve(sub, rhs, ops)) is None:
        shift = shift * 10 if shift else scale * ops.num("1e-10")
        sub = [[h[i][j] + (shift if i == j else 0) for j in moving] for i in moving]
    d = [ops.num(0)] * len(x)
    for k, v in zip(moving, step, strict=True):
        d[k] = v
    return d, held


def _clip(problem: _Problem, x: list, ops: _Ops) -> list:
    bounds = zip(x, problem.lower, problem.upper, strict=True)
    return [ops.num(min(max(v, lo), hi)) for v, lo, hi in bounds]


def _descend(problem: _Problem, start: list) -> tuple[list, float]:
    """Bounded Newton descent in float64 with a backtracking line search."""
    x = _clip(problem, list(start), FLOAT)
    f = problem.value(x, FLOAT)
    for _ in range(200):
        jet = problem.jet(x, FLOAT)
        d, _held = _direction(problem, x, jet, FLOAT)
        decrement = -sum(gi * di for gi, di in zip(jet.grad, d, strict=True))
        if decrement < 1e-20 or max(map(abs, d), default=0) < 1e-13 * (
            1 + max(map(abs, x), default=0)
        ):
            break
        t = 1.0
        while t > 1e-12:
            trial = _clip(problem, [v + t * dv for v, dv in zip(x, d, strict=True)], FLOAT)
            f_trial = problem.value(trial, FLOAT)
            if f_trial < f:
                break
            t /= 2
        else:
            break
        x, f = trial, f_trial
    return x, f


def _polish(problem: _Problem, start: list) -> tuple[list, object, list]:
    """Newton steps in mpmath from a float minimum until the step is below
    ``10^-(DIGITS - 8)``, then :func:`_certify`. Returns the point, -2 ln L there and the
    held flags."""
    x = _clip(problem, start, EXACT)
    tolerance = mpmath.mpf(10) ** (8 - DIGITS)
    for _ in range(30):
        jet = problem.jet(x, EXACT)
        d, held = _direction(problem, x, jet, EXACT)
        x_new = _clip(problem, [v + dv for v, dv in zip(x, d, strict=True)], EXACT)
        step = max((abs(a - b) for a, b in zip(x_new, x, strict=True)), default=0)
        x = x_new
        if step < tolerance:
            jet = problem.jet(x, EXACT)
            _, held = _direction(problem, x, jet, EXACT)
            _certify(problem, x, jet, held)
            return x, jet.value, held
    raise OracleError(f"mpmath Newton did not converge from {start}")


def _certify(problem: _Problem, x: list, jet: Jet, held: list) -> None:
    """A local minimum in the box: the gradient vanishes (to 10^-(DIGITS - 20)) on the
    parameters not held at a bound, and the Hessian is positive definite there."""
    moving = [k for k, hold in enumerate(held) if not hold]
    worst = max((abs(jet.grad[k]) for k in moving), default=0)
    sub = [[jet.hess[i][j] for j in moving] for i in moving]
    if (
        worst > mpmath.mpf(10) ** (20 - DIGITS)
        or _cholesky_solve(sub, [0] * len(moving), EXACT) is None
    ):
        raise OracleError(f"not a minimum at {x}: gradient {worst}, Hessian {sub}")


def _grid_starts(problem: _Problem) -> list[list]:
    """The grid points of the box that no grid neighbour undercuts, lowest first (at
    most 6), and the model's initial values."""
    n = len(problem.free)
    size = {1: 11, 2: 7, 3: 5}.get(n, 4)
    axes = [
        [lo + (hi - lo) * k / (size - 1) for k in range(size)]
        for lo, hi in zip(problem.lower, problem.upper, strict=True)
    ]
    values = {
        index: problem.value([axes[d][k] for d, k in enumerate(index)], FLOAT)
        for index in itertools.product(range(size), repeat=n)
    }
    steps = [s for s in itertools.product((-1, 0, 1), repeat=n) if any(s)]
    minima = [
        index
        for index, v in values.items()
        if math.isfinite(v)
        and all(
            values.get(tuple(i + s for i, s in zip(index, step, strict=True)), math.inf) >= v
            for step in steps
        )
    ]
    minima.sort(key=values.__getitem__)
    starts = [[axes[d][k] for d, k in enumerate(index)] for index in minima[:6]]
    starts.append([problem.model.parameters[i].init for i in problem.free])
    return starts


def _boxes(m: Model, free: tuple[int, ...]) -> list[tuple[tuple, tuple, tuple]]:
    """(lower, upper, sides) of each box: the range of every free kinked parameter is
    split at its kink α = 0, where the likelihood is smooth on either side."""
    pieces = []
    for i in free:
        p = m.parameters[i]
        if p.kinked and p.lower < 0 < p.upper:
            pieces.append([(p.lower, 0.0, -1), (0.0, p.upper, 1)])
        else:
            pieces.append([(p.lower, p.upper, 0)])
    boxes = []
    for choice in itertools.product(*pieces):
        sides = [0] * len(m.parameters)
        for i, (_, _, side) in zip(free, choice, strict=True):
            sides[i] = side
        boxes.append((tuple(c[0] for c in choice), tuple(c[1] for c in choice), tuple(sides)))
    return boxes


@dataclass(frozen=True)
class Fit:
    """An exact global minimum of -2 ln L."""

    pars: dict  # parameter name -> value (mpf)
    twice_nll: object
    at_kink: bool  # held at a kink α = 0 by its one-sided gradients


def _problems(m: Model, data: tuple, poi_value) -> list[_Problem]:
    """One minimisation problem per box, over the free parameters (the POI held at
    ``poi_value`` unless it is None)."""
    base = [p.init for p in m.parameters]
    free = [i for i, p in enumerate(m.parameters) if not p.fixed]
    if poi_value is not None:
        base[m.poi] = poi_value
        free.remove(m.poi)
    free = tuple(free)
    return [
        _Problem(m, data, tuple(base), free, lower, upper, sides)
        for lower, upper, sides in _boxes(m, free)
    ]


@functools.cache
def _fit(m: Model, data: tuple, poi_value) -> Fit:
    """The global minimum: descents from the grid's basins in every box, then the lowest
    polished in mpmath."""
    found = [
        (*_descend(problem, start), problem)
        for problem in _problems(m, data, poi_value)
        for start in _grid_starts(problem)
    ]
    found.sort(key=lambda item: item[1])
    lowest = found[0][1]
    candidates = []  # the lowest minima, one per box and basin
    for x, f, problem in found:
        if f <= lowest + 1e-6 * max(1.0, abs(lowest)) and not any(
            problem is other and max(abs(a - b) for a, b in zip(x, y, strict=True)) < 1e-6
            for y, other in candidates
        ):
            candidates.append((x, problem))
    best = None
    for x, problem in candidates:
        xe, fe, held = _polish(problem, x)
        if best is None or fe < best[1]:
            best = (xe, fe, held, problem)
    xe, fe, held, problem = best
    jet = problem.jet(xe, EXACT)
    kink = any(
        held[k] and problem.sides[i] and xe[k] == 0 and abs(jet.grad[k]) > mpmath.mpf(10) ** -20
        for k, i in enumerate(problem.free)
    )
    point = problem.point(xe, EXACT)
    return Fit(dict(zip(m.parameter_names, point, strict=True)), fe, kink)


@functools.cache
def _estimate(m: Model, data: tuple, poi_value) -> float:
    """-2 ln L minimised in float64 with the POI at ``poi_value``, one descent a box from
    the exact fit with the POI free. It only brackets the roots of the limits, which
    secant steps on exact fits then find: a poor estimate costs steps, not accuracy."""
    released = _fit(m, data, None)
    minima = []
    for problem in _problems(m, data, poi_value):
        start = [float(released.pars[m.parameter_names[i]]) for i in problem.free]
        minima.append(_descend(problem, start)[1])
    return min(minima)


def fit(m: Model, *, poi_value=None) -> Fit:
    """The exact global minimum of -2 ln L on the observed data; the POI free within its
    bounds, or held at ``poi_value``."""
    with mpmath.workdps(DIGITS):
        return _fit(m, m.observed_data(), None if poi_value is None else mpmath.mpf(poi_value))


# --- asymptotic CLs -------------------------------------------------------------------


@dataclass(frozen=True)
class Hypotest:
    """pyhf's asymptotic hypothesis test with exact fits."""

    cls_obs: object  # CLs (p0 for q0)
    cls_exp: tuple  # -2σ … +2σ (p0's band for q0)
    fits: dict  # free, fixed, asimov_generation, asimov_free, asimov_fixed

    @property
    def at_kink(self) -> bool:
        return any(f.at_kink for f in self.fits.values())


def _statistic(test_stat: str, mu, mu_hat, fixed, free):
    """q~μ / qμ (0 for μ̂ > μ) or q0 (0 for μ̂ < 0) from two values of -2 ln L; a
    difference within the fits' precision (the two fits are one problem) is 0."""
    ratio = fixed - free
    if ratio < mpmath.mpf(10) ** (12 - DIGITS):
        ratio = 0
    if test_stat == "q0":
        return 0 if mu_hat < 0 else ratio
    return 0 if mu_hat > mu else ratio


def _shifted(test_stat: str, q, q_asimov):
    """The test statistic in -μ̂/σ space (pyhf's ``AsymptoticCalculator.teststatistic``)."""
    sqrt_q, sqrt_qa = mpmath.sqrt(q), mpmath.sqrt(q_asimov)
    if test_stat == "qtilde" and sqrt_q > sqrt_qa:
        return (q - q_asimov) / (2 * sqrt_qa)
    return sqrt_q - sqrt_qa


def _asimov(m: Model, generating: Fit) -> tuple:
    x = [generating.pars[name] for name in m.parameter_names]
    return tuple(_expected_main(m, x, (0,) * len(x), EXACT)), tuple(_expected_aux(m, x))


@functools.cache
def _hypotest(m: Model, mu, test_stat: str) -> Hypotest:
    observed = m.observed_data()
    tested = mpmath.mpf(0) if test_stat == "q0" else mu
    free = _fit(m, observed, None)
    fixed = _fit(m, observed, tested)
    generation = _fit(m, observed, mpmath.mpf(1 if test_stat == "q0" else 0))
    asimov = _asimov(m, generation)
    asimov_free, asimov_fixed = _fit(m, asimov, None), _fit(m, asimov, tested)
    poi = m.parameter_names[m.poi]
    q = _statistic(test_stat, tested, free.pars[poi], fixed.twice_nll, free.twice_nll)
    q_asimov = _statistic(
        test_stat, tested, asimov_free.pars[poi], asimov_fixed.twice_nll, asimov_free.twice_nll
    )
    sqrt_qa = mpmath.sqrt(q_asimov)
    t = _shifted(test_stat, q, q_asimov)
    clsb, clb = mpmath.ncdf(-(t + sqrt_qa)), mpmath.ncdf(-t)
    clsb_exp = tuple(mpmath.ncdf(-(n + sqrt_qa)) for n in EXPECTED_SIGMAS)
    cls_exp = tuple(p / mpmath.ncdf(-n) for p, n in zip(clsb_exp, EXPECTED_SIGMAS, strict=True))
    fits = dict(
        free=free,
        fixed=fixed,
        asimov_generation=generation,
        asimov_free=asimov_free,
        asimov_fixed=asimov_fixed,
    )
    if test_stat == "q0":
        return Hypotest(clsb, clsb_exp, fits)
    return Hypotest(clsb / clb, cls_exp, fits)


def hypotest(m: Model, mu: float, *, test_stat: str = "qtilde") -> Hypotest:
    """pyhf's asymptotic CLs at POI value ``mu`` (ignored for q0, which tests μ = 0)."""
    with mpmath.workdps(DIGITS):
        return _hypotest(m, mpmath.mpf(mu), test_stat)


# --- upper limits ---------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Upper limits with exact fits."""

    values: tuple  # observed, expected -2σ … +2σ
    at_kink: bool  # a fit they rest on is held at a kink


@dataclass(frozen=True)
class _LimitFits:
    """What the CLs curves share: the data sets and the μ-independent fits."""

    observed: tuple
    asimov: tuple
    fits: tuple  # free fit to the data, Asimov generation (μ = 0), free fit to Asimov

    @classmethod
    def of(cls, m: Model) -> _LimitFits:
        observed = m.observed_data()
        generation = _fit(m, observed, mpmath.mpf(0))
        asimov = _asimov(m, generation)
        return cls(observed, asimov, (_fit(m, observed, None), generation, _fit(m, asimov, None)))


def _curves(m: Model, shared: _LimitFits, cl: float) -> list[Callable]:
    """The six functions of μ whose roots are the limits (observed, then expected -2σ …
    +2σ), each ``f(μ, exact)``, negative above the root. The observed one is
    ln CLs(μ) - ln(1 - CL); expected curve n is s_n - sqrt(q_A(μ)), where s_n solves
    Φ(-(n + s_n)) / Φ(-n) = 1 - CL (CLs of the expected band at n)."""
    poi = m.parameter_names[m.poi]
    free, _, asimov_free = shared.fits
    alpha = 1 - mpmath.mpf(cl)

    def fixed(data, mu, exact):
        return _fit(m, data, mu).twice_nll if exact else _estimate(m, data, mu)

    def sqrt_qa(mu, exact):
        value = fixed(shared.asimov, mu, exact)
        return mpmath.sqrt(
            _statistic("qtilde", mu, asimov_free.pars[poi], value, asimov_free.twice_nll)
        )

    def observed_curve(mu, exact):
        value = fixed(shared.observed, mu, exact)
        q = _statistic("qtilde", mu, free.pars[poi], value, free.twice_nll)
        root_qa = sqrt_qa(mu, exact)
        t = _shifted("qtilde", q, root_qa**2)
        return mpmath.log(mpmath.ncdf(-(t + root_qa)) / mpmath.ncdf(-t)) - mpmath.log(alpha)

    def expected_curve(n):
        target = -mpmath.erfinv(2 * alpha * mpmath.ncdf(-n) - 1) * mpmath.sqrt(2) - n
        return lambda mu, exact: target - sqrt_qa(mu, exact)

    return [observed_curve] + [expected_curve(n) for n in EXPECTED_SIGMAS]


def _root(curve: Callable) -> tuple:
    """Root of a decreasing curve with f(0) > 0: bracketed by doubling and narrowed by
    Illinois steps on float64 fits, then finished by secant steps on exact fits. Returns
    the root and the last point evaluated, within 10^-(DIGITS - 12) of it."""
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    f_lo, f_hi = curve(lo, False), curve(hi, False)
    while f_hi > 0:
        lo, f_lo, hi = hi, f_hi, 2 * hi
        f_hi = curve(hi, False)
    side = 0
    for _ in range(200):
        if hi - lo <= mpmath.mpf("1e-9") * hi:
            break
        mu = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = curve(mpmath.mpf(float(mu)), False)
        if f > 0:
            lo, f_lo = mu, f
            f_hi, side = (f_hi / 2 if side == 1 else f_hi), 1
        else:
            hi, f_hi = mu, f
            f_lo, side = (f_lo / 2 if side == -1 else f_lo), -1
    else:
        raise OracleError("upper limit: the float64 bracket did not close")
    a, b = lo, hi
    f_a, f_b = curve(a, True), curve(b, True)
    for _ in range(20):
        c = b - f_b * (b - a) / (f_b - f_a)
        if abs(c - b) < mpmath.mpf(10) ** (12 - DIGITS) * abs(c):
            return c, b
        a, f_a, b, f_b = b, f_b, c, curve(c, True)
    raise OracleError("upper limit: secant steps did not converge")


@functools.cache
def _upper_limits(m: Model, cl: float) -> Limits:
    shared = _LimitFits.of(m)
    roots, last = zip(*(_root(curve) for curve in _curves(m, shared, cl)), strict=True)
    at_roots = [_fit(m, shared.observed, last[0])] + [_fit(m, shared.asimov, mu) for mu in last]
    return Limits(roots, any(f.at_kink for f in (*shared.fits, *at_roots)))


def upper_limits(m: Model, *, cl: float = 0.95) -> Limits:
    """Observed and expected (-2σ … +2σ) upper limits on the POI (q~μ, asymptotic)."""
    with mpmath.workdps(DIGITS):
        return _upper_limits(m, cl)
