"""Paired statistics: is B better than A on the same images and masks? Pure numpy, no I/O.

Every model in a comparison is scored on the same images, so the resampling unit is the image index: one
resample draws n image indices with replacement and every model (and the ground truth, for dataset-level
metrics) is re-scored on those same images. Most of a metric's spread is which images were drawn, and that part
is shared, so the interval of the difference B - A is much narrower than the two separate intervals suggest.

Per-image metrics (LPIPS, PSNR, ...): the statistic is the mean, so a resampled value is the mean of the
resampled per-image values (`resampled_means`).

Fréchet distances (FID, FD-DINOv2, ...): recomputing two covariances and a matrix square root per resample is
too slow at paper scale (N = 36,500, D = 2048), so method "linear" linearises the distance in the image weights:
each image i gets an influence value phi_i (how much FD moves per unit of extra weight on image i, real and
generated rows together), and FD(resample) - FD ~ mean(phi[idx]) - mean(phi). The paired deviation of B - A is
then the resampled mean of phi_B - phi_A, exactly like a per-image metric. Method "exact" recomputes both
distances per resample; its deviations are centred on their mean, which is the bias-corrected percentile
interval matbench uses for FID (a resample repeats images and inflates FD). With fewer images than feature
dimensions the covariances are singular, the square root is not smooth there and the linearisation can be off by
more than 10 % of the interval width, so the default ("auto") is exact for N < D up to EXACT_MAX_N images (an
N x N SVD per resample) and linear otherwise.

Interval and p-value: the percentile interval of delta + deviation at level 1 - alpha, and the two-sided
p-value that inverts it: p = 2 * min(#(delta* <= 0) + 1, #(delta* >= 0) + 1) / (B + 1), capped at 1 (the
smallest alpha at which the percentile interval would exclude 0; never 0, so the smallest p-value B resamples
can give is about 2 / (B + 1)). Verdict for B: "tie" when the interval contains 0, else "better" or "worse" by the
metric's direction.

Resamples come from numpy's PCG64 seeded with `seed`, in the same stream as matbench.metrics.bootstrap.mean_ci,
so every metric compared with the same seed sees the same image draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from matbench.metrics.fid import CONVENTIONS, FIDResampler, fid

VERDICTS = ("better", "worse", "tie")
FD_METHODS = ("auto", "linear", "exact")
EXACT_MAX_N = 256  # method="auto": exact paired bootstrap for N < D up to this many images
_GATHER = 1 << 22  # resampled entries per chunk (memory bound of the index matrix)


@dataclass(frozen=True)
class Resampling:
    """How to resample: number of resamples, seed of the image draws, 1 - interval level."""

    n_resamples: int = 2000
    seed: int = 0
    alpha: float = 0.05


@dataclass(frozen=True)
class Paired:
    """The paired comparison of one metric: values of A and B, delta = B - A, its interval, p-value, verdict."""

    a: float
    b: float
    delta: float
    ci: tuple[float, float]
    p_value: float
    verdict: str
    n: int
    method: str = "bootstrap"

    def to_json(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "delta": self.delta, "ci": [self.ci[0], self.ci[1]],
                "p_value": self.p_value, "verdict": self.verdict}


def _check_args(n: int, n_resamples: int, alpha: float) -> None:
    if n < 2:
        raise ValueError(f"a paired interval needs at least 2 images, got {n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def index_chunks(n: int, n_resamples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Resampled image indices [m, n] in chunks; the rows over all chunks are the n_resamples resamples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _GATHER // max(n, 1))
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_resamples - start), n))


def resampled_means(columns: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Means of the resampled rows of per-image `columns` [n] or [n, k]: [B] or [B, k], one image draw per row
    shared by all columns (the pairing)."""
    v = np.asarray(columns, dtype=np.float64)
    one = v.ndim == 1
    v2 = v[:, None] if one else v
    n = v2.shape[0]
    out = np.empty((n_resamples, v2.shape[1]), dtype=np.float64)
    row = 0
    for idx in index_chunks(n, n_resamples, seed):
        m = idx.shape[0]
        for j in range(v2.shape[1]):
            out[row:row + m, j] = v2[:, j][idx].mean(axis=1)
        row += m
    return out[:, 0] if one else out


