"""Benchmark: feature extraction throughput (Inception-v3 pool3, VGG16 fc2) at 512x512, and the cost of one
FID bootstrap resample. Smoke (random) weights: the same architecture, so the same speed as the real ones."""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.common import sync


def _throughput(name: str, device: str, n: int, batch: int, size: int) -> float:
    from matbench.features import get_extractor

    ext = get_extractor(name, device=device, smoke=True, batch_size=batch)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    ext(x[:batch])  # warm-up (cuDNN autotune, allocator)
    sync(device)
    t0 = time.perf_counter()
    ext(x)
    sync(device)
    return n / (time.perf_counter() - t0)


def _fid_resample_s(n: int, device: str, d: int = 2048, reps: int = 2) -> float:
    from matbench.metrics.fd import fd_statistic

    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, d)).astype(np.float32).astype(np.float64)
    fake = real + rng.normal(scale=0.5, size=(n, d))
    stat = fd_statistic(real, fake, "mat", device)
    stat(rng.integers(0, n, n))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        stat(rng.integers(0, n, n))
    sync(device)
    return (time.perf_counter() - t0) / reps


def run(quick: bool, device: str) -> dict:
    size = 512
    n = 8 if quick else (64 if device.startswith("cuda") else 32)
    batch = 8 if quick else (32 if device.startswith("cuda") else 8)
    out: dict = {"resolution": size, "n_images": n, "batch_size": batch, "device": device, "smoke": True,
                 "torch_threads": torch.get_num_threads()}
    out["inception_v3_compat_images_per_s"] = round(_throughput("inception-v3-compat", device, n, batch, size), 2)
    out["vgg16_images_per_s"] = round(_throughput("vgg16", device, n, batch, size), 2)
    for big in ([2000] if quick else [2000, 36500]):
        out[f"fid_bootstrap_resample_s_n{big}"] = round(_fid_resample_s(big, device, reps=1 if quick else 2), 3)
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--full" not in sys.argv, "cuda" if torch.cuda.is_available() else "cpu"), indent=2))
