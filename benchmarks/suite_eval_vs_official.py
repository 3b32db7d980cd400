"""`python bench.py eval-vs-official [--mat-repo PATH]`: `matbench eval` side by side with MAT's official scripts.

With --mat-repo (a checkout of fenglinglwb/MAT that you provide, outside this repository; nothing of it is
copied here) each round runs, interleaved: MAT's cal_fid_pids_uids.py, cal_lpips.py and cal_psnr_ssim_l1.py in
sequence (through benchmarks.mat_official, which only points the scripts at this machine), `matbench eval
--no-cache` (cold), and `matbench eval` with a primed ground-truth feature cache (warm), on the same folders,
the same detector file and the same LPIPS weights. Each side is a child process measured by wait4: wall,
user and system CPU, peak resident memory. Prints both sides' numbers, the ratios, and a per-pair timing of
PSNR/SSIM/L1 (the official functions vs matbench.metrics.pixel on the same decoded pairs). Without
--mat-repo it measures matbench alone.

Without --results/--gt it builds N pairs at --resolution (default 200 at 512) from scikit-image's bundled
photos (crops and flips), MAT large masks and OpenCV Telea results, kept under --data for reuse. Without
--detector it scripts a stand-in for NVIDIA's inception-2015-12-05.pt with the same call signature and the
real Inception-v3 architecture on seeded random weights: every FID/IDS figure is then SMOKE (so is LPIPS when
the ImageNet AlexNet trunk is not on this machine), but the work, and so the time, is the real one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METRICS = ("fid", "pids", "uids", "lpips", "psnr", "ssim", "l1")
REPO_ROOT = Path(__file__).resolve().parents[1]  # benchmarks/ is not installed: children find it from here


# --------------------------------------------------------------------------------------------- inputs

def make_pairs(data: Path, n: int, resolution: int) -> tuple[Path, Path]:
    """gt/ and results/ (Telea inpainting of MAT large masks) under data; reused when complete."""
    import cv2
    import numpy as np
    from PIL import Image

    from matbench.data.demo import demo_images
    from matbench.data.masks import generate_mask

    gt, res = data / "gt", data / "results"
    done = data / "pairs.json"
    if done.is_file() and json.loads(done.read_text()) == {"n": n, "resolution": resolution}:
        return gt, res
    gt.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in demo_images(data / "photos", 100).iterdir() if p.suffix.lower() in (".png", ".jpg"))
    rng = np.random.default_rng(0)
    srcs = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    for i in range(n):
        img = srcs[i % len(srcs)]
        h, w = img.shape[:2]
        s = int(min(h, w) * rng.uniform(0.6, 1.0))  # a different square crop of a photo for every pair
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = cv2.resize(np.ascontiguousarray(img[y:y + s, x:x + s]), (resolution, resolution),
                          interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        hole = generate_mask("mat-large", resolution, i).astype(np.uint8)
        out = cv2.inpaint(crop, hole, 3, cv2.INPAINT_TELEA)
        Image.fromarray(crop).save(gt / f"{i:05d}.png")
        Image.fromarray(out).save(res / f"{i:05d}.png")
    done.write_text(json.dumps({"n": n, "resolution": resolution}))
    return gt, res


def smoke_detector(path: Path) -> Path:
    """A TorchScript file with NVIDIA's call signature: matbench's smoke Inception-v3 (seeded), traced."""
    if path.is_file():
        return path
    import torch

    from matbench.features.inception_tf import build_tf_inception

    net = build_tf_inception(None).eval()

    class _Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)[0]

    class _Signature(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return self.inner(x)

    with torch.no_grad():
        traced = torch.jit.trace(_Features(), torch.zeros(1, 3, 64, 64, dtype=torch.uint8), check_trace=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(_Signature(traced)).save(str(path))
    return path


# --------------------------------------------------------------------------------------------- measuring

def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child process; wall, user/system CPU and peak RSS from wait4, stdout text."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{etext[-3000:]}")
    return {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "peak_mib": ru.ru_maxrss / 1024.0,
            "stdout": text}


def run_official(repo: Path, gt: Path, res: Path, detector: Path, lpips_smoke: bool) -> dict[str, Any]:
    total: dict[str, Any] = {"wall_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "peak_mib": 0.0, "numbers": {},
                             "scripts": {}}
    for script in ("fid_pids_uids", "lpips", "psnr_ssim_l1"):
        cmd = [sys.executable, "-m", "benchmarks.mat_official", "--mat-repo", str(repo), "--script", script,
               "--results", str(res), "--gt", str(gt), "--detector", str(detector)]
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        m = measure(cmd + (["--lpips-smoke"] if lpips_smoke else []), env=env)
        total["numbers"].update(json.loads(m.pop("stdout").strip().splitlines()[-1]))
        total["scripts"][script] = {k: round(v, 2) for k, v in m.items()}
        for k in ("wall_s", "user_s", "sys_s"):
            total[k] += m[k]
        total["peak_mib"] = max(total["peak_mib"], m["peak_mib"])
    return total


def run_matbench(gt: Path, res: Path, detector: Path, smoke: bool, cache: Path | None, out: Path,
                 extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "matbench", "eval", "--results", str(res), "--gt", str(gt),
           "--metrics", ",".join(METRICS), "--device", "cpu", "--inception", "inception-nvidia",
           "--inception-path", str(detector), "-o", str(out), "--no-progress", *extra]
    cmd += ["--no-cache"] if cache is None else ["--cache-dir", str(cache)]
    if smoke:
        cmd.append("--smoke")
    m = measure(cmd)
    m.pop("stdout")
    rec = json.loads((out / "metrics.json").read_text())
    m["numbers"] = {k: rec["metrics"][k]["value"] for k in METRICS if k in rec["metrics"]}
    m["stages_s"] = rec["provenance"].get("timings_s", {})
    m["threads"] = rec["provenance"].get("threads")
    return m


def pixel_per_pair(repo: Path | None, gt: Path, res: Path, k: int) -> dict[str, Any]:
    """ms per pair of PSNR+SSIM+L1 on decoded pairs: MAT's functions vs matbench's batch path (interleaved)."""
    import numpy as np
    import torch
    from PIL import Image

    from matbench.metrics.pixel import pixel_metrics_batch

    names = sorted(p.name for p in gt.iterdir() if p.suffix == ".png")[:k]
    a = np.stack([np.asarray(Image.open(gt / n).convert("RGB")) for n in names])
    b = np.stack([np.asarray(Image.open(res / n).convert("RGB")) for n in names])
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).contiguous()
    pixel_metrics_batch(ta[:2], tb[:2])  # compile / warm up
    official = None
    if repo is not None:
        from benchmarks.mat_official import _pyspng_stand_in, eval_dir

        sys.path.insert(0, str(eval_dir(repo)))
        _pyspng_stand_in()
        import cal_psnr_ssim_l1 as off  # the user's checkout

        official = off
    out: dict[str, Any] = {"pairs": len(names), "resolution": int(a.shape[1])}
    t_ours, t_off, worst = [], [], 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        got = pixel_metrics_batch(tb, ta)
        t_ours.append(time.perf_counter() - t0)
        if official is not None:
            t0 = time.perf_counter()
            ref = []
            for x, y in zip(b, a, strict=True):
                x64, y64 = x.astype(np.float64), y.astype(np.float64)
                ref.append((official.calculate_psnr(x64, y64), official.calculate_ssim(x64, y64),
                            official.calculate_l1(x64, y64)))
            t_off.append(time.perf_counter() - t0)
            for i, r in enumerate(ref):
                for key, v in zip(("psnr", "ssim", "l1"), r, strict=True):
                    if math.isfinite(v):
                        worst = max(worst, abs(got[key][i] - v) / max(abs(v), 1e-300))
    out["matbench_ms_per_pair"] = 1000 * min(t_ours) / len(names)
    if official is not None:
        out["official_ms_per_pair"] = 1000 * min(t_off) / len(names)
        out["speedup"] = out["official_ms_per_pair"] / out["matbench_ms_per_pair"]
        out["max_rel_diff"] = worst
    return out


# --------------------------------------------------------------------------------------------- report

def _row(name: str, m: dict[str, Any], ref: dict[str, Any] | None) -> str:
    cpu = m["user_s"] + m["sys_s"]
    ratio = f"{ref['wall_s'] / m['wall_s']:.2f}x" if ref else ""
    return (f"| {name} | {m['wall_s']:.1f} | {cpu:.1f} ({m['sys_s']:.1f} sys) | {m['peak_mib'] / 1024:.2f} | "
            f"{ratio} |")


def _numbers(sides: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| metric | " + " | ".join(sides) + " |", "|---" * (len(sides) + 1) + "|"]
    for k in METRICS:
        vals = [s["numbers"].get(k) for s in sides.values()]
        lines.append(f"| {k} | " + " | ".join("-" if v is None else f"{v:.6g}" for v in vals) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.py eval-vs-official", description=__doc__.splitlines()[0])
    p.add_argument("--mat-repo", type=Path, help="checkout of fenglinglwb/MAT (outside this repository)")
    p.add_argument("--results", type=Path, help="folder of results (default: generated pairs)")
    p.add_argument("--gt", type=Path, help="folder of ground truths (default: generated pairs)")
    p.add_argument("--n", type=int, default=200, help="generated pairs (default 200)")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--data", type=Path, default=None, help="where generated pairs and the stand-in detector "
                   "live (default ~/.cache/matbench/bench-eval-vs-official)")
    p.add_argument("--detector", type=Path, help="NVIDIA's inception-2015-12-05.pt (default: a smoke stand-in)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians are reported)")
    p.add_argument("--pixel-pairs", type=int, default=20, help="pairs for the per-pair PSNR/SSIM/L1 timing")
    p.add_argument("--matbench-args", default="", help="extra `matbench eval` arguments, e.g. '--workers 0'")
    p.add_argument("--json", type=Path, help="write all measurements here")
    a = p.parse_args(argv)

    data = a.data or Path(os.environ.get("MATBENCH_CACHE", Path.home() / ".cache" / "matbench")) / \
        "bench-eval-vs-official"
    if (a.results is None) != (a.gt is None):
        p.error("give both --results and --gt, or neither")
    if a.results is None:
        gt, res = make_pairs(data / f"{a.n}x{a.resolution}", a.n, a.resolution)
    else:
        gt, res = a.gt, a.results
    smoke_det = a.detector is None
    detector = smoke_detector(data / "inception-standin-smoke.pt") if smoke_det else a.detector
    from matbench import weights as W
    from matbench.metrics import lpips as _lpips  # noqa: F401  (registers the LPIPS trunk weights)

    lpips_smoke = W.find("torchvision-alexnet") is None
    # matbench's --smoke covers Inception and LPIPS together; its smoke Inception is the stand-in's network
    mb_smoke = lpips_smoke
    extra = a.matbench_args.split()
    work = Path(tempfile.mkdtemp(prefix="matbench-evo-"))
    cache = work / "cache"
    print(f"pairs: {gt} / {res}; detector: {detector}{' (SMOKE stand-in)' if smoke_det else ''}; "
          f"LPIPS trunk: {'SMOKE' if lpips_smoke else 'ImageNet AlexNet'}", file=sys.stderr)
    run_matbench(gt, res, detector, mb_smoke, cache, work / "prime", extra)  # primes the ground-truth cache
    rounds: list[dict[str, Any]] = []
    for r in range(a.rounds):
        one: dict[str, Any] = {}
        order = ["official", "cold", "warm"] if r % 2 == 0 else ["warm", "cold", "official"]
        for side in order:
            if side == "official" and a.mat_repo is None:
                continue
            print(f"round {r + 1}: {side}", file=sys.stderr)
            if side == "official":
                one[side] = run_official(a.mat_repo, gt, res, detector, lpips_smoke)
            else:
                one[side] = run_matbench(gt, res, detector, mb_smoke, None if side == "cold" else cache,
                                         work / side, extra)
        rounds.append(one)
    med = {}
    for side in rounds[0]:
        ms = sorted((x[side] for x in rounds), key=lambda m: m["wall_s"])
        med[side] = ms[len(ms) // 2]
    pix = pixel_per_pair(a.mat_repo, gt, res, a.pixel_pairs)
    label = " (SMOKE detector/weights: timings real, FID/IDS/LPIPS values not comparable with papers)" \
        if smoke_det or lpips_smoke else ""
    n = len([f for f in gt.iterdir() if f.suffix in (".png", ".jpg")])
    lines = [f"{n} pairs, {a.rounds} interleaved round(s), median wall{label}", "",
             "| side | wall s | CPU s | peak GiB | official / this |", "|---|---|---|---|---|"]
    ref = med.get("official")
    if ref:
        lines.append(_row("official MAT scripts (3, in sequence)", ref, None))
    lines.append(_row("matbench eval --no-cache", med["cold"], ref))
    lines.append(_row("matbench eval, warm ground-truth cache", med["warm"], ref))
    lines += ["", *_numbers(med), ""]
    lines.append("matbench stages (cold, s): " + ", ".join(f"{k} {v:.1f}" for k, v in med["cold"]["stages_s"].items()))
    lines.append(f"threads: {med['cold'].get('threads')}")
    px = f"PSNR+SSIM+L1 per pair at {pix['resolution']}: matbench {pix['matbench_ms_per_pair']:.1f} ms"
    if "official_ms_per_pair" in pix:
        px += (f", official {pix['official_ms_per_pair']:.1f} ms ({pix['speedup']:.1f}x), "
               f"max relative difference {pix['max_rel_diff']:.1e}")
    lines.append(px)
    print("\n".join(lines))
    if a.json:
        a.json.write_text(json.dumps({"rounds": rounds, "median": med, "pixel": pix, "smoke": bool(label),
                                      "pairs": n}, indent=1))
    return 0
