"""Density and coverage (Naeem et al., ICML 2020, "Reliable fidelity and diversity metrics").

With r_i the distance from real sample X_i to its k-th nearest other real sample (default k = 5):
  density  = 1/(k M) Σ_j Σ_i 1[ |Y_j - X_i| < r_i ]     (M fake samples Y_j; can exceed 1)
  coverage = 1/N Σ_i 1[ min_j |Y_j - X_i| < r_i ]       (N real samples)
Strict "<" as the authors' prdc package. Distances in float64 blocks (memory O(block * N)).
"""

from __future__ import annotations

import numpy as np
import torch

from matbench.metrics.prc import _knn_radii_sq, _sq_dists


def density_coverage(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 5, batch: int = 1024,
                     device: str | torch.device = "cpu") -> dict[str, float]:
    """{"density", "coverage"} of fake features against real features."""
    s = per_sample(real_feats, fake_feats, k=k, batch=batch, device=device)
    return {"density": float(s["density"].mean() / k), "coverage": float(s["coverage"].mean())}


def per_sample(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 5, batch: int = 1024,
               device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """{"density": count of real balls holding each fake sample [M] (mean / k = density),
    "coverage": bool, real ball i holds some fake sample [N]}: resampling them gives bootstrap intervals."""
    real, fake = np.asarray(real_feats), np.asarray(fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D; got real {real.shape}, fake {fake.shape}")
    if k < 1 or real.shape[0] <= k or fake.shape[0] < 1:
        raise ValueError(f"k={k} nearest neighbours need more than k real samples; got {real.shape[0]}")
    with torch.no_grad():
        r = torch.as_tensor(real, dtype=torch.float64, device=device)
        f = torch.as_tensor(fake, dtype=torch.float64, device=device)
        r_sq, f_sq = (r * r).sum(1), (f * f).sum(1)
        radii = _knn_radii_sq(r, r_sq, k, batch)
        counts = torch.zeros(f.shape[0], dtype=torch.float64, device=r.device)
        covered = torch.zeros(r.shape[0], dtype=torch.bool, device=r.device)
        for i in range(0, f.shape[0], batch):
            inside = _sq_dists(f[i:i + batch], r, f_sq[i:i + batch], r_sq) < radii[None, :]  # [b, N]
            counts[i:i + batch] = inside.sum(1).to(torch.float64)
            covered |= inside.any(0)
    return {"density": counts.cpu().numpy(), "coverage": covered.cpu().numpy()}