def interval(delta: float, deviations: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """(lo, hi, p) of delta from resampled deviations (delta* - delta): percentile interval and the p-value
    that inverts it (module doc). Non-finite deviations are dropped; none finite gives (nan, nan, nan)."""
    dev = np.asarray(deviations, dtype=np.float64)
    dev = dev[np.isfinite(dev)]
    if dev.size == 0:
        return float("nan"), float("nan"), float("nan")
    star = delta + dev
    lo, hi = np.quantile(star, [alpha / 2.0, 1.0 - alpha / 2.0])
    k = int(min(np.count_nonzero(star <= 0.0), np.count_nonzero(star >= 0.0)))
    p = min(1.0, 2.0 * (k + 1) / (dev.size + 1))
    return float(lo), float(hi), float(p)


def verdict(lo: float, hi: float, higher_is_better: bool) -> str:
    """"tie" when [lo, hi] contains 0 (or is undefined), else "better"/"worse" for B by the metric's direction."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0.0 <= hi:
        return "tie"
    up = lo > 0.0
    return "better" if up == higher_is_better else "worse"


def _paired(a: float, b: float, deviations: np.ndarray, n: int, higher_is_better: bool, alpha: float,
            method: str) -> Paired:
    delta = float(b) - float(a)
    lo, hi, p = interval(delta, deviations, alpha)
    return Paired(float(a), float(b), delta, (lo, hi), p, verdict(lo, hi, higher_is_better), n, method)


def paired_mean(values_a: np.ndarray, values_b: np.ndarray, higher_is_better: bool,
                rs: Resampling = Resampling()) -> Paired:
    """Paired comparison of a per-image metric (rows = the same images in the same order)."""
    va = np.asarray(values_a, dtype=np.float64).ravel()
    vb = np.asarray(values_b, dtype=np.float64).ravel()
    if va.shape != vb.shape:
        raise ValueError(f"paired values needed; got {va.size} and {vb.size}")
    _check_args(va.size, rs.n_resamples, rs.alpha)
    d = vb - va
    dev = resampled_means(d, rs.n_resamples, rs.seed) - d.mean()
    return _paired(va.mean(), vb.mean(), dev, va.size, higher_is_better, rs.alpha, "bootstrap")


# --------------------------------------------------------------------------------------------- Fréchet distances

def _cov_scale(n: int, convention: str) -> float:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FID convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    return 1.0 / (n if convention == "mat" else n - 1)


def _centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=0)
    return x - mu, mu


def _sqrt_grad_small(xr: np.ndarray, xf: np.ndarray) -> np.ndarray:
    """d/dw_i of ||W^1/2 Xr Xf^T W^1/2||_* at W = I (N < D): tr sqrt(S_r S_f) = c times that nuclear norm, and
    d||M||_* = <U V^T, dM> over the non-zero singular values."""
    m = xr @ xf.T
    u, s, vt = np.linalg.svd(m)
    keep = s > s.max(initial=0.0) * 1e-10
    q = (u[:, keep] @ vt[keep]) * m
    return 0.5 * (q.sum(axis=1) + q.sum(axis=0))


class _RealFactor:
    """What the D-space influence needs of the real side, computed once for every model compared with it."""

    def __init__(self, xr: np.ndarray, c: float):
        self.xr = xr
        self.c = c
        s = c * (xr.T @ xr)
        try:
            self.lf = np.linalg.cholesky(s)
            self.lf_inv = np.linalg.inv(self.lf)
        except np.linalg.LinAlgError:  # singular: symmetric square root and its pseudo-inverse
            w, v = np.linalg.eigh(s)
            w = np.clip(w, 0.0, None)
            r = np.sqrt(w)
            inv = np.where(r > r.max(initial=0.0) * 1e-10, 1.0 / np.where(r > 0, r, 1.0), 0.0)
            self.lf = (v * r) @ v.T
            self.lf_inv = (v * inv) @ v.T
        self.sq_norms = (xr * xr).sum(axis=1)


def _sqrt_grad_large(rf: _RealFactor, xf: np.ndarray) -> np.ndarray:
    """d/dw_i of tr sqrt(S_r(w) S_f(w)) / c at w = 1 (N >= D). With S_r = L L^T and L^T S_f L = U diag(lam) U^T:
    the gradient in S_r is 1/2 L^-T U lam^1/2 U^T L^-1, in S_f it is 1/2 L U lam^-1/2 U^T L^T, and dS = c x x^T dw,
    so each term is half a squared row norm of a projection of the image's centred feature."""
    sf = rf.c * (xf.T @ xf)
    a = rf.lf.T @ sf @ rf.lf
    lam, u = np.linalg.eigh(0.5 * (a + a.T))
    lam = np.clip(lam, 0.0, None)
    pos = lam > lam.max(initial=0.0) * 1e-12
    q4 = np.where(pos, np.sqrt(np.sqrt(np.where(pos, lam, 1.0))), 0.0)
    kr = (rf.lf_inv.T @ u) * q4  # real rows: lam^(1/4) U^T L^-1 x
    kf = (rf.lf @ u) * np.where(pos, 1.0 / np.where(pos, q4, 1.0), 0.0)  # fake rows: lam^(-1/4) U^T L^T x
    pr = rf.xr @ kr
    pf = xf @ kf
    return 0.5 * ((pr * pr).sum(axis=1) + (pf * pf).sum(axis=1))


def fd_influence(real: np.ndarray, fake: np.ndarray, convention: str = "mat",
                 _real_factor: _RealFactor | None = None) -> np.ndarray:
    """Influence values phi [n] of the Fréchet distance between paired feature rows (row i = image i's ground
    truth and completion): FD(weights w) ~ FD + mean((w - 1) * phi) for multiplicity weights summing to n.

    FD = |mu_r - mu_f|^2 + tr S_r + tr S_f - 2 tr sqrt(S_r S_f); with centred rows x and S = c sum_i w_i x_i x_i^T
    (c = 1/n "mat", 1/(n - 1) "torch-fidelity"; the shift of the mean is second order), phi_i = n dFD/dw_i.
    """
    xr, mur = _centred(real)
    xf, muf = _centred(fake)
    if xr.shape != xf.shape or xr.ndim != 2:
        raise ValueError(f"paired features [n, D] needed; got real {xr.shape}, fake {xf.shape}")
    n, d = xr.shape
    c = _cov_scale(n, convention)
    dmu = mur - muf
    phi = 2.0 * ((xr - xf) @ dmu) + n * c * ((xr * xr).sum(axis=1) + (xf * xf).sum(axis=1))
    if n < d:
        g = _sqrt_grad_small(xr, xf)
    else:
        g = _sqrt_grad_large(_real_factor or _RealFactor(xr, c), xf)
    return phi - 2.0 * n * c * g


class _SmallExact:
    """Exact FD of a resample through N x N matrices (N < D): with centred rows, tr sqrt(S_r S_f) = c ||M||_*,
    M = C K[idx, idx] C (K = Xr Xf^T computed once, C the centring matrix), so a resample costs one N x N SVD."""

    def __init__(self, real: np.ndarray, fake: np.ndarray, c: float):
        self.xr, mur = _centred(real)
        self.xf, muf = _centred(fake)
        self.dmu = mur - muf
        self.k = self.xr @ self.xf.T
        self.sr, self.sf = (self.xr * self.xr).sum(axis=1), (self.xf * self.xf).sum(axis=1)
        self.c = c

    def __call__(self, idx: np.ndarray) -> float:
        n = idx.size
        m = self.k[np.ix_(idx, idx)]
        m = m - m.mean(axis=0) - m.mean(axis=1)[:, None] + m.mean()
        ar, af = self.xr[idx].mean(axis=0), self.xf[idx].mean(axis=0)
        tr_r = self.sr[idx].sum() - n * (ar @ ar)
        tr_f = self.sf[idx].sum() - n * (af @ af)
        dmu = self.dmu + ar - af
        nuc = float(np.linalg.svd(m, compute_uv=False).sum())
        return float(dmu @ dmu + self.c * (tr_r + tr_f - 2.0 * nuc))


def _exact_fd_deltas(real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, convention: str,
                     n_resamples: int, seed: int) -> np.ndarray:
    n, d = real.shape
    out = np.empty(n_resamples, dtype=np.float64)
    if n >= d:
        ra, rb = FIDResampler(real, fake_a, convention), FIDResampler(real, fake_b, convention)
    else:
        c = _cov_scale(n, convention)
        ra, rb = _SmallExact(real, fake_a, c), _SmallExact(real, fake_b, c)
    row = 0
    for idx in index_chunks(n, n_resamples, seed):
        for k in range(idx.shape[0]):
            out[row] = rb(idx[k]) - ra(idx[k])
            row += 1
    return out


def fd_method(n: int, d: int) -> str:
    """What method="auto" uses: "exact" when N < D and N <= EXACT_MAX_N (covariances are singular there and the
    linearisation misses the non-smooth part of the matrix square root; one N x N SVD per resample is cheap),
    else "linear"."""
    return "exact" if n < d and n <= EXACT_MAX_N else "linear"


def paired_fd(real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, convention: str = "mat", *,
              values: tuple[float, float] | None = None, method: str = "auto", rs: Resampling = Resampling()
              ) -> Paired:
    """Paired comparison of a Fréchet distance (FID, FD-DINOv2, ...; lower is better): the same resampled images
    for the ground truth and both models. values: the recorded (A, B) values (default: computed from the features).
    method: "linear" (influence values), "exact" (both distances recomputed per resample) or "auto" (fd_method)."""
    if method not in FD_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(FD_METHODS)}")
    real = np.asarray(real, dtype=np.float64)
    fa = np.asarray(fake_a, dtype=np.float64)
    fb = np.asarray(fake_b, dtype=np.float64)
    if not (real.shape == fa.shape == fb.shape) or real.ndim != 2:
        raise ValueError(f"paired features [n, D] needed; got real {real.shape}, A {fa.shape}, B {fb.shape}")
    n = real.shape[0]
    n_resamples, seed, alpha = rs.n_resamples, rs.seed, rs.alpha
    _check_args(n, n_resamples, alpha)
    if method == "auto":
        method = fd_method(n, real.shape[1])
    va, vb = (fid(real, fa, convention), fid(real, fb, convention)) if values is None else map(float, values)
    if method == "exact":
        star = _exact_fd_deltas(real, fa, fb, convention, n_resamples, seed)
        dev = star - star[np.isfinite(star)].mean()
        return _paired(va, vb, dev, n, False, alpha, "exact bootstrap (bias-corrected)")
    if np.array_equal(fa, fb):  # the same model twice: every deviation is exactly 0 (no rounding residue)
        return _paired(va, vb, np.zeros(n_resamples), n, False, alpha, "linearised bootstrap")
    xr, _ = _centred(real)
    rf = _RealFactor(xr, _cov_scale(n, convention)) if n >= real.shape[1] else None
    psi = fd_influence(real, fb, convention, rf) - fd_influence(real, fa, convention, rf)
    dev = resampled_means(psi, n_resamples, seed) - psi.mean()
    return _paired(va, vb, dev, n, False, alpha, "linearised bootstrap")


# --------------------------------------------------------------------------------------------- many comparisons

def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given): reject H_i at alpha iff adjusted p_i <= alpha,
    which controls the family-wise error rate at alpha under any dependence."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.empty(m, dtype=np.float64)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def rank_probabilities(samples: np.ndarray, higher_is_better: bool, alpha: float = 0.05
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From paired resamples [B, k] (row = one image draw, column = a model's resampled value): each model's
    probability of being ranked first (ties share it) and its rank interval [lo, hi] at level 1 - alpha
    (rank 1 = best; tied values take the best rank)."""
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 1:
        raise ValueError(f"samples must be [B, k], got shape {s.shape}")
    v = s if higher_is_better else -s
    best = v.max(axis=1, keepdims=True)
    is_best = v == best
    first = (is_best / is_best.sum(axis=1, keepdims=True)).mean(axis=0)
    ranks = 1 + (v[:, None, :] > v[:, :, None]).sum(axis=2)  # rank of model j: 1 + #models strictly better
    lo, hi = np.quantile(ranks, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0, method="inverted_cdf")
    return first, lo.astype(int), hi.astype(int)
