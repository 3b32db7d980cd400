#!/usr/bin/env python
"""matbench benchmarks: `python bench.py [--quick] [--device DEV] [-o bench.json]`, or `python bench.py SUITE ...`.

`python bench.py SUITE [ARGS]` runs one named suite instead: `benchmarks/suite_<SUITE>.py`'s
`main(argv) -> int` (dashes in SUITE become underscores), e.g. `python bench.py pipeline --json`.

Runs each area's `benchmarks/<area>.py` `run(quick, device)` that is present (masks, metrics,
features, mat, lama, comodgan, migan; missing ones are noted and skipped), then its own end-to-end job
(load -> masks -> model -> features/metrics -> results, through matbench.runner) with images/s and
memory peaks, and torch-fidelity's `calculate_metrics` FID on the same images for comparison
(same Inception weights: the released file if cached, else the same smoke weights, saved to a
temporary file). Writes JSON and prints a short table. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

AREAS = ("masks", "metrics", "features", "mat", "lama", "comodgan", "migan")


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cuda_peak_mb(device: str) -> float | None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return None


def _reset_cuda_peak(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def run_areas(quick: bool, device: str, areas: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for area in areas:
        mod_name = f"benchmarks.{area}"
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                out[area] = {"skipped": f"{mod_name} is not present"}
                print(f"[bench] {area}: skipped ({mod_name} not present)", file=sys.stderr)
                continue
            raise
        print(f"[bench] {area} ...", file=sys.stderr, flush=True)
        _reset_cuda_peak(device)
        t0 = time.perf_counter()
        try:
            res = mod.run(quick, device)
            out[area] = {"result": res, "seconds": round(time.perf_counter() - t0, 3),
                         "rss_peak_mb_so_far": round(_rss_peak_mb(), 1), "cuda_peak_mb": _cuda_peak_mb(device)}
        except Exception as e:  # one area failing must not lose the others' numbers
            out[area] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5),
                         "seconds": round(time.perf_counter() - t0, 3)}
            print(f"[bench] {area}: FAILED {type(e).__name__}: {e}", file=sys.stderr)
    return out


def _make_images(d: Path, n: int, size: int) -> None:
    """Photo-like test images (smooth gradients, shapes, noise) so inpainting and features do real work."""
    import numpy as np
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        img = np.stack([np.sin(a * 6 * xx + i), np.cos(b * 6 * yy), np.sin(c * 6 * (xx + yy))], -1) * 100 + 128
        for _ in range(5):
            cx, cy, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.05, 0.2)]
            img[((xx - cx) ** 2 + (yy - cy) ** 2) < r * r] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 8, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"img{i:04d}.png")


def end_to_end(quick: bool, device: str, work: Path) -> dict[str, Any]:
    """One runner job (opencv-telea, mat-large) and torch-fidelity's FID on the same images."""
    from matbench.layout import RunLayout
    from matbench.runner import RunOptions, run
    from matbench.spec import parse_spec

    n = 16 if quick else 128
    res = 256 if quick else 512
    _make_images(work / "images", n, res)
    metrics = ["fid", "pids", "uids", "lpips"]
    data = {"name": "bench", "output": "run", "batch_size": 8 if quick else 16, "device": device,
            "resolutions": [res], "metrics": metrics, "smoke": "auto", "n_bootstrap": 0,
            "fid_convention": "torch-fidelity", "cache_dir": "cache",
            "datasets": [{"name": "synthetic", "path": "images"}], "masksets": [{"kind": "mat-large"}],
            "models": [{"name": "opencv-telea"}]}
    spec = parse_spec(data, base_dir=work)
    _reset_cuda_peak(device)
    t0 = time.perf_counter()
    info = run(spec, RunOptions(progress=False))
    wall = time.perf_counter() - t0
    jid = info["jobs"][0]["id"]
    lay = RunLayout(spec.output)
    rec = json.loads(lay.metrics_file(jid).read_text())
    out: dict[str, Any] = {
        "job": jid, "n_images": n, "resolution": res, "metrics": metrics, "metric_smoke": info["metric_smoke"],
        "wall_s": round(wall, 3), "images_per_s": round(n / wall, 3),
        "stage_s": rec["provenance"]["timings_s"], "fid": rec["metrics"]["fid"]["value"],
        "rss_peak_mb_so_far": round(_rss_peak_mb(), 1), "cuda_peak_mb": _cuda_peak_mb(device),
    }
    out["torch_fidelity"] = torch_fidelity_fid(lay.outputs_dir(jid), lay.inputs_dir("synthetic", res), device,
                                               bool(info["metric_smoke"]), work)
    return out


