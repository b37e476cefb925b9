"""Toy chunks on disk: one Parquet file per chunk, merged into one distribution.

A chunk file has one row per toy (``toy``, the toy index; ``q_signal`` and
``q_background``, the test statistics of the signal+background and background-only
toys, NaN where a fit failed; ``signal_converged``, ``background_converged``). What
makes chunks of one run mergeable goes into the provenance metadata under ``toys``: mu, test statistic, seed, observed test statistic and the generating
parameters, with the caller's provenance (input digests, settings). Files are written
atomically, like scan tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from hfpipe.errors import InputError
from hfpipe.infer.toys import ToyDistributions, merge
from hfpipe.results.table import read_table, write_table

__all__ = ["read_toys", "write_toys"]


def write_toys(
    distributions: ToyDistributions, path: str | os.PathLike, provenance: dict | None = None
) -> Path:
    """Write one chunk of toys (atomically) with what is needed to merge it later."""
    d = distributions
    frame = pd.DataFrame(
        {
            "toy": d.toy_index,
            "q_signal": d.signal,
            "q_background": d.background,
            "signal_converged": d.signal_converged,
            "background_converged": d.background_converged,
        }
    )
    run = {
        "mu": d.mu,
        "test_stat": d.test_stat,
        "seed": d.seed,
        "q_obs": d.q_obs,
        "mu_hat": d.mu_hat,
        "twice_nll": d.twice_nll,
        "signal_pars": d.signal_pars.tolist(),
        "background_pars": d.background_pars.tolist(),
    }
    return write_table(frame, path, {**(provenance or {}), "toys": run})


def _read_one(path) -> ToyDistributions:
    try:
        frame, provenance = read_table(path)
        run = provenance["toys"]
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"not an hfpipe toy chunk ({error!r})", file=str(path), path="") from None
    return ToyDistributions(
        mu=float(run["mu"]),
        test_stat=run["test_stat"],
        seed=int(run["seed"]),
        q_obs=float(run["q_obs"]),
        mu_hat=float(run["mu_hat"]),
        twice_nll=float(run["twice_nll"]),
        toy_index=frame["toy"].to_numpy(),
        signal=frame["q_signal"].to_numpy(),
        background=frame["q_background"].to_numpy(),
        signal_converged=frame["signal_converged"].to_numpy(),
        background_converged=frame["background_converged"].to_numpy(),
        signal_pars=np.asarray(run["signal_pars"], dtype=float),
        background_pars=np.asarray(run["background_pars"], dtype=float),
    )


def read_toys(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> ToyDistributions:
    """Read one or more toy chunk files of one run and merge them (ordered by toy index)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return merge([_read_one(p) for p in paths])
