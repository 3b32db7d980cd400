"""The one Fréchet distance: FID, FD_DINOv2, CLIP-FID, pytorch-fid's FID and reference statistics all use it.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)), on any feature space.

Two covariance conventions, named in every result because they give different numbers at small N:
  "mat"             1/N      (MAT's evaluatoin/cal_fid_pids_uids.py, StyleGAN2-ADA's FeatureStats)
  "torch-fidelity"  1/(N-1)  (torch-fidelity's fid_features_to_statistics, numpy.cov, pytorch-fid)

The trace of the matrix square root is computed without a general (Schur) matrix square root:
S1 S2 is similar to the symmetric PSD matrix A = sqrt(S1) S2 sqrt(S1), so
tr(sqrt(S1 S2)) = sum_i sqrt(lambda_i(A)). Two symmetric eigendecompositions replace scipy.linalg.sqrtm,
which is an order of magnitude slower at D = 2048 and can return complex noise for singular inputs.

Intervals resample image pairs: `fd_statistic` gives the distance of a resample `idx` (FDResampler from
multiplicity weights for N >= D; for N < D the N x N cross-product form, no D x D matrix).
`fd_to_stats` compares features with a reference statistics file (mean, covariance) instead of images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from matbench.metrics.bootstrap import bootstrap_interval, mean_interval

CONVENTIONS = ("mat", "torch-fidelity")
_CHUNK = 8192  # rows per float64 block in feature_stats


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: features must be 2-D [N, D], got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 feature vectors, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: features contain NaN or inf")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def feature_stats(feats: np.ndarray, convention: str = "mat") -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64) of features [N, D] under the named convention."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FID convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    x = _as_features(feats, "feats")
    n, d = x.shape
    mu = x.mean(axis=0, dtype=np.float64)
    # Centred products in float64, accumulated over row chunks so that float32 inputs are never copied whole:
    # same value as MAT's (sum x x^T)/N - mu mu^T, without the cancellation.
    sigma = np.zeros((d, d), dtype=np.float64)
    for i in range(0, n, _CHUNK):
        xc = x[i:i + _CHUNK].astype(np.float64) - mu
        sigma += xc.T @ xc
    sigma /= n if convention == "mat" else n - 1
    return mu, sigma


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    w = np.sqrt(np.clip(w, 0.0, None))  # covariances are PSD; negatives are rounding noise
    return (v * w) @ v.T


def _factor(s: np.ndarray, method: str) -> np.ndarray:
    """A matrix L with s = L L^T: Cholesky when asked and s is positive definite, else the symmetric sqrt."""
    if method == "cholesky":
        try:
            return np.linalg.cholesky(s)
        except np.linalg.LinAlgError:  # singular (e.g. N <= D): fall back to the eigendecomposition
            pass
    return _sym_sqrt(s)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eigh") -> float:
    """tr(sqrt(sigma1 @ sigma2)) for symmetric PSD sigma1, sigma2.

    With sigma1 = L L^T, sigma1 sigma2 is similar to L^T sigma2 L (symmetric PSD), whose eigenvalues are taken with
    eigvalsh. method "eigh": L = sqrt(sigma1) from a symmetric eigendecomposition; "cholesky": L from a Cholesky
    factorisation (several times cheaper; falls back to eigh when sigma1 is singular).
    """
    if method not in ("eigh", "cholesky"):
        raise ValueError(f"method must be 'eigh' or 'cholesky', got {method!r}")
    s1 = 0.5 * (sigma1 + sigma1.T)
    s2 = 0.5 * (sigma2 + sigma2.T)
    lf = _factor(s1, method)
    a = lf.T @ s2 @ lf
    lam = np.linalg.eigvalsh(0.5 * (a + a.T))
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {sigma1.shape}, "
                         f"sigma2 {sigma2.shape}")
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


class FDResampler:
    """Fréchet distance of bootstrap resamples of paired feature sets, for bootstrap.bootstrap_ci.

    `resampler(idx)` equals fd(real[idx], fake[idx], convention) (rows resampled jointly: pair i is image i
    of the ground truth and its completion), but computes the resampled moments from multiplicity weights
    (bincount of idx) on `device` in float64 without materialising the resampled arrays, factors sigma_real by
    Cholesky (eigh fallback when singular) and needs one eigvalsh per resample. With resample="fake" only the
    fake rows are resampled and the real factor is computed once.
    """

    def __init__(self, real_feats: np.ndarray, fake_feats: np.ndarray, convention: str = "mat",
                 device: str = "cpu", resample: str = "both"):
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown FID convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
        if resample not in ("both", "fake"):
            raise ValueError(f"resample must be 'both' or 'fake', got {resample!r}")
        real = _as_features(real_feats, "real_feats").astype(np.float64, copy=False)
        fake = _as_features(fake_feats, "fake_feats").astype(np.float64, copy=False)
        if real.shape != fake.shape:
            raise ValueError(f"paired features needed; got real {real.shape}, fake {fake.shape}")
        self.torch = torch
        self.n = real.shape[0]
        self.convention = convention
        self.resample = resample
        self.device = torch.device(device)
        # Centre once on the full-sample mean: shifts do not change covariances and improve conditioning.
        self.real = torch.as_tensor(real - real.mean(0), device=self.device)
        self.fake = torch.as_tensor(fake - fake.mean(0), device=self.device)
        self.mean_diff = torch.as_tensor(real.mean(0) - fake.mean(0), device=self.device)
        self._real_fixed = None
        self._real_factor = None
        if resample == "fake":
            self._real_fixed = self._moments(self.real, None)
            self._real_factor = self._factor(self._real_fixed[1])

    def _moments(self, x, w):
        n = self.n
        if w is None:
            mu = x.mean(0)
            xc = x - mu
            cov = xc.T @ xc
        else:
            mu = (w @ x) / n
            xc = x - mu
            cov = (xc * w[:, None]).T @ xc
        cov = cov / (n if self.convention == "mat" else n - 1)
        tr = self.torch.trace(cov)
        return mu, cov, tr

    def _factor(self, s):
        """L with s = L L^T: Cholesky (cheap), or the symmetric square root when s is singular."""
        torch = self.torch
        lf, info = torch.linalg.cholesky_ex(s)
        if int(info) == 0:
            return lf
        lam, v = torch.linalg.eigh(s)
        return (v * lam.clamp_min(0).sqrt()) @ v.T

    def __call__(self, idx: np.ndarray) -> float:
        torch = self.torch
        w = torch.as_tensor(np.bincount(np.asarray(idx), minlength=self.n).astype(np.float64), device=self.device)
        if self._real_fixed is not None:
            mu1, s1, t1 = self._real_fixed
            lf = self._real_factor
        else:
            mu1, s1, t1 = self._moments(self.real, w)
            lf = self._factor(s1)
        mu2, s2, t2 = self._moments(self.fake, w)
        a = lf.T @ s2 @ lf
        lam = torch.linalg.eigvalsh(0.5 * (a + a.T))
        diff = self.mean_diff + mu1 - mu2
        val = diff @ diff + t1 + t2 - 2.0 * lam.clamp_min(0).sqrt().sum()
        return float(val.item())


def fd(real_feats: np.ndarray, fake_feats: np.ndarray, convention: str = "torch-fidelity") -> float:
    """Fréchet distance between two feature sets [N, D] (sizes may differ) under the named covariance convention."""
    real = _as_features(real_feats, "real_feats")
    fake = _as_features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    mu1, s1 = feature_stats(real, convention)
    mu2, s2 = feature_stats(fake, convention)
    return frechet_distance(mu1, s1, mu2, s2)


def fd_to_stats(fake_feats: np.ndarray, mu: np.ndarray, sigma: np.ndarray, convention: str = "torch-fidelity"
                ) -> float:
    """Fréchet distance between features [N, D] and a Gaussian given by reference statistics."""
    mu2, s2 = feature_stats(fake_feats, convention)
    return frechet_distance(mu, sigma, mu2, s2)


def fd_statistic(real: np.ndarray, fake: np.ndarray, convention: str, device: str = "cpu"
                 ) -> Callable[[np.ndarray], float]:
    """Fréchet distance of a paired resample idx of rows (pair i = image i and its completion), for bootstraps.

    N >= D: FDResampler. N < D (bins, small sets): the N x N cross-product form in float64 on `device`:
    with A, B the centred features, tr sqrt(S1 S2) = c * nuclear norm of A B^T, so no D x D matrix is formed.
    """
    n, d = real.shape
    if n >= d:
        return FDResampler(real, fake, convention, device=device)
    dev = torch.device(device)
    r_all = torch.as_tensor(real, dtype=torch.float64, device=dev)
    f_all = torch.as_tensor(fake, dtype=torch.float64, device=dev)

    def stat(idx: np.ndarray) -> float:
        i = torch.as_tensor(idx, dtype=torch.long, device=dev)
        r, f = r_all.index_select(0, i), f_all.index_select(0, i)
        c = 1.0 / (r.shape[0] if convention == "mat" else r.shape[0] - 1)
        mr, mf = r.mean(0), f.mean(0)
        a, b = r - mr, f - mf
        diff = mr - mf
        tr = c * torch.linalg.svdvals(a @ b.T).sum()
        return float(diff @ diff + c * (a * a).sum() + c * (b * b).sum() - 2.0 * tr)

    return stat


def fd_value(real: np.ndarray, fake: np.ndarray, convention: str, stat: Callable[[np.ndarray], float]) -> float:
    """The distance of the whole paired set: `fd` for N >= D; for N < D the equivalent N x N form of `stat`."""
    n, d = real.shape
    return fd(real, fake, convention) if n >= d else stat(np.arange(n))


def fd_in_dtype(real: np.ndarray, fake: np.ndarray, convention: str, dtype: torch.dtype = torch.float32,
                device: str = "cpu") -> float:
    """The Fréchet distance with the moments and the trace of the square root computed in `dtype` (features cast
    to it first): what a float32 implementation would report, for the doctor's precision what-if. float64 here
    equals `fd_value`. N < D: the N x N form; otherwise the D x D moments and one eigvalsh."""
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    n, d = real.shape
    c = 1.0 / (n if convention == "mat" else n - 1)
    dev = torch.device(device)
    r = torch.as_tensor(real, device=dev).to(dtype)
    f = torch.as_tensor(fake, device=dev).to(dtype)
    mr, mf = r.mean(0), f.mean(0)
    a, b = r - mr, f - mf
    diff = mr - mf
    if n < d:
        tr = c * torch.linalg.svdvals(a @ b.T).sum()
    else:
        s1, s2 = c * (a.T @ a), c * (b.T @ b)
        lam, v = torch.linalg.eigh(s1)
        lf = (v * lam.clamp_min(0).sqrt()) @ v.T
        m = lf.T @ s2 @ lf
        tr = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(0).sqrt().sum()
    return float(diff @ diff + c * (a * a).sum() + c * (b * b).sum() - 2.0 * tr)


# Above this many image pairs (and N >= 2 D) the interval of a Fréchet distance is linearized: one pass of
# influence values instead of hundreds of covariance resamples (a resample costs ~10 s at N = 36,500, D = 2048).
LINEAR_MIN_N = 4096


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


class RealFactor:
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


def _sqrt_grad_large(rf: RealFactor, xf: np.ndarray) -> np.ndarray:
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
                 real_factor: RealFactor | None = None) -> np.ndarray:
    """Influence values phi [n] of the Fréchet distance between paired feature rows (row i = image i's ground
    truth and completion): FD(weights w) ~ FD + mean((w - 1) * phi) for multiplicity weights summing to n,
    centred (mean 0: the total weight is fixed). A bootstrap of mean(phi) is the bootstrap of FD's linear part.
    real_factor: RealFactor(centred real rows, c), shared when several models are compared with one real set.

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
        g = _sqrt_grad_large(real_factor or RealFactor(xr, c), xf)
    phi = phi - 2.0 * n * c * g
    return phi - phi.mean()



