"""MAT inference throughput through the Inpainter adapter (pad, both stages, composite, uint8), batch 1.

Weights are smoke (deterministic random init): timing does not depend on their values. FLOPs per image are the
golden README's count for the official generator (torch FlopCounterMode, 2 FLOPs per multiply-add; convolutions,
mm and bmm; elementwise ops, softmax and interpolation not counted): 574.75 GFLOP at 512, 280.23 at 256.
On CUDA each precision (fp32, tf32, bf16 autocast) is timed, and with the golden fixtures present the full
run also records the output differences of tf32/bf16 against fp32 on the golden inputs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

GFLOP_PER_IMAGE = {512: 574.75, 256: 280.23}  # ../shared/golden/mat/README.md, "FLOPs and timings"

# Dense peak TFLOP/s from vendor spec sheets, by (device-name substring, precision). Only used to report a fraction.
PEAK_TFLOPS = {
    ("H100 SXM", "fp32"): 67.0, ("H100 SXM", "tf32"): 494.7, ("H100 SXM", "bf16"): 989.4,
    ("H100 PCIe", "fp32"): 51.2, ("H100 PCIe", "tf32"): 378.0, ("H100 PCIe", "bf16"): 756.0,
    ("H100 80GB HBM3", "fp32"): 67.0, ("H100 80GB HBM3", "tf32"): 494.7, ("H100 80GB HBM3", "bf16"): 989.4,
    ("H200", "fp32"): 67.0, ("H200", "tf32"): 494.7, ("H200", "bf16"): 989.4,
    ("A100", "fp32"): 19.5, ("A100", "tf32"): 156.0, ("A100", "bf16"): 312.0,
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gflops(device: str, precision: str) -> tuple[float | None, str]:
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


def count_flops(resolution: int = 512, device: str = "cpu") -> float:
    """GFLOP of one forward of our generator (batch 1), counted as the golden README does."""
    from torch.utils.flop_counter import FlopCounterMode

    from matbench.models.mat.inpainter import smoke_generator

    G = smoke_generator(resolution).to(device)
    x = torch.zeros(1, 3, resolution, resolution, device=device)
    m = torch.ones(1, 1, resolution, resolution, device=device)
    m[..., resolution // 4: 3 * resolution // 4, :] = 0
    z = torch.zeros(1, 512, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        G(x, m, z, noise_mode="const")
    return fc.get_total_flops() / 1e9


def time_inpainter(resolution: int, device: str, precision: str, n: int) -> dict[str, Any]:
    from matbench.models.mat.inpainter import MATInpainter, smoke_generator

    model = MATInpainter(smoke_generator(resolution), precision=precision, device=device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 3, resolution, resolution), generator=g, dtype=torch.uint8)
    hole = torch.zeros(1, 1, resolution, resolution, dtype=torch.bool)
    hole[:, :, resolution // 4: 3 * resolution // 4, resolution // 5: 4 * resolution // 5] = True
    model(images, hole, ["warmup"])  # allocator, oneDNN/cuDNN kernel selection
    _sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        model(images, hole, [f"img{i}"])
    _sync(device)
    dt = time.perf_counter() - t0
    ips = n / dt
    gflop = GFLOP_PER_IMAGE[resolution]
    peak, peak_src = peak_gflops(device, precision)
    achieved = ips * gflop
    return {"resolution": resolution, "precision": precision, "n_images": n, "s_per_image": dt / n,
            "images_per_s": ips, "gflop_per_image": gflop, "achieved_gflop_per_s": achieved,
            "peak_gflop_per_s": peak, "peak_source": peak_src,
            "fraction_of_peak": (achieved / peak) if peak else None}


def precision_differences(device: str, golden: Path | None = None) -> dict[str, Any] | None:
    """Max |out - out_fp32| / range of the fp32 output on the golden 512 inputs, for tf32 and bf16 (CUDA only)."""
    import importlib.util

    from matbench.models.mat.inpainter import precision_context
    from matbench.models.mat.network import build_generator

    golden = golden or Path(os.environ.get("MATBENCH_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    golden = golden / "golden" if (golden / "golden").is_dir() else golden
    if not (golden / "mat" / "io_512.npz").is_file():
        return None
    spec = importlib.util.spec_from_file_location("golden_fill", golden / "fill.py")
    fill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fill)
    G = build_generator(512)
    G.load_state_dict(fill.fill_state_dict(fill.load_manifest(golden / "mat" / "manifest_512.json")), strict=False)
    G.to(device)
    d = np.load(golden / "mat" / "io_512.npz")
    args = [torch.from_numpy(d[k]).to(device) for k in ("image", "mask", "z")]
    maps = (torch.from_numpy(d["dropout_stg1"]).float(), torch.from_numpy(d["dropout_stg2"]).float())
    outs = {}
    for prec in ("fp32", "tf32", "bf16"):
        with torch.no_grad(), precision_context(prec, torch.device(device)):
            outs[prec] = G(*args, noise_mode="const", dropout_maps=maps).float().cpu()
    ref = outs["fp32"]
    rng = float(ref.max() - ref.min())
    golden_ref = np.where(d["mask"] == 1, d["image"], d["out_a_holes"])
    return {"fp32_vs_golden_rel": float(np.abs(ref.numpy() - golden_ref).max() / rng),
            **{f"{p}_vs_fp32_rel": float((outs[p] - ref).abs().max() / rng) for p in ("tf32", "bf16")},
            "output_range": rng}


def run(quick: bool, device: str) -> dict:
    """Images/s and achieved GFLOP/s of MAT at 512 (and 256 unless quick), batch 1, per precision on CUDA."""
    n = 1 if quick else 3
    precisions = ["fp32", "tf32", "bf16"] if device.startswith("cuda") else ["fp32"]
    resolutions = [512] if quick else [512, 256]
    runs = [time_inpainter(r, device, p, n) for r in resolutions for p in precisions]
    out: dict[str, Any] = {
        "model": "mat",
        "device": device,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
        "torch_threads": torch.get_num_threads(),
        "weights": "smoke (random; timing only)",
        "gflop_source": "golden README (official generator, FlopCounterMode, conv+mm+bmm, B=1)",
        "runs": runs,
        "images_per_s_512": runs[0]["images_per_s"],
        "achieved_gflop_per_s_512": runs[0]["achieved_gflop_per_s"],
    }
    if not quick:
        out["gflop_per_image_ours_512"] = count_flops(512, device)
        if device.startswith("cuda"):
            out["precision_differences_512"] = precision_differences(device)
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--full" not in sys.argv, sys.argv[1] if len(sys.argv) > 1 and
                         not sys.argv[1].startswith("-") else "cpu"), indent=2))
