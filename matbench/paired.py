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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from matbench.metrics.fd import RealFactor, fd_influence, fd_statistic
from matbench.metrics.fid import fid

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
    # delta* - delta per resample (finite or not), kept for the one-sided gate test (regression_test)
    deviations: np.ndarray | None = field(default=None, repr=False, compare=False)

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
    return Paired(float(a), float(b), delta, (lo, hi), p, verdict(lo, hi, higher_is_better), n, method,
                  np.asarray(deviations, dtype=np.float64))


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


@dataclass(frozen=True)
class GateTest:
    """The gate's one-sided test of "B is worse than A by more than the tolerance": the decision, its p-value,
    and the two-sided interval of delta at level 1 - 2 alpha, whose better-side end is the one-sided bound."""

    regressed: bool
    p_value: float
    ci: tuple[float, float]
    level: float


def regression_test(r: Paired, tolerance: float, higher_is_better: bool, alpha: float = 0.05) -> GateTest:
    """One-sided paired test of H0 "worse_by <= tolerance" (worse_by = delta signed so that positive is worse).

    p = (#(worse_by* <= tolerance) + 1) / (B + 1) over the resamples, capped at 1; a regression is worse_by >
    tolerance AND p <= alpha. With exchangeable models and tolerance 0 the false-alarm rate is about alpha (it is
    alpha at worse_by = tolerance and smaller for any smaller true change)."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) for the one-sided gate test, got {alpha}")
    if r.deviations is None:
        raise ValueError("regression_test needs the resampled deviations of the paired comparison")
    dev = r.deviations[np.isfinite(r.deviations)]
    if dev.size == 0:
        return GateTest(False, float("nan"), (float("nan"), float("nan")), 1.0 - 2.0 * alpha)
    sign = -1.0 if higher_is_better else 1.0
    worse_star = sign * (r.delta + dev)
    p = min(1.0, (np.count_nonzero(worse_star <= tolerance) + 1) / (dev.size + 1))
    lo, hi = np.quantile(r.delta + dev, [alpha, 1.0 - alpha])
    regressed = bool(sign * r.delta > tolerance and p <= alpha)
    return GateTest(regressed, float(p), (float(lo), float(hi)), 1.0 - 2.0 * alpha)


# --------------------------------------------------------------------------------------------- Fréchet distances

def _exact_fd_deltas(real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, convention: str,
                     n_resamples: int, seed: int) -> np.ndarray:
    n, d = real.shape
    out = np.empty(n_resamples, dtype=np.float64)
    ra, rb = fd_statistic(real, fake_a, convention), fd_statistic(real, fake_b, convention)
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
    xr = real - real.mean(axis=0)  # the real side's factor once, for both models
    rf = RealFactor(xr, 1.0 / (n if convention == "mat" else n - 1)) if n >= real.shape[1] else None
    psi = fd_influence(real, fb, convention, rf) - fd_influence(real, fa, convention, rf)
    dev = resampled_means(psi, n_resamples, seed) - psi.mean()
    return _paired(va, vb, dev, n, False, alpha, "linearised bootstrap")


# --------------------------------------------------------------------------------------------- KID

KID_CAP = 4096  # images the KID influence values are computed on (4 kernel matrices of KID_CAP^2 entries)
_KID_BLOCK = 2048  # kernel rows per block


def _cubic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's polynomial kernel (x . y / D + 1)^3 (torch-fidelity's defaults: degree 3, gamma 1/D, coef 1)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(real: np.ndarray, fake: np.ndarray) -> float:
    """The unbiased MMD^2 of KID on whole paired sets (one subset of all images; i != j within a side)."""
    x = np.asarray(real, dtype=np.float64)
    y = np.asarray(fake, dtype=np.float64)
    n = x.shape[0]
    kxx, kyy, kxy = _cubic(x, x), _cubic(y, y), _cubic(x, y)
    off = n * (n - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.mean())


def _kid_fake_influence(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The fake-dependent part of KID's influence values (the real-real term is shared by both models and cancels
    in B - A): n dMMD^2/dw_i = 2 (g_yy,i - mean g_yy) - 2 (r_i + c_i - 2 mean K_xy), with g_yy,i the mean kernel of
    fake i with the other fakes, r_i = mean_j k(x_i, y_j) and c_i = mean_j k(x_j, y_i)."""
    n = x.shape[0]
    gyy = np.empty(n)
    r = np.empty(n)
    c = np.zeros(n)
    for i in range(0, n, _KID_BLOCK):
        kyy = _cubic(y[i:i + _KID_BLOCK], y)
        gyy[i:i + _KID_BLOCK] = (kyy.sum(axis=1) - np.diagonal(kyy, offset=i)) / (n - 1)
        kxy = _cubic(x[i:i + _KID_BLOCK], y)
        r[i:i + _KID_BLOCK] = kxy.mean(axis=1)
        c += kxy.sum(axis=0) / n
    return 2.0 * (gyy - gyy.mean()) - 2.0 * (r + c - 2.0 * r.mean())


