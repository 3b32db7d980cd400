"""`python bench.py gpu [--device cuda] [--quick] [--out DIR] [--images N]`: the GPU check (scripts/gpu-check.sh).

Writes DIR/gpu-check.json and DIR/gpu-check.md:
1. golden equivalence on the device: MAT, LaMa and CoModGAN ports with the golden fill weights on the golden
   inputs (../shared/golden), fp32 against the official outputs with the CPU tests' limits (MAT: max error /
   output range <= 1e-5; LaMa, CoModGAN: max abs error <= 1e-4), and the max differences of tf32 and bf16 from fp32;
2. throughput: each model's images/s at 512 for batch 1, 8 and 32 in fp32, tf32 and bf16 (smoke weights: the
   values do not change the cost), GFLOP/image (the golden READMEs' counts) and the fraction of the device's peak;
3. end to end: `matbench run` of MAT (smoke weights) on N generated 512 JPEGs (2,000) with mat-large masks and the
   paper's metrics (FID, P-IDS, U-IDS, LPIPS), save_outputs = "sample:64": images/s, the device busy fraction
   (seconds in the device stage / wall) and the projected time for Places365-val's 36,500 images.
--quick (for CPU, in the test suite): 256 px, batch 1, fp32, no warm-up, 4 images end to end; the golden part at
256 (MAT, LaMa) only.
Every figure here comes from random (smoke) weights or golden fill weights: none is a paper number.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import peak_gflops, sync
from matbench.runner.models import precision_context

PLACES_VAL = 36_500
GFLOP_512 = {"mat": 574.75, "lama": 439.8, "comodgan": 240.7636}  # golden READMEs (see benchmarks/<model>.py)
GFLOP_256 = {"mat": 280.23}


def _golden_dir() -> Path:
    root = Path(os.environ.get("MATBENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    return root / "golden" if (root / "golden").is_dir() else root


def _fill(golden: Path) -> Any:
    spec = importlib.util.spec_from_file_location("golden_fill", golden / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mat_context(prec: str, device: str) -> Any:
    from matbench.models.mat.inpainter import precision_context as mat_precision

    return mat_precision(prec, torch.device(device))


# --------------------------------------------------------------------------- 1. golden equivalence


def golden_mat(golden: Path, device: str, res: int, precisions: list[str]) -> dict[str, Any]:
    from matbench.models.mat.network import Noise, build_generator

    fill = _fill(golden)
    G = build_generator(res)
    G.load_state_dict(fill.fill_state_dict(fill.load_manifest(golden / "mat" / f"manifest_{res}.json")), strict=False)
    G.to(device)
    d = dict(np.load(golden / "mat" / f"io_{res}.npz"))
    image, mask, z = (torch.from_numpy(d[k]).to(device) for k in ("image", "mask", "z"))
    maps = tuple(torch.from_numpy(d[k]).float().to(device) for k in ("dropout_stg1", "dropout_stg2"))
    outs = {}
    for p in precisions:
        with torch.no_grad(), _mat_context(p, device):
            out = G(image, mask, z, None, truncation_psi=1.0, noise=Noise(dropout_maps=maps))
        outs[p] = np.where(d["mask"] == 1, 0.0, out.float().cpu().numpy())  # *_holes: 0 at known pixels
    ref = d["out_a_holes"]
    rng = float(ref.max() - ref.min())
    err = float(np.abs(outs["fp32"] - ref).max() / rng)
    return {"resolution": res, "measure": "max |ours - official| / output range", "limit": 1e-5,
            "fp32_error": err, "pass": err <= 1e-5,
            **{f"{p}_vs_fp32": float(np.abs(outs[p] - outs["fp32"]).max() / rng) for p in precisions if p != "fp32"}}


def golden_lama(golden: Path, device: str, res: int, precisions: list[str]) -> dict[str, Any]:
    from matbench.baselines.lama.checkpoint import LamaCheckpoint, build_generator
    from matbench.baselines.lama.inpainter import lama_forward
    from matbench.baselines.lama.network import BIG_LAMA

    manifest = json.loads((golden / "lama" / "manifest.json").read_text())
    state = _fill(golden).fill_state_dict(manifest["tensors"])
    for t in manifest["tensors"]:
        if not t["fill"]:
            state[t["name"]] = torch.zeros(t["shape"], dtype=torch.int64)
    gen = build_generator(LamaCheckpoint(config=BIG_LAMA, generator_state=state)).to(device).eval()
    name = f"places_{res}"
    with np.load(golden / "lama" / "io.npz") as z:
        img, mask, ref = (z[f"{name}/{k}"] for k in ("image", "mask", "predicted"))
    outs = {}
    for p in precisions:
        with torch.no_grad(), precision_context(p, device):
            outs[p] = lama_forward(gen, torch.from_numpy(img).to(device),
                                   torch.from_numpy(mask).to(device))["predicted"].float().cpu().numpy()
    err = float(np.abs(outs["fp32"] - ref).max())
    return {"resolution": res, "measure": "max |ours - official| (predicted, [0,1] scale)", "limit": 1e-4,
            "fp32_error": err, "pass": err <= 1e-4,
            **{f"{p}_vs_fp32": float(np.abs(outs[p] - outs["fp32"]).max()) for p in precisions if p != "fp32"}}


def golden_comodgan(golden: Path, device: str, precisions: list[str]) -> dict[str, Any]:
    from matbench.baselines.comodgan.inpainter import load_into
    from matbench.baselines.comodgan.network import CoModGenerator

    manifest = json.loads((golden / "comodgan" / "manifest.json").read_text())
    net = CoModGenerator(resolution=512)
    load_into(net, {**net.state_dict(), **_fill(golden).fill_state_dict(manifest["tensors"])}, "golden fill")
    net = net.eval().to(device)
    with np.load(golden / "comodgan" / "io.npz") as z:
        io = {k: z[k] for k in z.files}
    noise = [torch.from_numpy(io[f"noise{i:02d}"]).to(device) for i in range(len(net.noise_shapes))]
    outs = {}
    for p in precisions:
        with torch.no_grad(), precision_context(p, device):
            o = net(*(torch.from_numpy(io[k]).to(device) for k in ("images", "masks", "latents")), noise=noise)
        outs[p] = o.raw.float().cpu().numpy()
    err = float(np.abs(outs["fp32"] - io["output_raw"]).max())
    return {"resolution": 512, "measure": "max |ours - port| (raw output)", "limit": 1e-4, "fp32_error": err,
            "pass": err <= 1e-4,
            **{f"{p}_vs_fp32": float(np.abs(outs[p] - outs["fp32"]).max()) for p in precisions if p != "fp32"}}


def golden_part(device: str, quick: bool, precisions: list[str]) -> dict[str, Any]:
    golden = _golden_dir()
    if not (golden / "fill.py").is_file():
        return {"skipped": f"golden fixtures not found at {golden} (set MATBENCH_SHARED)"}
    res = 256 if quick else 512
    jobs = {"mat": lambda: golden_mat(golden, device, res, precisions),
            "lama": lambda: golden_lama(golden, device, res, precisions)}
    if not quick:
        jobs["comodgan"] = lambda: golden_comodgan(golden, device, precisions)
    return {name: _guard(fn) for name, fn in jobs.items()}


# --------------------------------------------------------------------------- 2. throughput


def _inpainter(name: str, res: int, precision: str, batch: int, device: str) -> tuple[Any, str]:
    """(smoke model on the device, the precision the caller must wrap it in)."""
    if name == "mat":
        from matbench.models.mat.inpainter import MATInpainter, smoke_generator

        return MATInpainter(smoke_generator(res), precision=precision, device=device, batch_forward=True), "fp32"
    if name == "lama":
        from matbench.baselines.lama.inpainter import LamaInpainter, smoke_generator

        return LamaInpainter(smoke_generator(0), batch_size=batch).to(device), precision
    from matbench.baselines.comodgan.inpainter import CoModGANInpainter, smoke_generator

    return CoModGANInpainter(smoke_generator(res), dropout="official").to(device), precision


def time_batch(name: str, res: int, precision: str, batch: int, device: str, reps: int,
               warmup: bool = True) -> dict[str, Any]:
    model, wrap = _inpainter(name, res, precision, batch, device)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, res, res), generator=g, dtype=torch.uint8).to(device)
    hole = torch.zeros(batch, 1, res, res, dtype=torch.bool)
    hole[:, :, res // 4: 3 * res // 4, res // 5: 4 * res // 5] = True
    hole = hole.to(device)
    ids = [f"i{i}" for i in range(batch)]
    with torch.no_grad(), precision_context(wrap, device):
        if warmup:
            model(x, hole, ids)  # kernel selection, allocator
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x, hole, ids)
        sync(device)
    dt = (time.perf_counter() - t0) / (reps * batch)
    gflop = (GFLOP_512 if res == 512 else GFLOP_256).get(name)
    peak, src = peak_gflops(device, precision)
    achieved = gflop / dt if gflop else None
    return {"model": name, "resolution": res, "batch": batch, "precision": precision, "images_per_s": 1 / dt,
            "gflop_per_image": gflop, "achieved_gflop_per_s": achieved, "peak_gflop_per_s": peak,
            "peak_source": src, "fraction_of_peak": achieved / peak if (achieved and peak) else None}


def throughput_part(device: str, quick: bool, precisions: list[str]) -> list[dict[str, Any]]:
    res = 256 if quick else 512
    batches = [1] if quick else [1, 8, 32]
    out = []
    for name in ("mat", "lama", "comodgan"):
        for p in precisions:
            for b in batches:
                r = _guard(lambda: time_batch(name, res, p, b, device, 1 if quick else 3, not quick))  # noqa: B023
                out.append({"model": name, "resolution": res, "batch": b, "precision": p, **r})
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    return out


# --------------------------------------------------------------------------- 3. end to end


def _jpegs(d: Path, n: int, size: int) -> None:
    """Photo-like JPEGs (gradients, discs, noise), deterministic."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size

    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        a, b, c = rng.uniform(0.5, 3.0, 3)
        img = np.stack([np.sin(a * 6 * xx + i), np.cos(b * 6 * yy), np.sin(c * 6 * (xx + yy))], -1) * 100 + 128
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
            img[((xx - cx) ** 2 + (yy - cy) ** 2) < r * r] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 6, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"img{i:05d}.jpg", quality=90)

    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as ex:
        list(ex.map(one, range(n)))


