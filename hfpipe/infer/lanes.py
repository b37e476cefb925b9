"""Fits of one model to a queue of data sets (toys) on a fixed number of lanes.

One compiled ``lax.while_loop``; each pass is one :func:`~hfpipe.infer.newton.step` of
every lane. A lane whose fit is finished writes its result at its task's index and is
loaded with the next task's data and a fresh state, so every lane stays busy until the
queue is empty: the cost follows the mean number of evaluations of a fit, not the
largest (a vmapped batch runs until its slowest fit is done). Lanes past the last task
idle (stepped, not recorded, and no factorisation is made for them alone). A task's fit
is computed row by row, so its result depends neither on the lane it ran in nor on its
neighbours. The EDM tolerance and the polish flag are arguments, not constants: the
fits of one model to toys and to the observed data share one compilation.

On a single lane (the default for models of about 60 parameters or more), fits take
their first steps by Fisher scoring (see :func:`~hfpipe.infer.newton.step`), which
needs no (P, P) matrix. A pass of several lanes scores only when no lane needs a Newton
step, which would make a fit's path depend on its neighbours; there every pass is a
Newton step (cheap for the small models that run many lanes). See docs/performance.md
for what each choice measured.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.infer import newton
from hfpipe.infer.compiled import MAX_HALVINGS
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.likelihood import (
    prepare,
    twice_nll_derivatives,
    twice_nll_information,
    unconstrained_parameters,
)
from hfpipe.model.structure import Layout, Numbers

__all__ = ["lane_driver", "queue_length"]

#: Fits a call of the lane driver takes from its queue: at least this many per lane, and
#: at least :data:`_QUEUE_MINIMUM`. At the end of a call lanes fall idle one by one while
#: the slowest fits finish (a few percent with 64 fits a lane); the minimum keeps the
#: per-call overhead (drawing the toys, Python) small where there are few lanes.
_QUEUE_PER_LANE, _QUEUE_MINIMUM = 64, 1024


def queue_length(lanes: int) -> int:
    """Fits one compiled call of the lane driver takes on ``lanes`` lanes."""
    return max(_QUEUE_PER_LANE * lanes, _QUEUE_MINIMUM)


class _Lanes(NamedTuple):
    """The loop's carry: what every lane works on, and the results so far."""

    task: jax.Array  # (lanes,) index of each lane's task
    data: jax.Array  # (lanes, bins + aux) its data set
    fixed: jax.Array  # (lanes, P) its fixed parameters
    state: newton.NewtonState  # its fit
    next_task: jax.Array  # () the queue's next task
    out: newton.MinimizeResult  # (length, ...) results, by task


class _Queue(NamedTuple):
    """What one call works on, and how it evaluates a lane's fit."""

    init: jax.Array  # (length, P)
    data: jax.Array  # (length, bins + aux)
    fixed: jax.Array  # (length, P)
    n_tasks: jax.Array  # () tasks of the queue that count
    lower: jax.Array  # (lanes, P)
    upper: jax.Array  # (lanes, P)
    derivatives: Callable  # (points, data) -> batched twice_nll_derivatives
    information: Callable | None  # (points, data) -> batched information, if scoring
    unconstrained: np.ndarray
    edm_tolerance: jax.Array
    polish: jax.Array

    @property
    def length(self) -> int:
        return self.init.shape[0]


def _load(queue: _Queue, task: jax.Array):
    """Data, fixed parameters and a fresh fit state of each lane's ``task``."""
    row = jnp.minimum(task, queue.length - 1)
    scoring = queue.information is not None
    start = newton.initial_state(queue.init[row], queue.lower, queue.upper, scoring=scoring)
    return queue.data[row], queue.fixed[row], start


def _keep_going(queue: _Queue, lanes: _Lanes):
    return jnp.any(lanes.task < queue.n_tasks)


def _one_pass(queue: _Queue, max_iterations: int, lanes: _Lanes) -> _Lanes:
    """One step of every lane's fit; the finished ones recorded and reloaded."""
    active = lanes.task < queue.n_tasks
    scoring = None
    if queue.information is not None:
        scoring = newton.Scoring(
            lambda x: queue.information(x, lanes.data), queue.unconstrained, queue.edm_tolerance
        )
    state = newton.step(
        lambda x: queue.derivatives(x, lanes.data),
        lanes.state,
        queue.lower,
        queue.upper,
        lanes.fixed,
        active,
        scoring=scoring,
        edm_tolerance=queue.edm_tolerance,
    )
    done = active & newton.finished(
        state,
        max_iterations=max_iterations,
        edm_tolerance=queue.edm_tolerance,
        max_halvings=MAX_HALVINGS,
        polish=queue.polish,
    )
    lanes = lanes._replace(state=state)
    # most passes finish no fit (one lane: 1 in ~5): the bookkeeping waits for one
    record = functools.partial(_record_and_reload, queue)
    return jax.lax.cond(jnp.any(done), record, lambda c, _: c, lanes, done)


def _record_and_reload(queue: _Queue, lanes: _Lanes, done: jax.Array) -> _Lanes:
    """Write the finished lanes' results at their tasks' indices and load the next
    tasks into those lanes."""
    slot = jnp.where(done, lanes.task, queue.length)  # out of range: dropped
    found = newton.result(lanes.state, queue.edm_tolerance)
    out = jax.tree.map(lambda o, r: o.at[slot].set(r, mode="drop"), lanes.out, found)
    task = jnp.where(done, lanes.next_task + jnp.cumsum(done) - 1, lanes.task)
    fresh = _load(queue, task)

    def refill(new, old):
        return jnp.where(done.reshape(done.shape + (1,) * (new.ndim - 1)), new, old)

    data, fixed, state = jax.tree.map(refill, fresh, (lanes.data, lanes.fixed, lanes.state))
    return _Lanes(task, data, fixed, state, lanes.next_task + jnp.sum(done), out)


@per_layout
def lane_driver(structure: Layout, max_iterations: int, lanes: int, length: int):
    """The jitted fits of one model to a queue of ``length`` data sets on ``lanes``
    lanes: ``(numbers, data, init, fixed, n_tasks, edm_tolerance, polish) ->
    MinimizeResult`` by task (the first ``n_tasks`` count)."""
    unconstrained = unconstrained_parameters(structure)

    def run(numbers: Numbers, data, init, fixed, n_tasks, edm_tolerance, polish):
        prepared = prepare(structure, numbers)  # once: every task shares the model
        shape = (lanes, structure.n_parameters)
        information = None
        if lanes == 1:
            information = jax.vmap(lambda x, d: twice_nll_information(structure, prepared, x, d))
        queue = _Queue(
            init,
            data,
            fixed,
            n_tasks,
            jnp.broadcast_to(numbers.lower, shape),
            jnp.broadcast_to(numbers.upper, shape),
            jax.vmap(lambda x, d: twice_nll_derivatives(structure, prepared, x, d)),
            information,
            unconstrained,
            edm_tolerance,
            polish,
        )
        task = jnp.arange(lanes)
        empty = newton.MinimizeResult(
            jnp.zeros((length, structure.n_parameters)),
            jnp.full(length, jnp.nan),
            jnp.full(length, jnp.inf),
            jnp.zeros(length, bool),
            jnp.zeros(length, int),
        )
        start = _Lanes(task, *_load(queue, task), jnp.asarray(lanes), empty)
        body = functools.partial(_one_pass, queue, max_iterations)
        return jax.lax.while_loop(functools.partial(_keep_going, queue), body, start).out

    return jax.jit(run)
