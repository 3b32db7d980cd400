"""CoModGAN inference throughput at 512 through the Inpainter adapter (seeded z/noise/dropout + quantisation).

Weights are random (smoke): timing does not depend on their values. FLOPs per image are the golden README's
count for the port (torch FlopCounterMode, 2 FLOPs per multiply-add, B = 1 at 512): 240.76 GFLOP.
"""

from __future__ import annotations

import time

import torch

GFLOP_PER_IMAGE_512 = 240.763596800  # ../shared/golden/comodgan/README.md, "Cost"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def count_flops(device: str = "cpu") -> float:
    """GFLOP of one 512 forward of our implementation, counted the same way as the golden README."""
    from torch.utils.flop_counter import FlopCounterMode

    from baselines.comodgan.inpainter import smoke_generator

    gen = smoke_generator(512).to(device)
    x = torch.zeros(1, 3, 512, 512, device=device)
    m = torch.ones(1, 1, 512, 512, device=device)
    z = torch.zeros(1, 512, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        gen(x, m, z)
    return fc.get_total_flops() / 1e9


def run(quick: bool, device: str) -> dict:
    """Images/s and achieved GFLOP/s of CoModGAN at 512 (batch 1, the adapter's per-image path)."""
    from baselines.comodgan.inpainter import CoModGANInpainter, smoke_generator

    n = 1 if quick else 4
    model = CoModGANInpainter(smoke_generator(512), dropout="official").to(device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 3, 512, 512), generator=g, dtype=torch.uint8)
    hole = torch.zeros(1, 1, 512, 512, dtype=torch.bool)
    hole[:, :, 128:384, 96:416] = True
    model(images, hole, ["warmup"])  # first call: allocator, oneDNN/cuDNN kernel selection
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        model(images, hole, [f"img{i}"])
    _sync(device)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    ips = n / dt
    out = {
        "model": "comodgan",
        "resolution": 512,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "weights": "smoke (random; timing only)",
        "n_images": n,
        "s_per_image": dt / n,
        # process CPU time (all threads): less sensitive than wall time to other jobs on a shared machine
        "cpu_s_per_image": cpu / n,
        "images_per_s": ips,
        "gflop_per_image": GFLOP_PER_IMAGE_512,
        "gflop_source": "golden README (port, FlopCounterMode, B=1)",
        "achieved_gflop_per_s": ips * GFLOP_PER_IMAGE_512,
    }
    if not quick:
        out["gflop_per_image_ours"] = count_flops(device)
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--full" not in sys.argv, sys.argv[1] if len(sys.argv) > 1 and
                         not sys.argv[1].startswith("-") else "cpu"), indent=2))
