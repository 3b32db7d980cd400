"""CoModGAN inference throughput at 512 through the Inpainter adapter (seeded z/noise/dropout + quantisation).

Weights are random (smoke): timing does not depend on their values. FLOPs per image are the golden README's
count for the port (torch FlopCounterMode, 2 FLOPs per multiply-add, B = 1 at 512): 240.76 GFLOP.
"""

from __future__ import annotations

import torch

from benchmarks.common import main, time_model

GFLOP_PER_IMAGE_512 = 240.763596800  # ../shared/golden/comodgan/README.md, "Cost"


def count_flops(device: str = "cpu") -> float:
    """GFLOP of one 512 forward of our implementation, counted the same way as the golden README."""
    from matbench.baselines.comodgan.inpainter import smoke_generator
    from torch.utils.flop_counter import FlopCounterMode

    gen = smoke_generator(512).to(device)
    x = torch.zeros(1, 3, 512, 512, device=device)
    m = torch.ones(1, 1, 512, 512, device=device)
    z = torch.zeros(1, 512, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        gen(x, m, z)
    return fc.get_total_flops() / 1e9


def run(quick: bool, device: str) -> dict:
    """Images/s and achieved GFLOP/s of CoModGAN at 512 (batch 1, the adapter's per-image path)."""
    from matbench.baselines.comodgan.inpainter import CoModGANInpainter, smoke_generator

    n = 1 if quick else 4
    model = CoModGANInpainter(smoke_generator(512), dropout="official").to(device)
    out = {
        "model": "comodgan",
        "weights": "smoke (random; timing only)",
        **time_model(model, 512, device, n, GFLOP_PER_IMAGE_512),
        "gflop_source": "golden README (port, FlopCounterMode, B=1)",
    }
    if not quick:
        out["gflop_per_image_ours"] = count_flops(device)
    return out


if __name__ == "__main__":
    main(run)
