"""Shared pieces of the model benchmarks: one timing loop, device sync, and the peak-FLOP/s table."""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from matbench.models.base import Inpainter

# Dense peak TFLOP/s from vendor spec sheets, by (device-name substring, precision). Only used to report a fraction.
PEAK_TFLOPS = {
    ("H100 SXM", "fp32"): 67.0, ("H100 SXM", "tf32"): 494.7, ("H100 SXM", "bf16"): 989.4,
    ("H100 PCIe", "fp32"): 51.2, ("H100 PCIe", "tf32"): 378.0, ("H100 PCIe", "bf16"): 756.0,
    ("H100 80GB HBM3", "fp32"): 67.0, ("H100 80GB HBM3", "tf32"): 494.7, ("H100 80GB HBM3", "bf16"): 989.4,
    ("H200", "fp32"): 67.0, ("H200", "tf32"): 494.7, ("H200", "bf16"): 989.4,
    ("A100", "fp32"): 19.5, ("A100", "tf32"): 156.0, ("A100", "bf16"): 312.0,
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gflops(device: str, precision: str = "fp32") -> tuple[float | None, str]:
    """(peak GFLOP/s, source): $MATBENCH_PEAK_GFLOPS if set, else the spec-sheet table for known GPUs."""
    env = os.environ.get("MATBENCH_PEAK_GFLOPS")
    if env:
        return float(env), "MATBENCH_PEAK_GFLOPS"
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
        for (key, prec), tflops in PEAK_TFLOPS.items():
            if key in name and prec == precision:
                return tflops * 1000, f"vendor spec sheet, dense ({name})"
    return None, "unknown (set MATBENCH_PEAK_GFLOPS)"


def time_model(model: Inpainter, resolution: int, device: str, n: int, gflop_per_image: float,
               precision: str = "fp32") -> dict[str, Any]:
    """Batch-1 images/s of an Inpainter on a fixed image and rectangular hole, after one warm-up call."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 3, resolution, resolution), generator=g, dtype=torch.uint8)
    hole = torch.zeros(1, 1, resolution, resolution, dtype=torch.bool)
    hole[:, :, resolution // 4: 3 * resolution // 4, resolution // 5: 4 * resolution // 5] = True
    model(images, hole, ["warmup"])  # allocator, oneDNN/cuDNN kernel selection
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        model(images, hole, [f"img{i}"])
    sync(device)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    ips = n / dt
    achieved = ips * gflop_per_image
    peak, peak_src = peak_gflops(device, precision)
    return {"resolution": resolution, "precision": precision, "device": device,
            "torch_threads": torch.get_num_threads(), "n_images": n, "s_per_image": dt / n,
            # process CPU time (all threads): less sensitive than wall time to other jobs on a shared machine
            "cpu_s_per_image": cpu / n, "images_per_s": ips, "gflop_per_image": gflop_per_image,
            "achieved_gflop_per_s": achieved, "peak_gflop_per_s": peak, "peak_source": peak_src,
            "fraction_of_peak": (achieved / peak) if peak else None}


def main(run: Any) -> None:
    """`python -m benchmarks.<area> [DEVICE] [--full]`."""
    import json
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    print(json.dumps(run("--full" not in sys.argv, args[0] if args else "cpu"), indent=2))
