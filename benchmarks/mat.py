"""MAT inference throughput through the Inpainter adapter (pad, both stages, composite, uint8), batch 1.

Weights are smoke (deterministic random init): timing does not depend on their values. FLOPs per image are the
golden README's count for the official generator (torch FlopCounterMode, 2 FLOPs per multiply-add; convolutions,
mm and bmm; elementwise ops, softmax and interpolation not counted): 574.75 GFLOP at 512, 280.23 at 256.
On CUDA each precision (fp32, tf32, bf16 autocast) is timed, and with the golden fixtures present the full
run also records the output differences of tf32/bf16 against fp32 on the golden inputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import main, time_model

GFLOP_PER_IMAGE = {512: 574.75, 256: 280.23}  # ../shared/golden/mat/README.md, "FLOPs and timings"


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
        G(x, m, z)  # const noise, dropout maps from a fixed seed
    return fc.get_total_flops() / 1e9


def time_inpainter(resolution: int, device: str, precision: str, n: int) -> dict[str, Any]:
    from matbench.models.mat.inpainter import MATInpainter, smoke_generator

    model = MATInpainter(smoke_generator(resolution), precision=precision, device=device)
    return time_model(model, resolution, device, n, GFLOP_PER_IMAGE[resolution], precision)


def precision_differences(device: str, golden: Path | None = None) -> dict[str, Any] | None:
    """Max |out - out_fp32| / range of the fp32 output on the golden 512 inputs, for tf32 and bf16 (CUDA only)."""
    import importlib.util

    from matbench.models.mat.inpainter import precision_context
    from matbench.models.mat.network import Noise, build_generator

    golden = golden or Path(os.environ.get("MATBENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
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
            outs[prec] = G(*args, noise=Noise(dropout_maps=maps)).float().cpu()
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
    main(run)
