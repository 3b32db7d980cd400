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


# Above this many image pairs (and N >= 2 D) the interval of a Fréchet distance is linearized: one pass of
# influence values instead of hundreds of covariance resamples (a resample costs ~10 s at N = 36,500, D = 2048).
LINEAR_MIN_N = 4096


def _sym_pow(s: np.ndarray, p: float) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (s + s.T))
    w = np.clip(w, 0.0, None)
    with np.errstate(divide="ignore"):
        wp = np.where(w > w.max() * 1e-12, w ** p, 0.0)  # pseudo-power: null directions contribute nothing
    return (v * wp) @ v.T


def fd_influence(real: np.ndarray, fake: np.ndarray, convention: str = "mat") -> tuple[float, np.ndarray]:
    """(FD, psi): the distance of paired features and each pair's influence value psi_i = d FD / d w_i * N at
    w = 1 (w: multiplicity weights of the pairs), so that FD(w) ~ FD + mean((w - 1) psi) to first order.

    With a_i, b_i the centred real / fake rows and T = tr sqrt(S_r S_f):
      psi_i = 2 (mu_r - mu_f).(a_i - b_i) + (|a_i|^2 - tr S_r) + (|b_i|^2 - tr S_f)
              - (a_i' P_r a_i - T) - (b_i' P_f b_i - T),
      P_f = S_r^1/2 (S_r^1/2 S_f S_r^1/2)^-1/2 S_r^1/2 and P_r the same with r and f swapped
    (d tr sqrt(B) = tr(B^-1/2 dB) / 2). A bootstrap of the mean of psi is then the bootstrap of FD's linear
    part; products in float32 where the features are float32, accumulated in float64 by the covariances.
    """
    if real.shape != fake.shape:
        raise ValueError(f"paired features needed; got real {real.shape}, fake {fake.shape}")
    n = real.shape[0]
    mu_r, s_r = feature_stats(real, convention)
    mu_f, s_f = feature_stats(fake, convention)
    root_r, root_f = _sym_pow(s_r, 0.5), _sym_pow(s_f, 0.5)
    b_f = root_r @ s_f @ root_r
    b_r = root_f @ s_r @ root_f
    tr = float(np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (b_f + b_f.T)), 0.0, None)).sum())
    p_f = root_r @ _sym_pow(b_f, -0.5) @ root_r
    p_r = root_f @ _sym_pow(b_r, -0.5) @ root_f
    diff = mu_r - mu_f
    value = float(diff @ diff + np.trace(s_r) + np.trace(s_f) - 2.0 * tr)
    # "torch-fidelity" (1/(N-1)): moving weight onto pair i (total kept at N) scales its outer product by N/(N-1)
    k = 1.0 if convention == "mat" else n / (n - 1.0)
    psi = np.empty(n, dtype=np.float64)
    for i in range(0, n, _CHUNK):
        a = real[i:i + _CHUNK].astype(np.float64) - mu_r
        b = fake[i:i + _CHUNK].astype(np.float64) - mu_f
        qa = np.einsum("ij,ij->i", a @ p_r, a)
        qb = np.einsum("ij,ij->i", b @ p_f, b)
        psi[i:i + _CHUNK] = (2.0 * (a - b) @ diff + (k * (a * a).sum(1) - np.trace(s_r))
                             + (k * (b * b).sum(1) - np.trace(s_f)) - (k * qa - tr) - (k * qb - tr))
    return value, psi


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
        value, psi = fd_influence(real, fake, convention)
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
