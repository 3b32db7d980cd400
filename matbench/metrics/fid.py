"""Fréchet Inception Distance on precomputed features.

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

Two covariance conventions, named in every result because they give different numbers at small N:
  "mat"             1/N      (MAT's evaluatoin/cal_fid_pids_uids.py, StyleGAN2-ADA's FeatureStats)
  "torch-fidelity"  1/(N-1)  (torch-fidelity's fid_features_to_statistics, numpy.cov)

The trace of the matrix square root is computed without a general (Schur) matrix square root:
S1 S2 is similar to the symmetric PSD matrix A = sqrt(S1) S2 sqrt(S1), so
tr(sqrt(S1 S2)) = sum_i sqrt(lambda_i(A)). Two symmetric eigendecompositions replace scipy.linalg.sqrtm,
which is an order of magnitude slower at D = 2048 and can return complex noise for singular inputs.
"""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("mat", "torch-fidelity")


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: features must be 2-D [N, D], got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 feature vectors, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: features contain NaN or inf")
    return x.astype(np.float64, copy=False)


def feature_stats(feats: np.ndarray, convention: str = "mat") -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64) of features [N, D] under the named convention."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FID convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    x = _as_features(feats, "feats")
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    # Centred product: same value as MAT's (sum x x^T)/N - mu mu^T, without the cancellation.
    denom = n if convention == "mat" else n - 1
    sigma = (xc.T @ xc) / denom
    return mu, sigma


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    w = np.sqrt(np.clip(w, 0.0, None))  # covariances are PSD; negatives are rounding noise
    return (v * w) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 @ sigma2)) for symmetric PSD sigma1, sigma2."""
    s1 = 0.5 * (sigma1 + sigma1.T)
    s2 = 0.5 * (sigma2 + sigma2.T)
    r = _sym_sqrt(s1)
    a = r @ s2 @ r
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


def fid(real_feats: np.ndarray, fake_feats: np.ndarray, convention: str = "mat") -> float:
    """FID between two feature sets [N, D] (sizes may differ)."""
    real = _as_features(real_feats, "real_feats")
    fake = _as_features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    mu1, s1 = feature_stats(real, convention)
    mu2, s2 = feature_stats(fake, convention)
    return frechet_distance(mu1, s1, mu2, s2)
