"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), k = 3, on VGG16 fc2 features.

The real manifold is the union of balls B(r, d_k(r)) around every real feature r, where d_k(r) is the
distance from r to its k-th nearest OTHER real feature; the fake manifold likewise.
  precision = fraction of fake features inside the real manifold  (fidelity)
  recall    = fraction of real features inside the fake manifold   (coverage)
"Inside" is dist <= radius. Roles matter: swapping real and fake swaps precision and recall.

Distances are computed in float64 in row blocks of `batch`, so memory is O(batch * N) and the N x N
matrix is never held.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from matbench.metrics.bootstrap import mean_interval
from matbench.metrics.registry import DatasetContext, register_group, register_metric
from matbench.results import MetricValue

log = logging.getLogger("matbench.evaluate")
K = 3  # nearest neighbours of the improved precision/recall (Kynkäänniemi et al.)


def _sq_dists(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    d = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def _knn_radii_sq(x: torch.Tensor, x_sq: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Squared distance from each row to its k-th nearest other row (self is the 0-th neighbour)."""
    out = []
    for i in range(0, x.shape[0], batch):
        d = _sq_dists(x[i:i + batch], x, x_sq[i:i + batch], x_sq)
        # The self-distance is the exact zero on the diagonal; set it so rounding cannot reorder it.
        idx = torch.arange(i, min(i + batch, x.shape[0]), device=x.device)
        d[idx - i, idx] = 0.0
        out.append(torch.kthvalue(d, k + 1, dim=1).values)
    return torch.cat(out)


def _inside(query: torch.Tensor, q_sq: torch.Tensor, ref: torch.Tensor, r_sq: torch.Tensor,
            radii_sq: torch.Tensor, batch: int) -> torch.Tensor:
    """For each query row: is it within radius of at least one reference row?"""
    out = []
    for i in range(0, query.shape[0], batch):
        d = _sq_dists(query[i:i + batch], ref, q_sq[i:i + batch], r_sq)
        out.append((d <= radii_sq[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3, batch: int = 1024,
                     device: str | torch.device = "cpu") -> dict[str, float]:
    """{"precision", "recall"} of fake features against real features (fractions)."""
    m = manifold_membership(real_feats, fake_feats, k=k, batch=batch, device=device)
    return {"precision": float(m["precision"].mean(dtype=np.float64)),
            "recall": float(m["recall"].mean(dtype=np.float64))}


def manifold_membership(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3, batch: int = 1024,
                        device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Per-sample indicators whose means are precision and recall: {"precision": bool [N_fake] (fake i inside the
    real manifold), "recall": bool [N_real] (real i inside the fake manifold)}. Resampling them gives a bootstrap
    interval with the manifolds held fixed."""
    real = np.asarray(real_feats)
    fake = np.asarray(fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D; got real {real.shape}, fake {fake.shape}")
    if k < 1 or real.shape[0] <= k or fake.shape[0] <= k:
        raise ValueError(f"k={k} nearest neighbours need more than k samples; got real {real.shape[0]}, "
                         f"fake {fake.shape[0]}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    with torch.no_grad():
        r = torch.as_tensor(real, dtype=torch.float64, device=device)
        f = torch.as_tensor(fake, dtype=torch.float64, device=device)
        r_sq = (r * r).sum(dim=1)
        f_sq = (f * f).sum(dim=1)
        real_radii = _knn_radii_sq(r, r_sq, k, batch)
        fake_radii = _knn_radii_sq(f, f_sq, k, batch)
        precision = _inside(f, f_sq, r, r_sq, real_radii, batch).cpu().numpy()
        recall = _inside(r, r_sq, f, f_sq, fake_radii, batch).cpu().numpy()
    return {"precision": precision, "recall": recall}


def _evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
    """Precision and recall on VGG16 fc2 features; bins recompute the manifolds from the bin's own images, like FID.

    Per-sample "inside the other manifold" indicators: their means are precision and recall, and resampling them
    gives the interval with the manifolds held fixed (one k-NN pass instead of two at N = 36,500)."""
    real, fake = ctx.features("vgg16")
    n = ctx.n
    if n <= K:
        if not ctx.in_bin:
            log.warning("precision/recall need more than %d images; skipped", K)
        return {}
    ind = manifold_membership(real, fake, k=K, device=ctx.ev.device)
    out = {}
    for name in ("precision", "recall"):
        v = ind[name].astype(np.float64)
        lo, hi = mean_interval(v, ctx.n_bootstrap, ctx.seed)
        out[name] = MetricValue(float(v.mean()), lo, hi, n, extra={"k": K, "features": "vgg16 fc2"})
    return out


register_group("pr", extractor="vgg16", dataset=_evaluate)
register_metric("precision", higher_is_better=True, label="Precision", extractor="vgg16", group="pr", request="pr",
                digits=4, interval="membership", default=5, order=60, doc="improved precision, k = 3")(None)
register_metric("recall", higher_is_better=True, label="Recall", extractor="vgg16", group="pr", request="pr",
                digits=4, interval="membership", default=5, order=70, doc="improved recall, k = 3")(None)
