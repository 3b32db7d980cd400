"""Kernel Inception Distance through torch-fidelity's own implementation (torch_fidelity.metric_kid).

Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over `subsets` random
subsets of `subset_size` samples drawn without replacement (numpy RandomState(seed), as torch-fidelity).
torch-fidelity's convention is input 1 = generated, input 2 = real; we pass them that way.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from matbench.metrics.registry import DatasetContext, register_group, register_metric
from matbench.results import MetricValue


def kid(real_feats: np.ndarray, fake_feats: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict[str, float]:
    """{"kid_mean", "kid_std", "subset_size"}; subset_size is clipped to the smaller sample count."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    real = np.asarray(real_feats)
    fake = np.asarray(fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D; got real {real.shape}, fake {fake.shape}")
    if min(real.shape[0], fake.shape[0]) < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2; got {subsets}, {subset_size}")
    size = min(subset_size, real.shape[0], fake.shape[0])
    # float64 so the kernel sums do not lose digits (torch-fidelity computes in the input's dtype).
    out = kid_features_to_metric(
        torch.from_numpy(np.ascontiguousarray(fake, dtype=np.float64)),
        torch.from_numpy(np.ascontiguousarray(real, dtype=np.float64)),
        kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False,
    )
    return {"kid_mean": float(out[KEY_METRIC_KID_MEAN]), "kid_std": float(out[KEY_METRIC_KID_STD]),
            "subset_size": size}


def _evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
    """KID with a normal-approximation interval from the spread of its subset estimates."""
    ev = ctx.ev
    real, fake = ctx.features("inception")
    k = kid(real, fake, subsets=ev.kid_subsets, subset_size=ev.kid_subset_size, seed=ctx.seed)
    half = 1.96 * k["kid_std"] / math.sqrt(ev.kid_subsets)  # documented in docs/metrics.md
    return {"kid": MetricValue(k["kid_mean"], k["kid_mean"] - half, k["kid_mean"] + half, ctx.n,
                               extra={"kid_std": k["kid_std"], "subset_size": k.get("subset_size"),
                                      "subsets": ev.kid_subsets, "ci_method": "subset-normal"})}


register_group("kid", extractor="inception", dataset=_evaluate)
register_metric("kid", higher_is_better=False, label="KID (×10³)", extractor="inception", group="kid", scale=1e3,
                interval="subset-normal", default=6, order=20,
                doc="kernel inception distance (torch-fidelity), unbiased MMD², cubic kernel")(None)