def kid_influence(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """Influence values phi [n] of the unbiased MMD^2 (KID) between paired rows: MMD^2(w) ~ MMD^2 + mean((w - 1)
    phi) for multiplicity weights summing to n; mean 0."""
    x = np.asarray(real, dtype=np.float64)
    y = np.asarray(fake, dtype=np.float64)
    n = x.shape[0]
    kxx = np.empty(n)
    for i in range(0, n, _KID_BLOCK):
        k = _cubic(x[i:i + _KID_BLOCK], x)
        kxx[i:i + _KID_BLOCK] = (k.sum(axis=1) - np.diagonal(k, offset=i)) / (n - 1)
    return 2.0 * (kxx - kxx.mean()) + _kid_fake_influence(x, y)


def paired_kid(real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, *, values: tuple[float, float] | None
               = None, rs: Resampling = Resampling(), cap: int = KID_CAP) -> Paired:
    """Paired comparison of KID (lower is better), linearised: the bootstrap of the mean of the differences of the
    U-statistic's influence values. Above `cap` images the influence values are computed on `cap` images drawn
    without replacement and the deviations are scaled by sqrt(cap / n) (the standard error of a mean over n)."""
    real, fa, fb = (np.asarray(v, dtype=np.float64) for v in (real, fake_a, fake_b))
    if not (real.shape == fa.shape == fb.shape) or real.ndim != 2:
        raise ValueError(f"paired features [n, D] needed; got real {real.shape}, A {fa.shape}, B {fb.shape}")
    n = real.shape[0]
    _check_args(n, rs.n_resamples, rs.alpha)
    va, vb = (mmd2_unbiased(real, fa), mmd2_unbiased(real, fb)) if values is None else map(float, values)
    m = min(n, max(cap, 2))
    method = "linearised bootstrap (U-statistic influence)"
    if np.array_equal(fa, fb):
        return _paired(va, vb, np.zeros(rs.n_resamples), n, False, rs.alpha, method)
    rows = np.arange(n) if m == n else np.sort(np.random.default_rng(rs.seed).choice(n, m, replace=False))
    x = real[rows]
    psi = _kid_fake_influence(x, fb[rows]) - _kid_fake_influence(x, fa[rows])
    dev = (resampled_means(psi, rs.n_resamples, rs.seed) - psi.mean()) * np.sqrt(m / n)
    if m < n:
        method += f", influence on {m} of {n} images"
    return _paired(va, vb, dev, n, False, rs.alpha, method)


# --------------------------------------------------------------------------------------------- refit bootstrap

REFIT_RESAMPLES = 50  # resamples of a refit bootstrap (P-IDS/U-IDS, precision/recall): each refits the metric
REFIT_CAP = 4096  # images per refit resample (m-out-of-n above it)


def paired_refit(stat: Callable[[np.ndarray, np.ndarray], float], real: np.ndarray, fake_a: np.ndarray,
                 fake_b: np.ndarray, higher_is_better: bool, *, values: tuple[float, float] | None = None,
                 rs: Resampling = Resampling(REFIT_RESAMPLES), cap: int = REFIT_CAP) -> Paired:
    """Paired bootstrap that recomputes stat(real rows, fake rows) on every resample, for both models on the same
    image draw (P-IDS/U-IDS refit their SVM, precision/recall their k-NN manifolds). Each resample draws
    m = min(n, cap) images with replacement; the deviations delta* - mean(delta*) (centred: resamples repeat
    images, which biases these statistics) are scaled by sqrt(m / n) when m < n (m-out-of-n bootstrap)."""
    n = real.shape[0]
    _check_args(n, rs.n_resamples, rs.alpha)
    va, vb = (stat(real, fake_a), stat(real, fake_b)) if values is None else map(float, values)
    m = min(n, max(cap, 2))
    method = f"paired bootstrap, refit per resample ({rs.n_resamples} resamples of {m} images"
    method += ", m-out-of-n, scaled)" if m < n else ")"
    if np.array_equal(fake_a, fake_b):
        return _paired(va, vb, np.zeros(rs.n_resamples), n, higher_is_better, rs.alpha, method)
    rng = np.random.default_rng(rs.seed)
    star = np.empty(rs.n_resamples)
    for k in range(rs.n_resamples):
        idx = rng.integers(0, n, size=m)
        star[k] = stat(real[idx], fake_b[idx]) - stat(real[idx], fake_a[idx])
    dev = (star - star[np.isfinite(star)].mean()) * np.sqrt(m / n)
    return _paired(va, vb, dev, n, higher_is_better, rs.alpha, method)


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
