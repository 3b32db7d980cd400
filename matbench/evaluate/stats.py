"""Statistics shared by the metric glue: bootstrap intervals, means, and the FID resample statistic."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from matbench.results import MetricValue

# seconds spent resampling, summed over the process; Evaluator.finalize reports its share as "bootstrap"
BOOTSTRAP_CLOCK = {"s": 0.0}


def _ci_pair(out: Any) -> tuple[float | None, float | None]:
    """Accept (low, high), {"low"/"ci_low", ...} or an object with ci_low/ci_high."""
    if out is None:
        return None, None
    if isinstance(out, dict):
        lo = out.get("ci_low", out.get("low"))
        hi = out.get("ci_high", out.get("high"))
    elif hasattr(out, "ci_low"):
        lo, hi = out.ci_low, out.ci_high
    else:
        lo, hi = out[0], out[1]
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def fid_trace_fast(real: np.ndarray, fake: np.ndarray, convention: str) -> float:
    """FID via singular values of the cross product of centred features.

    With A, B the centred features and c1, c2 the covariance factors, S1 S2 = c1 c2 A^T A B^T B has the
    non-zero eigenvalues of c1 c2 (A B^T)(A B^T)^T, so tr sqrt(S1 S2) = sqrt(c1 c2) * ||A B^T||_* .
    For N < D this avoids every D x D decomposition (bootstrap of FID on small sets and bins).
    """
    n1, n2 = real.shape[0], fake.shape[0]
    a = real - real.mean(axis=0)
    b = fake - fake.mean(axis=0)
    c1 = 1.0 / (n1 if convention == "mat" else n1 - 1)
    c2 = 1.0 / (n2 if convention == "mat" else n2 - 1)
    diff = real.mean(axis=0) - fake.mean(axis=0)
    sv = np.linalg.svd(a @ b.T, compute_uv=False)
    tr = math.sqrt(c1 * c2) * float(sv.sum())
    return float(diff @ diff + c1 * float((a * a).sum()) + c2 * float((b * b).sum()) - 2.0 * tr)


def _fid_statistic(real: np.ndarray, fake: np.ndarray, convention: str, device: str = "cpu"
                   ) -> Callable[[np.ndarray], float]:
    """FID of a resample of pairs (idx), in float64 torch on `device` (the bootstrap's inner loop).

    N < D: singular values of the N x N cross product (fid_trace_fast); otherwise covariances and
    two symmetric eigendecompositions, as matbench.metrics.fid, on the GPU when there is one.
    """
    dev = torch.device(device)
    r_all = torch.as_tensor(real, dtype=torch.float64, device=dev)
    f_all = torch.as_tensor(fake, dtype=torch.float64, device=dev)
    d = real.shape[1]

    def stat(idx: np.ndarray) -> float:
        i = torch.as_tensor(idx, dtype=torch.long, device=dev)
        r, f = r_all.index_select(0, i), f_all.index_select(0, i)
        n = r.shape[0]
        c = 1.0 / (n if convention == "mat" else n - 1)
        mr, mf = r.mean(0), f.mean(0)
        a, b = r - mr, f - mf
        diff = mr - mf
        if n < d:
            tr = c * torch.linalg.svdvals(a @ b.T).sum()
            return float(diff @ diff + c * (a * a).sum() + c * (b * b).sum() - 2.0 * tr)
        s1, s2 = c * (a.T @ a), c * (b.T @ b)
        # S1 = L L^T (Cholesky): S1 S2 is similar to L^T S2 L, so one eigvalsh (no eigenvectors) suffices;
        # singular S1 (e.g. dead ReLU channels) falls back to the symmetric square root.
        low, info = torch.linalg.cholesky_ex(s1)
        if int(info) == 0:
            m = low.T @ s2 @ low
        else:
            w, v = torch.linalg.eigh(s1)
            root = (v * w.clamp(min=0).sqrt()) @ v.T
            m = root @ s2 @ root
        lam = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp(min=0)
        return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2.0 * lam.sqrt().sum())

    return stat


def _bootstrap(stat: Callable[[np.ndarray], float], n: int, n_resamples: int, seed: int,
               method: str = "percentile") -> tuple[float | None, float | None]:
    if n_resamples <= 0 or n < 2:
        return None, None
    from matbench.metrics import bootstrap

    t0 = time.perf_counter()
    try:
        return _ci_pair(bootstrap.bootstrap_ci(stat, n, n_resamples, seed, method=method))
    finally:
        BOOTSTRAP_CLOCK["s"] += time.perf_counter() - t0


def _mean_metric(values: np.ndarray, n_resamples: int, seed: int) -> MetricValue:
    v = np.asarray(values, dtype=np.float64)
    lo = hi = None
    if n_resamples > 0 and v.size >= 2:
        from matbench.metrics import bootstrap

        t0 = time.perf_counter()
        lo, hi = _ci_pair(bootstrap.mean_ci(v, n_resamples=n_resamples, seed=seed))
        BOOTSTRAP_CLOCK["s"] += time.perf_counter() - t0
    return MetricValue(value=float(v.mean()), ci_low=lo, ci_high=hi, n=int(v.size))
