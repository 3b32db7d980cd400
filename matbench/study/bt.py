"""Bradley–Terry model for paired comparisons: P(i beats j) = p_i / (p_i + p_j).

Fitted by maximum likelihood: Newton's method on the log-likelihood in theta = log p (concave; steps halved
until they increase it), which converges to the unique MLE when the comparison graph is strongly connected
(every system beat and lost, through some chain, to every other). Scores are reported as
log-strengths centred to mean 0, so exp(s_i - s_j) is the odds that i is preferred over j.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matbench.errors import Hint, InputError


def win_matrix(n_systems: int, outcomes: Sequence[tuple[int, int]] | np.ndarray) -> np.ndarray:
    """W[i, j] = how often system i was preferred over j, from (winner, loser) pairs."""
    w = np.zeros((n_systems, n_systems), dtype=np.float64)
    arr = np.asarray(outcomes, dtype=np.int64).reshape(-1, 2)
    np.add.at(w, (arr[:, 0], arr[:, 1]), 1.0)
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


def fit(w: np.ndarray, prior: float = 0.0, tol: float = 1e-12, max_iter: int = 200) -> np.ndarray:
    """Log-strengths (mean 0) from a win matrix. `prior` adds that many virtual wins each way to every pair
    that was compared (a mild shrinkage that makes the fit exist for any data); 0 = the plain MLE."""
    w = np.asarray(w, dtype=np.float64)
    compared = (w + w.T) > 0
    w = w + prior * compared
    if not identifiable(w):
        raise InputError("Bradley–Terry: the choices do not connect every system both ways (some system never "
                         "won or never lost against the rest); the MLE does not exist — use a prior",
                         hints=[Hint("--prior", "e.g. --prior 0.5")])
    n = w + w.T
    wins = w.sum(axis=1)
    k = len(w)
    theta = np.zeros(k)
    ll = _loglik(theta, w)
    for _ in range(max_iter):
        sig = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))  # P(i beats j)
        grad = wins - (n * sig).sum(axis=1)
        c = n * sig * (1 - sig)
        info = np.diag(c.sum(axis=1)) - c  # observed information; its null space is the all-ones vector
        step = np.linalg.solve(info + np.ones((k, k)) / k, grad)
        t = 1.0
        while True:  # backtracking keeps every step an ascent step
            new = theta + t * step
            new_ll = _loglik(new, w)
            if new_ll >= ll - 1e-15 or t < 1e-8:
                break
            t /= 2
        theta, ll = new - new.mean(), new_ll
        if np.max(np.abs(t * step)) < tol:
            break
    return theta


def _loglik(theta: np.ndarray, w: np.ndarray) -> float:
    d = theta[:, None] - theta[None, :]
    return float(-(w * np.logaddexp(0.0, -d)).sum())  # sum of W_ij * log sigmoid(theta_i - theta_j)


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
        w = win_matrix(n_systems, pick)
        try:
            fits.append(fit(w, prior=prior, tol=1e-10))
        except InputError:
            skipped += 1
    if not fits:
        nan = np.full(n_systems, np.nan)
        return nan, nan, skipped
    f = np.stack(fits)
    a = (1 - level) / 2
    return np.quantile(f, a, axis=0), np.quantile(f, 1 - a, axis=0), skipped
