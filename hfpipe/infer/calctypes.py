"""The two ways of computing CLs of a batch of models, behind one call.

``asymptotics`` (:func:`~hfpipe.infer.asymptotic.hypotest_batch`: one batched
computation for every row) and ``toybased``
(:func:`~hfpipe.infer.toys.toy_hypotest_batch`: toys of one row after the other) give
the same :class:`~hfpipe.infer.asymptotic.HypotestResult`, so what runs hypothesis tests
(a scan) does not need to know which. The names and settings load without JAX (a scan's
main process checks them); :func:`hypotest_rows` imports the engine where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hfpipe.infer.asymptotic import HypotestResult
    from hfpipe.infer.fit import FitOptions
    from hfpipe.model.structure import Numbers, Structure

__all__ = ["CALCTYPES", "DEFAULT_TOY_BATCH_SIZE", "ToySettings", "hypotest_rows"]

CALCTYPES = ("asymptotics", "toybased")
#: Default toy batch size: None, chosen per model by
#: :func:`~hfpipe.infer.toys.toy_batch_size`.
DEFAULT_TOY_BATCH_SIZE = None


@dataclass(frozen=True)
class ToySettings:
    """How many toys, their seed and lanes, and the failures a result may rest on."""

    ntoys: int = 1000
    seed: int = 0
    batch_size: int | None = DEFAULT_TOY_BATCH_SIZE
    max_failed_fraction: float = 0.01


def hypotest_rows(
    calctype: str,
    structure: Structure,
    numbers: Numbers,
    mu,
    *,
    rows: int,
    test_stat: str = "qtilde",
    toys: ToySettings = ToySettings(),
    options: FitOptions | None = None,
) -> HypotestResult:
    """CLs of a batch of models (``numbers`` with a leading axis) at ``mu``; the result
    holds at least the first ``rows`` models (the rest pads a batch to the shape its
    compiled computation has: asymptotic tests compute them too, toys do not).
    ``options``: the fits' (default :data:`~hfpipe.infer.fit.DEFAULT_OPTIONS`)."""
    from hfpipe.infer.asymptotic import hypotest_batch
    from hfpipe.infer.fit import DEFAULT_OPTIONS
    from hfpipe.infer.toys import toy_hypotest_batch

    options = DEFAULT_OPTIONS if options is None else options
    if calctype == "asymptotics":
        return hypotest_batch(structure, numbers, mu, test_stat=test_stat, options=options)
    if calctype == "toybased":
        return toy_hypotest_batch(
            structure,
            numbers,
            mu,
            rows=rows,
            test_stat=test_stat,
            ntoys=toys.ntoys,
            seed=toys.seed,
            batch_size=toys.batch_size,
            max_failed_fraction=toys.max_failed_fraction,
            options=options,
        )
    raise ValueError(f"calctype must be one of {', '.join(CALCTYPES)}, not {calctype!r}")
