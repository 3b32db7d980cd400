"""Metric values of today's code, pinned: the Evaluator in smoke mode (random networks, no downloads) on 12
seeded synthetic pairs with holes, every default metric plus feature-space metrics, with bins and intervals.

pinned_values.json was recorded from the code before the metric registry refactor; regenerate it only for a
deliberate change of a number (MATBENCH_PIN_RECORD=1)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

PINNED = Path(__file__).with_name("pinned_values.json")
METRICS = ["fid", "pids", "uids", "lpips", "pr", "kid", "psnr", "ssim", "l1",
           "clip_fid", "dc_clipb32", "kid_clipb32", "pr_clipb32", "ids_clipb32", "cmmd_clipb32", "fd_clipb32"]
REL = 1e-12
# Two families are pinned looser, because their inputs are not bit-stable across CPU models: LPIPS (float32
# AlexNet convolutions, whose kernels oneDNN picks by instruction set: ~1e-8 apart between two machines of this
# workplace) to 1e-6, and the CLIP-space metrics (float32 ViT features of 12 images in 512 dimensions, so
# rank-deficient statistics; their values moved by ~2e-7 and a 25-resample CMMD interval end by 1.3e-5 between the
# machine that recorded the pins and another) to 1e-4. A change of formula moves them by far more.
# Every other number is float64 statistics of features that matched to 1e-12 across those machines.
LOOSE = {"lpips": 1e-6, "clip": 1e-4}


def _images(n: int = 12, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(1234)
    real = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    hole = np.zeros((n, 1, size, size), bool)
    for i in range(n):
        hole[i, :, : (i % 6 + 1) * size // 8] = True  # ratios 1/8 .. 6/8: several hole-ratio bins
    fake = real.copy()
    noise = rng.integers(0, 256, real.shape, dtype=np.uint8)
    fake = np.where(np.broadcast_to(hole, real.shape), noise, fake)
    return torch.from_numpy(real), torch.from_numpy(fake), torch.from_numpy(hole)


def _run() -> dict:
    from matbench.evaluate import Evaluator

    real, fake, hole = _images()
    ev = Evaluator(METRICS, smoke=True, cache_dir=False, n_bootstrap=25, seed=3, kid_subsets=7,
                   kid_subset_size=6, allow_download=False)
    ids = [f"im{i:02d}" for i in range(real.shape[0])]
    batches = [ev.process_batch(ids[a:b], real[a:b], fake[a:b], hole[a:b]) for a, b in ((0, 5), (5, 12))]
    rec, df = ev.finalize(batches, {"model": "pin"})
    j = rec.to_json()

    def strip(ms: dict) -> dict:
        return {k: {f: v.get(f) for f in ("value", "ci_low", "ci_high", "n")} for k, v in ms.items()}

    per_image = {c: df[c].tolist() for c in ("lpips", "psnr", "ssim", "l1")}
    return {"metrics": strip(j["metrics"]),
            "bins": [{"label": b["label"], "n": b["n"], "metrics": strip(b["metrics"])} for b in j["bins"]],
            "per_image": per_image}


def _close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        rel = next((r for k, r in LOOSE.items() if k in where), REL)
        assert math.isclose(a, b, rel_tol=rel, abs_tol=0.0) or a == b, f"{where}: {a!r} != pinned {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != pinned {b!r}"


def test_values_equal_the_pinned_ones():
    got = json.loads(json.dumps(_run()))  # same float round trip as the file
    if os.environ.get("MATBENCH_PIN_RECORD"):
        PINNED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    _close(got, json.loads(PINNED.read_text()), "record")
