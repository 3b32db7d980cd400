"""Mask generator throughput: MAT free-form masks per second at 512 (large and small), single process, CPU."""

from __future__ import annotations

import time

from matbench.data.masks import generate_mask


def run(quick: bool, device: str) -> dict:
    """Masks/s for mat-large and mat-small at 512 (`device` is ignored: the generator is numpy + Pillow on CPU)."""
    n = 100 if quick else 1000
    out: dict = {"resolution": 512, "n": n, "device": "cpu"}
    for kind in ("mat-large", "mat-small"):
        generate_mask(kind, 512, 10_000)  # warm-up (imports, allocator)
        t0 = time.perf_counter()
        for i in range(n):
            generate_mask(kind, 512, i)
        dt = time.perf_counter() - t0
        out[f"{kind}_masks_per_s"] = n / dt
    return out
