"""Bradley–Terry model for paired comparisons: P(i beats j) = p_i / (p_i + p_j).

Fitted by maximum likelihood with Hunter's (2004) MM iteration
    p_i <- W_i / sum_j n_ij / (p_i + p_j)
which increases the likelihood at every step and converges to the unique MLE when the comparison graph is
strongly connected (every system beat and lost, through some chain, to every other). Scores are reported as
log-strengths centred to mean 0, so exp(s_i - s_j) is the odds that i is preferred over j.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matbench.errors import InputError


def win_matrix(n_systems: int, outcomes: Sequence[tuple[int, int]]) -> np.ndarray:
    """W[i, j] = how often system i was preferred over j, from (winner, loser) pairs."""
    w = np.zeros((n_systems, n_systems), dtype=np.float64)
    for a, b in outcomes:
        w[a, b] += 1
    return w


def identifiable(w: np.ndarray) -> bool:
    """True when the 'i beat j' graph is strongly connected (the MLE exists and is unique)."""
    k = len(w)
    if k < 2:
        return False
    adj = w > 0

    def reach(a: np.ndarray) -> set[int]:
        seen, todo = {0}, [0]
        while todo:
            i = todo.pop()
            for j in np.nonzero(a[i])[0]:
                if int(j) not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        return seen

    return len(reach(adj)) == k and len(reach(adj.T)) == k


def fit(w: np.ndarray, prior: float = 0.0, tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
    """Log-strengths (mean 0) from a win matrix. `prior` adds that many virtual wins each way to every pair
    that was compared (a mild shrinkage that makes the fit exist for any data); 0 = the plain MLE."""
    w = np.asarray(w, dtype=np.float64)
    compared = (w + w.T) > 0
    w = w + prior * compared
    if not identifiable(w):
        raise InputError("Bradley–Terry: the choices do not connect every system both ways (some system never "
                         "won or never lost against the rest); the MLE does not exist — use a prior (--prior 0.5)")
    n = w + w.T
    wins = w.sum(axis=1)
    p = np.ones(len(w))
    for _ in range(max_iter):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    s = np.log(p)
    return s - s.mean()


def bootstrap(outcomes: Sequence[tuple[int, int]], n_systems: int, n_resamples: int = 1000, seed: int = 0,
              prior: float = 0.0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, int]:
    """Percentile intervals of the scores over resampled outcomes (with replacement).

    Resamples whose choices do not identify the fit are skipped; their count is returned third."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(outcomes, dtype=np.int64).reshape(-1, 2)
    fits = []
    skipped = 0
    for _ in range(n_resamples):
        pick = arr[rng.integers(0, len(arr), len(arr))]
        w = win_matrix(n_systems, [tuple(x) for x in pick])
        try:
            fits.append(fit(w, prior=prior, tol=1e-9, max_iter=10_000))
        except InputError:
            skipped += 1
    if not fits:
        nan = np.full(n_systems, np.nan)
        return nan, nan, skipped
    f = np.stack(fits)
    a = (1 - level) / 2
    return np.quantile(f, a, axis=0), np.quantile(f, 1 - a, axis=0), skipped