def end_to_end_part(device: str, quick: bool, n: int, work: Path) -> dict[str, Any]:
    from matbench.layout import RunLayout
    from matbench.runner import RunOptions, run
    from matbench.spec import parse_spec

    res = 256 if quick else 512
    t0 = time.perf_counter()
    _jpegs(work / "jpegs", n, res)
    t_gen = time.perf_counter() - t0
    mat_options = {"resolution": 256} if quick else {"batch_forward": True}  # one forward per batch on the GPU
    data = {"name": "gpu-check", "output": "run", "device": device, "batch_size": 2 if quick else 16,
            "resolutions": [res], "metrics": ["fid", "pids", "uids", "lpips"], "smoke": "auto", "n_bootstrap": 0,
            "save_outputs": "sample:64", "cache_dir": "cache",
            "datasets": [{"name": "synthetic", "path": "jpegs", "policy": "resize-crop"}],
            "masksets": [{"kind": "mat-large"}],
            "models": [{"name": "mat", "smoke": True, "options": mat_options}]}
    spec = parse_spec(data, base_dir=work)
    t0 = time.perf_counter()
    info = run(spec, RunOptions(progress=False))
    wall = time.perf_counter() - t0
    rec = json.loads(RunLayout(spec.output).metrics_file(info["jobs"][0]["id"]).read_text())
    t = rec["provenance"]["timings_s"]
    job_wall = t["job_wall"]
    device_s = t.get("inpaint", 0.0) + t.get("evaluate", 0.0) + t.get("diversity", 0.0)
    return {"images": n, "resolution": res, "generate_jpegs_s": round(t_gen, 2), "run_wall_s": round(wall, 2),
            "prepare_s": info.get("timings_s", {}).get("prepare"), "job_wall_s": job_wall,
            "images_per_s": n / job_wall, "device_busy_fraction": device_s / job_wall, "stage_s": t,
            "pipeline": rec["provenance"].get("pipeline"), "metric_smoke": info["metric_smoke"],
            "metrics": {k: v["value"] for k, v in rec["metrics"].items()},
            "projected_places_val_s": PLACES_VAL * job_wall / n}