def torch_fidelity_fid(fake_dir: Path, real_dir: Path, device: str, smoke: bool, work: Path) -> dict[str, Any]:
    """torch_fidelity.calculate_metrics(fid=True) on the job's outputs vs its prepared ground truths."""
    import torch
    import torch_fidelity

    from matbench import weights as W
    from matbench.features.inception_tf import build_tf_inception

    if smoke:  # the very weights our smoke extractor uses, so the two FIDs are comparable
        path = work / "smoke-inception.pth"
        torch.save(build_tf_inception(None).state_dict(), path)
        weights_note = "smoke (random, same as matbench's)"
    else:
        path = W.find("inception-v3-compat")
        weights_note = "released"
    t0 = time.perf_counter()
    m = torch_fidelity.calculate_metrics(input1=str(fake_dir), input2=str(real_dir), fid=True,
                                         cuda=device.startswith("cuda"), verbose=False, cache=False,
                                         feature_extractor_weights_path=str(path) if path else None)
    wall = time.perf_counter() - t0
    n = len(list(fake_dir.glob("*.png")))
    return {"fid": float(m["frechet_inception_distance"]), "wall_s": round(wall, 3),
            "images_per_s": round(n / wall, 3), "weights": weights_note,
            "note": "torch-fidelity computes FID only, on images already generated; matbench's job time "
                    "includes generation, LPIPS and P/U-IDS"}


def table(result: dict[str, Any]) -> str:
    lines = [f"{'area':<12} {'status':<8} {'seconds':>9}  headline"]
    for area, r in result["areas"].items():
        if "skipped" in r:
            lines.append(f"{area:<12} {'skipped':<8} {'':>9}  {r['skipped']}")
        elif "error" in r:
            lines.append(f"{area:<12} {'ERROR':<8} {r['seconds']:>9.1f}  {r['error'][:80]}")
        else:
            res = r["result"]
            head = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in list(res.items())[:4]) if isinstance(res, dict) else str(res)[:80]
            lines.append(f"{area:<12} {'ok':<8} {r['seconds']:>9.1f}  {head[:100]}")
    e = result.get("end_to_end")
    if e and "error" not in e:
        tf = e["torch_fidelity"]
        lines.append(f"end-to-end   {e['n_images']} images at {e['resolution']}: {e['images_per_s']:.2f} img/s "
                     f"(wall {e['wall_s']:.1f} s, RSS peak {e['rss_peak_mb_so_far']:.0f} MB"
                     + (f", CUDA peak {e['cuda_peak_mb']:.0f} MB" if e.get("cuda_peak_mb") else "") + ")"
                     + (" [SMOKE metric networks]" if e["metric_smoke"] else ""))
        lines.append(f"torch-fidelity FID only: {tf['images_per_s']:.2f} img/s (wall {tf['wall_s']:.1f} s); "
                     f"FID matbench {e['fid']:.4f} vs torch-fidelity {tf['fid']:.4f}")
    elif e:
        lines.append(f"end-to-end   ERROR {e['error'][:100]}")
    return "\n".join(lines)


def suites() -> list[str]:
    """Named suites: one module `benchmarks/suite_<name>.py` each, with `main(argv) -> int`."""
    here = Path(__file__).resolve().parent / "benchmarks"
    return sorted(f.stem[len("suite_"):].replace("_", "-") for f in here.glob("suite_*.py"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-"):
        if argv[0] not in suites():
            print(f"bench.py: unknown suite {argv[0]!r}; known: {', '.join(suites()) or 'none'}", file=sys.stderr)
            return 2
        mod = importlib.import_module(f"benchmarks.suite_{argv[0].replace('-', '_')}")
        return int(mod.main(argv[1:]) or 0)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (CI-friendly)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("-o", "--output", default="bench.json", help="JSON output file (default bench.json)")
    p.add_argument("--areas", default=",".join(AREAS), help=f"comma list of areas (default {','.join(AREAS)})")
    p.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end job and torch-fidelity")
    args = p.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    areas = tuple(a for a in args.areas.split(",") if a)
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        p.error(f"unknown area(s) {', '.join(unknown)}; known: {', '.join(AREAS)}")
    from matbench.results import environment_versions, now_iso

    result: dict[str, Any] = {
        "schema": "matbench.bench/1", "created": now_iso(), "quick": args.quick, "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
        or platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "versions": environment_versions(),
    }
    result["areas"] = run_areas(args.quick, device, areas)
    if not args.no_end_to_end:
        print("[bench] end-to-end job + torch-fidelity ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="matbench-bench-") as tmp:
            try:
                result["end_to_end"] = end_to_end(args.quick, device, Path(tmp))
            except Exception as e:
                result["end_to_end"] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    result["rss_peak_mb"] = round(_rss_peak_mb(), 1)
    Path(args.output).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table(result))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
