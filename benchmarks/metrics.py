"""Metric math timings on synthetic features: seconds per metric at N = 2,000 and N = 36,500 (Places2 val size).

Features are synthetic, Inception-like (D = 2048, non-negative, correlated) and VGG-fc2-like (D = 4096); fakes are
paired noisy copies of the reals. Image metrics (PSNR/SSIM/L1, smoke LPIPS) are timed on random 512x512 images.
Quick mode: N = 2,000 only, fewer bootstrap resamples and KID subsets. No assertions; numbers are recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import torch

from matbench.metrics.bootstrap import bootstrap_ci, mean_ci
from matbench.metrics.fd import fd_influence
from matbench.metrics.fid import FIDResampler, feature_stats, fid, frechet_distance, trace_sqrt_product
from matbench.metrics.ids import pids_from_scores, pids_uids
from matbench.metrics.kid import kid
from matbench.metrics.pixel import pixel_metrics_batch
from matbench.metrics.prc import precision_recall


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def synthetic_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired (real, fake) float32 features: ReLU of correlated Gaussians. The fake's latent is 0.8 * the real's
    plus 0.6 * fresh noise (same marginal distribution, correlated with its pair) and a small shift, so the SVM
    and the manifolds see a partly discriminable, paired difference rather than perfectly separable sets."""
    rng = np.random.default_rng(seed)
    mix = (np.eye(d) + rng.standard_normal((d, d)) * (0.5 / np.sqrt(d))).astype(np.float32)
    z = rng.standard_normal((n, d), dtype=np.float32)
    z_fake = 0.8 * z + 0.6 * rng.standard_normal((n, d), dtype=np.float32) + 0.02
    return np.maximum(z @ mix, 0.0), np.maximum(z_fake @ mix, 0.0)


def _sqrtm_comparison(d: int = 2048) -> dict[str, float]:
    real, fake = synthetic_features(4096, d, 1)
    _, s1 = feature_stats(real)
    _, s2 = feature_stats(fake)
    t_ours, ours = _timed(lambda: trace_sqrt_product(s1, s2))
    t_chol, chol = _timed(lambda: trace_sqrt_product(s1, s2, method="cholesky"))
    t_scipy, ref = _timed(lambda: float(np.trace(scipy.linalg.sqrtm(s1 @ s2)).real))
    return {"D": d, "ours_eigh_s": t_ours, "ours_cholesky_s": t_chol, "scipy_sqrtm_s": t_scipy,
            "trace_rel_diff_eigh": abs(ours - ref) / abs(ref), "trace_rel_diff_cholesky": abs(chol - ref) / abs(ref)}


def _image_metrics(quick: bool, device: str) -> dict[str, float]:
    from matbench.metrics.lpips import LPIPS

    n = 8 if quick else 32
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (n, 3, 512, 512), generator=g, dtype=torch.uint8)
    b = (a.to(torch.int16) + torch.randint(-20, 21, a.shape, generator=g, dtype=torch.int16)).clamp(0, 255)
    b = b.to(torch.uint8)
    dev_a, dev_b = a.to(device), b.to(device)
    pixel_metrics_batch(dev_a[:1], dev_b[:1])  # warm-up
    t_pix, _ = _timed(lambda: pixel_metrics_batch(dev_a, dev_b))
    model = LPIPS("alex", device=device, smoke=True)
    model(a[:1], b[:1])
    t_lp, _ = _timed(lambda: model(a, b))
    return {"n_images": n, "resolution": 512, "psnr_ssim_l1_s_per_image": t_pix / n,
            "lpips_alex_s_per_image": t_lp / n}


def _dataset_metrics(n: int, quick: bool, device: str) -> dict[str, Any]:
    out: dict[str, Any] = {"N": n}
    t_gen, (real, fake) = _timed(lambda: synthetic_features(n, 2048, 0))
    out["synth_inception_s"] = t_gen
    out["fid_stats_s"], (mu1, s1) = _timed(lambda: feature_stats(real))
    _, (mu2, s2) = _timed(lambda: feature_stats(fake))
    out["frechet_s"], _ = _timed(lambda: frechet_distance(mu1, s1, mu2, s2))
    out["fid_s"], out["fid_value"] = _timed(lambda: fid(real, fake))
    out["pids_uids_s"], ids = _timed(lambda: pids_uids(real, fake))
    out["pids_value"], out["uids_value"] = ids["pids"], ids["uids"]
    out["svm_converged"], out["svm_n_iter"] = ids["converged"], ids["n_iter"]
    subsets = 10 if quick else 100
    out["kid_subsets"] = subsets
    out["kid_s"], _ = _timed(lambda: kid(real, fake, subsets=subsets, subset_size=1000))

    resamples = 100 if quick else 1000
    out["bootstrap_resamples"] = resamples
    per_image = np.abs(np.random.default_rng(0).normal(0.2, 0.1, n))
    out["mean_ci_s"], _ = _timed(lambda: mean_ci(per_image, resamples, 0))
    rs, fs = ids["real_scores"], ids["fake_scores"]
    out["pids_ci_s"], _ = _timed(lambda: bootstrap_ci(lambda i: pids_from_scores(rs[i], fs[i]), n, resamples, 0))
    # FID bootstrap is the expensive one: time a few resamples and report the per-resample cost.
    resampler = FIDResampler(real, fake, device=device)
    k = 2 if quick else 5
    idx = np.random.default_rng(1).integers(0, n, size=(k, n))
    t, _ = _timed(lambda: [resampler(i) for i in idx])
    out["fid_bootstrap_s_per_resample"] = t / k
    out["fid_bootstrap_s_projected"] = t / k * resamples
    # What finalize runs at this N instead (metrics.fd.linearized): influence values, then a bootstrap of their mean.
    t, psi = _timed(lambda: fd_influence(real, fake, "mat"))
    t2, _ = _timed(lambda: mean_ci(psi, 200, 0))
    out["fid_interval_linearized_s"] = t + t2
    out["fid_interval_speedup_vs_200_resamples"] = out["fid_bootstrap_s_per_resample"] * 200 / (t + t2)

    t_gen, (vreal, vfake) = _timed(lambda: synthetic_features(n, 4096, 2))
    out["prc_s"], prc = _timed(lambda: precision_recall(vreal, vfake, device=device))
    out["precision_value"], out["recall_value"] = prc["precision"], prc["recall"]
    return out


def run(quick: bool, device: str) -> dict:
    """Seconds per metric at N = 2,000 (and 36,500 unless quick) on `device` where the metric uses torch."""
    import os

    out: dict[str, Any] = {"device": device, "torch_threads": torch.get_num_threads(), "features": "synthetic",
                           "loadavg_start": os.getloadavg()[0]}
    out["sqrtm_2048"] = _sqrtm_comparison()
    out["images_512"] = _image_metrics(quick, device)
    for n in ([2000] if quick else [2000, 36500]):
        out[f"N{n}"] = _dataset_metrics(n, quick, device)
    out["loadavg_end"] = os.getloadavg()[0]
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv, device="cpu"), indent=1, default=float))
