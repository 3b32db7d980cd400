"""CMMD (Jayasumana et al., CVPR 2024, "Rethinking FID"): MMD² between CLIP embeddings with a Gaussian RBF
kernel k(x, y) = exp(-|x - y|² / (2 σ²)), σ = 10, on L2-normalised embeddings, reported ×1000.

estimator "unbiased" (the paper's formula, default): within-set kernel sums skip i = j,
    MMD² = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j) - 2/(mn) Σ_{i,j} k(x_i, y_j).
estimator "biased": whole-matrix means (diagonal included), as the published reference code and its ports
compute it; the two differ by (1 - mean off-diagonal k) × (1/m + 1/n) terms, visible at small N.

Kernel sums run in float64 blocks so the N x N matrices are never held.
"""

from __future__ import annotations

import numpy as np
import torch

SIGMA = 10.0
SCALE = 1000.0
ESTIMATORS = ("unbiased", "biased")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("CMMD: an embedding has zero norm and cannot be L2-normalised")
    return x / n


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, gamma: float, block: int) -> float:
    a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    total = 0.0
    for i in range(0, a.shape[0], block):
        d = a_sq[i:i + block, None] + b_sq[None, :] - 2.0 * (a[i:i + block] @ b.T)
        total += float(torch.exp(-gamma * d.clamp_min(0.0)).sum())
    return total


def cmmd(real_feats: np.ndarray, fake_feats: np.ndarray, sigma: float = SIGMA, scale: float = SCALE,
         estimator: str = "unbiased", normalise: bool = True, block: int = 2048) -> float:
    """CMMD between real and generated embeddings [N, D] (sizes may differ)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown CMMD estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    x, y = np.asarray(real_feats), np.asarray(fake_feats)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D; got real {x.shape}, fake {y.shape}")
    m, n = x.shape[0], y.shape[0]
    if min(m, n) < 2:
        raise ValueError("CMMD needs at least 2 embeddings on each side")
    if normalise:
        x, y = l2_normalise(x), l2_normalise(y)
    gamma = 1.0 / (2.0 * sigma * sigma)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    kxx = _kernel_sum(xt, xt, gamma, block)
    kyy = _kernel_sum(yt, yt, gamma, block)
    kxy = _kernel_sum(xt, yt, gamma, block)
    if estimator == "unbiased":
        # the diagonal holds k(x, x) = 1 exactly: remove it rather than recomputing it
        val = (kxx - m) / (m * (m - 1)) + (kyy - n) / (n * (n - 1)) - 2.0 * kxy / (m * n)
    else:
        val = kxx / (m * m) + kyy / (n * n) - 2.0 * kxy / (m * n)
    return float(scale * val)
