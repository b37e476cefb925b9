"""The result of a batch of fits: one row a fit, never changed in place."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from jaxtyping import Bool, Float, Int, Shaped

from hfpipe.infer.newton import MinimizeResult

__all__ = ["FitResult", "unconverged_message"]


def unconverged_message(edm: float, prefix: str = "not converged") -> str:
    """Why a fit is not converged: convergence needs a positive-definite Hessian (over the
    parameters free to move) and an EDM below tolerance."""
    if not np.isfinite(edm):
        return f"{prefix}: Hessian not positive definite at the last point"
    return f"{prefix}: EDM {edm:.3g} above tolerance"


def _messages(converged, edm) -> np.ndarray:
    return np.array(
        [unconverged_message(e) if not c else "" for c, e in zip(converged, edm, strict=True)],
        dtype=object,
    )


@dataclass(frozen=True)
class FitResult:
    """Results of a batch of fits (leading axis = batch). Methods that change rows return
    a new result; the arrays of a result are not modified."""

    pars: Float[np.ndarray, "fits parameters"]
    twice_nll: Float[np.ndarray, " fits"]
    converged: Bool[np.ndarray, " fits"]
    edm: Float[np.ndarray, " fits"]
    iterations: Int[np.ndarray, " fits"]  # evaluations
    method: Shaped[np.ndarray, " fits"]  # what produced the final result
    message: Shaped[np.ndarray, " fits"]  # '' when converged
    #: '' or what makes a fit suspicious though converged: free parameters at a bound
    #: (see :func:`~hfpipe.infer.fit.bound_warnings`)
    warning: Shaped[np.ndarray, " fits"] | None = None

    @classmethod
    def of(cls, found: MinimizeResult, method: str) -> FitResult:
        """The result of minimisations, all made by ``method``, with their messages."""
        converged, edm = np.array(found.converged), np.array(found.edm)
        return cls(
            np.array(found.x),
            np.array(found.fun),
            converged,
            edm,
            np.array(found.iterations),
            np.full(len(converged), method, dtype=object),
            _messages(converged, edm),
        )

    def __len__(self) -> int:
        return len(self.twice_nll)

    def _arrays(self) -> dict:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def take(self, rows) -> FitResult:
        """The fits of ``rows`` (indices or a slice)."""
        return replace(self, **{k: v[rows] for k, v in self._arrays().items()})

    def replace_rows(self, rows: np.ndarray, again: FitResult, where=True) -> FitResult:
        """This result with its ``rows`` replaced by the fits of ``again`` (one a row),
        where ``where`` (a mask over ``rows``; default: all)."""
        where = np.broadcast_to(where, np.shape(rows))
        changed = {}
        for name, values in self._arrays().items():
            values = values.copy()
            values[np.asarray(rows)[where]] = getattr(again, name)[where]
            changed[name] = values
        return replace(self, **changed)

    def keep_lower(self, rows: np.ndarray, again: FitResult) -> FitResult:
        """This result with its ``rows`` replaced by the converged fits of ``again`` (one
        a row) that end lower."""
        lower = again.converged & (again.twice_nll < self.twice_nll[rows])
        return self.replace_rows(rows, again, lower)

    @staticmethod
    def concatenate(parts: list[FitResult]) -> FitResult:
        """One result of the fits of ``parts``, in order."""
        first = parts[0]
        return replace(
            first,
            **{k: np.concatenate([getattr(p, k) for p in parts]) for k in first._arrays()},
        )