# --------------------------------------------------------------------------- report


def _guard(fn: Any) -> dict[str, Any]:
    try:
        return fn()
    except Exception as e:  # one failing part must not lose the others' numbers
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                "traceback": traceback.format_exc(limit=4)}


def markdown(r: dict[str, Any]) -> str:
    L = [f"# GPU check ({r['device_name']})", "",
         f"{r['created']} · torch {r['torch']} · {r['mode']} · {r['wall_s']:.0f} s. Smoke / golden-fill weights "
         "only: no number here is a paper result.", "", "## Golden equivalence (on the device)", "",
         "| model | res | fp32 error | limit | pass | tf32 vs fp32 | bf16 vs fp32 |", "|---|---|---|---|---|---|---|"]
    g = r["golden"]
    for name, v in (g.items() if "skipped" not in g else []):
        if "error" in v:
            L.append(f"| {name} | | ERROR: {v['error']} | | | | |")
            continue
        L.append(f"| {name} | {v['resolution']} | {v['fp32_error']:.3g} | {v['limit']:g} | {v['pass']} | "
                 f"{v.get('tf32_vs_fp32', float('nan')):.3g} | {v.get('bf16_vs_fp32', float('nan')):.3g} |")
    if "skipped" in g:
        L.append(f"skipped: {g['skipped']}")
    L += ["", "## Throughput (smoke weights)", "",
          "| model | res | batch | precision | images/s | GFLOP/image | fraction of peak |",
          "|---|---|---|---|---|---|---|"]
    for t in r["throughput"]:
        if "error" in t:
            L.append(f"| {t['model']} | {t['resolution']} | {t['batch']} | {t['precision']} | "
                     f"ERROR: {t['error']} | | |")
            continue
        frac = f"{t['fraction_of_peak']:.3f}" if t.get("fraction_of_peak") else "—"
        L.append(f"| {t['model']} | {t['resolution']} | {t['batch']} | {t['precision']} | {t['images_per_s']:.2f} | "
                 f"{t['gflop_per_image'] or '—'} | {frac} |")
    e = r["end_to_end"]
    L += ["", "## End to end: `matbench run`, MAT (smoke), mat-large, FID/P-IDS/U-IDS/LPIPS", ""]
    if "error" in e:
        L.append(f"ERROR: {e['error']}")
    else:
        L += [f"- {e['images']} generated JPEGs at {e['resolution']} px: job {e['job_wall_s']:.1f} s = "
              f"{e['images_per_s']:.1f} images/s (mask set and dataset preparation: {e['prepare_s']} s)",
              f"- device busy fraction (device-stage seconds / job wall): {e['device_busy_fraction']:.2f}",
              f"- projected for Places365-val ({PLACES_VAL} images): {e['projected_places_val_s'] / 60:.1f} min",
              f"- pipeline: {e['pipeline']}; metric networks smoke: {e['metric_smoke']}",
              f"- stage seconds: {e['stage_s']}"]
    return "\n".join(L) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py gpu", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="256 px, batch 1, fp32, 4 images (a CPU smoke test)")
    ap.add_argument("--images", type=int, default=None, help="end-to-end images (default 2000; quick: 4)")
    ap.add_argument("--out", default="gpu-check-out", help="folder for gpu-check.json and gpu-check.md")
    ap.add_argument("--parts", default="golden,throughput,end_to_end")
    a = ap.parse_args(argv)
    device = "cuda:0" if a.device == "cuda" else a.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("bench.py gpu: CUDA is not available on this machine", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    precisions = ["fp32"] if a.quick else ["fp32", "tf32", "bf16"]
    parts = set(a.parts.split(","))
    t0 = time.perf_counter()
    r: dict[str, Any] = {
        "schema": "matbench.gpu-check/1", "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": device, "mode": "quick" if a.quick else "full", "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
        else f"cpu ({platform.machine()}, {len(os.sched_getaffinity(0))} cores)",
        "golden": {}, "throughput": [], "end_to_end": {"skipped": True}}
    if "golden" in parts:
        r["golden"] = golden_part(device, a.quick, precisions)
    if "throughput" in parts:
        r["throughput"] = throughput_part(device, a.quick, precisions)
    if "end_to_end" in parts:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="mb-gpu-check-") as tmp:
            r["end_to_end"] = _guard(lambda: end_to_end_part(device, a.quick, a.images or (4 if a.quick else 2000),
                                                             Path(tmp)))
    r["wall_s"] = time.perf_counter() - t0
    (out / "gpu-check.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    (out / "gpu-check.md").write_text(markdown(r))
    print(f"bench.py gpu: wrote {out / 'gpu-check.json'} and {out / 'gpu-check.md'} in {r['wall_s']:.0f} s")
    return 0
