"""`python bench.py paired [--n 36500] [--d 2048] [--resamples 2000] [--json]`: paired-comparison speed.

- ΔFID: the paired 95 % interval of FID(B) - FID(A) by the linearisation (matbench.paired.paired_fd,
  method "linear": three covariances, one Cholesky, two eigendecompositions, four N x D x D projections, then a
  bootstrap of the mean influence) on synthetic Inception-like features (benchmarks.metrics.synthetic_features);
  the issue's target is <= 60 s at N = 36,500 x 2048 on a 2-core CPU
- per-image: paired intervals of four per-image metrics (PSNR, SSIM, L1, LPIPS-like columns) at the same N
- KID: linearised (U-statistic influence values on matbench.paired.KID_CAP images, scaled to N)
- P-IDS/U-IDS: the paired refit bootstrap as compare runs it (REFIT_RESAMPLES resamples of REFIT_CAP images, one
  SVM per model and resample; one resample serves both scores in compare too, so it is timed once here)
- all default metrics (FID, P-IDS, U-IDS, LPIPS, KID, PSNR, SSIM, L1): the sum; the issue's target is <= 3 min.
  `--skip-ids` leaves P-IDS/U-IDS out (they dominate).
The point values are passed in (as compare does with the recorded ones), so only the interval work is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.metrics import synthetic_features
from matbench.metrics.ids import pids_uids
from matbench.paired import (
    KID_CAP,
    REFIT_CAP,
    REFIT_RESAMPLES,
    Resampling,
    paired_fd,
    paired_kid,
    paired_mean,
    paired_refit,
)


def _say(key: str, value: object) -> None:
    print(f"[paired] {key} {value}", file=sys.stderr, flush=True)  # a long run shows its parts as they finish


def measure(n: int, d: int, resamples: int, ids: bool = True) -> dict[str, float | int | str]:
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
    out: dict[str, float | int | str] = {"n": n, "d": d, "resamples": resamples, "delta_fid_interval_s":
                                         round(t_fid, 2), "per_image_4_metrics_s": round(t_img, 2),
                                         "delta_fid_ci_width": r.ci[1] - r.ci[0]}
    _say("delta_fid_interval_s", out["delta_fid_interval_s"])
    t0 = time.perf_counter()
    k = paired_kid(real, fa, fb, values=(0.0, 0.0), rs=rs)
    out["delta_kid_interval_s"] = round(time.perf_counter() - t0, 2)
    out["kid_method"] = k.method
    _say("delta_kid_interval_s", out["delta_kid_interval_s"])
    total = t_fid + t_img + float(out["delta_kid_interval_s"])
    if ids:
        t0 = time.perf_counter()
        paired_refit(lambda x, y: float(pids_uids(x, y)["pids"]), real, fa, fb, True, values=(0.0, 0.0),
                     rs=Resampling(min(resamples, REFIT_RESAMPLES)), cap=REFIT_CAP)
        out["delta_ids_interval_s"] = round(time.perf_counter() - t0, 2)
        out["ids_method"] = f"refit, {min(resamples, REFIT_RESAMPLES)} resamples of {min(n, REFIT_CAP)} images"
        _say("delta_ids_interval_s", out["delta_ids_interval_s"])
        total += float(out["delta_ids_interval_s"])
    out["default_metrics_total_s"] = round(total, 2)
    out["kid_cap"] = KID_CAP
    out["load_avg_1min_at_end"] = round(os.getloadavg()[0], 1)
    out["cpu_count"] = os.cpu_count() or 0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py paired")
    ap.add_argument("--n", type=int, default=36500)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--skip-ids", action="store_true", help="leave the P-IDS/U-IDS refit bootstrap out")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = measure(args.n, args.d, args.resamples, ids=not args.skip_ids)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<24} {v}")
    return 0