def linearized(real: np.ndarray, fake: np.ndarray) -> bool:
    """Whether the interval of this set's Fréchet distance is linearized (fd_influence) rather than resampled."""
    n, d = real.shape
    return n >= LINEAR_MIN_N and n >= 2 * d


def fd_interval(real: np.ndarray, fake: np.ndarray, convention: str, n_bootstrap: int, seed: int,
                device: str = "cpu") -> tuple[float, float | None, float | None, str]:
    """(value, ci_low, ci_high, method) of a Fréchet distance on paired features, for FID and every FD.

    Large sets (metrics.fd.linearized): the bootstrap of the mean of the pairs' influence values (one pass);
    otherwise resampled distances, bias-corrected: resamples repeat images, which inflates FD, so percentile
    intervals can miss the point estimate entirely and are shifted back by the bootstrap bias estimate."""
    n = real.shape[0]
    if linearized(real, fake):
        value = fd(real, fake, convention)
        psi = fd_influence(real, fake, convention)
        lo, hi = mean_interval(psi, n_bootstrap, seed)
        lo, hi = (None, None) if lo is None else (value + lo, value + hi)
        method = "linearized"
    else:
        stat = fd_statistic(real, fake, convention, device)
        value = fd_value(real, fake, convention, stat)
        lo, hi = bootstrap_interval(stat, n, n_bootstrap, seed, method="bias-corrected")
        method = "bias-corrected"
    lo = None if lo is None else max(lo, 0.0)  # FD cannot go below 0
    return value, lo, hi, method


