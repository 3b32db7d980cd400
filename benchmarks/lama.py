"""Big LaMa inference throughput at 512 through the Inpainter adapter (pad, generator, composite, uint8).

Weights are smoke (deterministic random init, calibrated BN): timing does not depend on their values.
FLOPs per image are the golden README's count for the official generator at 512 (torch FlopCounterMode,
2 FLOPs per multiply-add, convolutions only): 439.8 GFLOP. The counter does not see the 72 FFT calls
(about 1.7 GFLOP more by a 2.5·N·log2 N estimate), nor BN/ReLU/padding.
"""

from __future__ import annotations

import torch

from benchmarks.common import main, time_model

GFLOP_PER_IMAGE_512 = 439.8  # ../shared/golden/lama/README.md, "Cost at 512×512"
FFT_GFLOP_ESTIMATE_512 = 1.7  # same README: FFTs, not seen by the counter


def count_flops(device: str = "cpu", size: int = 512) -> float:
    """GFLOP of one forward of our generator at size×size, counted as in the golden README."""
    from matbench.baselines.lama.inpainter import smoke_generator
    from torch.utils.flop_counter import FlopCounterMode

    gen = smoke_generator(0).to(device)
    x = torch.zeros(1, 4, size, size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        gen(x)
    return fc.get_total_flops() / 1e9


def run(quick: bool, device: str) -> dict:
    """Images/s and achieved GFLOP/s of Big LaMa at 512 (batch 1)."""
    from matbench.baselines.lama.inpainter import LamaInpainter, smoke_generator

    n = 1 if quick else 3
    model = LamaInpainter(smoke_generator(0), batch_size=1).to(device)
    out = {
        "model": "lama",
        "weights": "smoke (random; timing only)",
        **time_model(model, 512, device, n, GFLOP_PER_IMAGE_512),
        "gflop_source": "golden README (official generator, FlopCounterMode, convolutions only, B=1)",
        "fft_gflop_estimate": FFT_GFLOP_ESTIMATE_512,
    }
    if not quick:
        out["gflop_per_image_ours"] = count_flops(device)
    return out


if __name__ == "__main__":
    main(run)
