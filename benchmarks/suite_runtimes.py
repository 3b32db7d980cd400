"""`python bench.py runtimes [--n 8] [--size 512] [--rounds 3] [--networks a,b] [--json]`: where the feature
networks run fastest on this CPU, and whether the result is the same number.

For each network (smoke weights: the same architecture, so the same speed as the real ones), the same uint8 batch
is run by torch eager fp32 (the reference), torch eager with channels_last, and ONNX Runtime fp32
(matbench.features.runtime), interleaved round by round in one process so background load hits all alike. Reported:
images per CPU-second (process CPU time, so it is per core used), the ratio to torch eager, and the deviation of the
features from torch eager as max |Δ| / max |ref| (the equality policy allows 1e-5). The one-off export is timed
apart. `load` is the 1-minute load average before and after, to state what the machine was doing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from matbench import features as F
from matbench.features import runtime as RT

NETWORKS = ("inception-v3-compat", "pt-inception", "vgg16", "dinov2-vits14", "clip-vitb32")


def _channels_last(ex: F.FeatureExtractor) -> F.FeatureExtractor:
    for cell in getattr(ex._forward, "__closure__", None) or ():
        if isinstance(cell.cell_contents, torch.nn.Module):
            cell.cell_contents.to(memory_format=torch.channels_last)
    if isinstance(ex._forward, torch.nn.Module):
        ex._forward.to(memory_format=torch.channels_last)
    return ex


def _cpu_time(ex: F.FeatureExtractor, x: torch.Tensor) -> tuple[float, np.ndarray]:
    t0 = time.process_time()
    f = ex(x)
    return time.process_time() - t0, f


def measure(name: str, n: int, size: int, rounds: int) -> dict:
    x = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    try:
        variants = {"torch": F.get_extractor(name, smoke=True, batch_size=n),
                    "torch-channels-last": _channels_last(F.get_extractor(name, smoke=True, batch_size=n))}
    except Exception as e:  # an optional package (timm) missing: say so, keep going
        return {"skipped": f"{type(e).__name__}: {e}"}
    if RT.onnx_missing() is None:
        variants["onnx"] = F.get_extractor(name, smoke=True, batch_size=n, runtime="auto")
    out: dict = {}
    t0 = time.perf_counter()
    feats = {k: v(x[:2]) for k, v in variants.items()}  # warm-up; exports the ONNX graph
    out["onnx_export_s"] = round(time.perf_counter() - t0, 1) if "onnx" in variants else None
    if "onnx" in variants and variants["onnx"].runtime != "onnx":
        out["onnx"] = f"not used: {variants['onnx'].info.runtime.why}"
        del variants["onnx"]
    cpu = {k: 0.0 for k in variants}
    for _ in range(rounds):
        for k, v in variants.items():
            dt, feats[k] = _cpu_time(v, x)
            cpu[k] += dt
    ref = feats["torch"]
    for k in variants:
        out[k] = {"images_per_cpu_s": round(n * rounds / cpu[k], 2),
                  "vs_torch_eager": round(cpu["torch"] / cpu[k], 2),
                  "max_rel_dev": float(f"{np.abs(feats[k] - ref).max() / np.abs(ref).max():.2e}")}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py runtimes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8, help="images per timed batch (default 8)")
    ap.add_argument("--size", type=int, default=512, help="image side (default 512)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (default 3)")
    ap.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated extractor names")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MATBENCH_CACHE"] = cache  # a fresh graph cache: the export is measured, not found
        load0 = os.getloadavg()[0]
        res = {"threads": torch.get_num_threads(), "n": args.n, "size": args.size, "rounds": args.rounds,
               "networks": {name: measure(name, args.n, args.size, args.rounds)
                            for name in args.networks.split(",")}}
        res["load_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"threads {res['threads']}, {args.n} images of {args.size}², {args.rounds} rounds, "
          f"load {res['load_1min'][0]} -> {res['load_1min'][1]}")
    print(f"{'network':22} {'runtime':20} {'img/CPU-s':>10} {'vs eager':>9} {'max rel dev':>12}")
    for name, r in res["networks"].items():
        if "skipped" in r:
            print(f"{name:22} skipped: {r['skipped']}")
            continue
        for k, v in r.items():
            if isinstance(v, dict):
                print(f"{name:22} {k:20} {v['images_per_cpu_s']:>10} {v['vs_torch_eager']:>8}x {v['max_rel_dev']:>12}")
            elif isinstance(v, str):
                print(f"{name:22} onnx                 {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