def fd_to_reference_statistic(mu: np.ndarray, sigma: np.ndarray, fake: np.ndarray, convention: str
                              ) -> Callable[[np.ndarray], float]:
    """FD between resampled generated features and fixed reference statistics, sigma = L Lᵀ factored once:
    tr sqrt(S_ref S_f) = Σ sqrt(eig(Lᵀ S_f L)) = sqrt(c) ||B L||_* with B the centred resample (N < D)."""
    s = 0.5 * (sigma + sigma.T)
    try:
        low = np.linalg.cholesky(s)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(s)
        low = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    tr_ref = float(np.trace(s))
    d = mu.shape[0]

    def stat(idx: np.ndarray) -> float:
        f = fake[idx]
        m = f.shape[0]
        c = 1.0 / (m if convention == "mat" else m - 1)
        mf = f.mean(0)
        b = f - mf
        bl = b @ low
        if m < d:
            tr = np.sqrt(c) * float(np.linalg.svd(bl, compute_uv=False).sum())
        else:
            tr = float(np.sqrt(np.clip(np.linalg.eigvalsh(c * (bl.T @ bl)), 0.0, None)).sum())
        diff = mu - mf
        return float(diff @ diff + tr_ref + c * float((b * b).sum()) - 2.0 * tr)

    return stat
