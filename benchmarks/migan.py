"""MI-GAN inference throughput at 512 and 256 through the Inpainter adapter (pad, generator, uint8, composite).

Weights are smoke (PyTorch default init, seeded noise maps): timing does not depend on their values.
FLOPs per image: torch FlopCounterMode on our generator (2 FLOPs per multiply-add, convolutions only),
30.15 GFLOP at 512 and 21.79 at 256 (docs/migan.md).
"""

from __future__ import annotations

import torch

from benchmarks.common import main, time_model

GFLOP_PER_IMAGE = {512: 30.15, 256: 21.79}


def count_flops(resolution: int) -> float:
    from matbench.baselines.migan.network import MIGANGenerator
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        gen = MIGANGenerator(resolution)
        x = torch.zeros(1, 4, resolution, resolution)
    with FlopCounterMode(display=False) as fc:
        gen(x)
    return fc.get_total_flops() / 1e9


def run(quick: bool, device: str) -> dict:
    """Images/s and achieved GFLOP/s of MI-GAN at 512 and 256 (batch 1)."""
    from matbench.baselines.migan.checkpoint import smoke_generator
    from matbench.baselines.migan.inpainter import MIGANInpainter

    n = 1 if quick else 3
    out: dict = {"model": "migan", "weights": "smoke (random; timing only)"}
    for res in (512, 256):
        model = MIGANInpainter(smoke_generator(res)).to(device)
        out[str(res)] = time_model(model, res, device, n, GFLOP_PER_IMAGE[res])
        if not quick:
            out[str(res)]["gflop_per_image_counted"] = count_flops(res)
    return out


if __name__ == "__main__":
    main(run)
