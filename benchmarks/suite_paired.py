"""`python bench.py paired [--n 36500] [--d 2048] [--resamples 2000] [--json]`: paired-comparison speed.

- ΔFID: the paired 95 % interval of FID(B) - FID(A) by the linearisation (matbench.paired.paired_fd,
  method "linear": three covariances, one Cholesky, two eigendecompositions, four N x D x D projections, then a
  bootstrap of the mean influence) on synthetic Inception-like features (benchmarks.metrics.synthetic_features);
  the issue's target is <= 60 s at N = 36,500 x 2048 on a 2-core CPU
- per-image: paired intervals of four per-image metrics (PSNR, SSIM, L1, LPIPS-like columns) at the same N
The point values are passed in (as compare does with the recorded ones), so only the interval work is timed.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.metrics import synthetic_features
from matbench.paired import Resampling, paired_fd, paired_mean


def measure(n: int, d: int, resamples: int) -> dict[str, float | int]:
    real, fa = synthetic_features(n, d, 0)
    rng = np.random.default_rng(1)
    fb = fa + rng.standard_normal(fa.shape, dtype=np.float32) * 0.05  # model B: a slightly noisier A
    t0 = time.perf_counter()
    rs = Resampling(resamples)
    r = paired_fd(real, fa, fb, "mat", values=(0.0, 0.0), method="linear", rs=rs)
    t_fid = time.perf_counter() - t0
    cols = rng.standard_normal((n, 8))
    t0 = time.perf_counter()
    for j in range(4):
        paired_mean(cols[:, j], cols[:, 4 + j], True, rs)
    t_img = time.perf_counter() - t0
    return {"n": n, "d": d, "resamples": resamples, "delta_fid_interval_s": round(t_fid, 2),
            "per_image_4_metrics_s": round(t_img, 2), "delta_fid_ci_width": r.ci[1] - r.ci[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py paired")
    ap.add_argument("--n", type=int, default=36500)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = measure(args.n, args.d, args.resamples)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<24} {v}")
    return 0
