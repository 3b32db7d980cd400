"""`python bench.py pipeline [--json] [--quick] [--demo]`: how busy the pipelined runner keeps the device.

Runs the runner's real stages (matbench.runner.pipeline: decode + prepare + masks; a per-batch metric stage, a
light stand-in by default or the real PSNR/SSIM/L1 with --real-metrics; PNGs and batch records) on the bundled demo
photos repeated to N images (64 at 512 px; --quick: 16 at 256), MAT
large masks, with a stand-in model whose device work is a fixed sleep per batch. The sleep is set from the
stages measured alone on this machine so that stage_s["device"] = 1.25 x (stage_s["input"] + stage_s["output"]):
a device that is the bottleneck, as on a GPU host with enough cores. Then the same batches run through the
serial runner (stages one after the other) and the pipelined one, interleaved; efficiency = stage_s["device"] /
wall_s, the device's busy fraction (perfect overlap -> 1; serial -> 1.25 / 2.25 = 0.56).

--demo adds the end-to-end demo spec (`matbench demo`'s baselines, 8 photos x 2 mask sets, smoke metric networks
unless their weights are cached) run serial and pipelined, in images/s.
Prints one JSON object (--json) or a short summary. Numbers depend on the machine's load: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from matbench.models.base import Inpainter

RATIO = 1.25


class Sleeper(Inpainter):
    """Stand-in device work: sleeps a fixed time per batch, fills the hole with gray."""

    name = "sleeper"

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        if self.seconds > 0:
            time.sleep(self.seconds)
        return images.masked_fill(hole.expand_as(images), 127)


class LightEvaluator:
    """The bench's default metric stage: per-image hole ratio and L1 in the hole (torch, CPU), written as real
    matbench batch records. On a GPU host the metric networks run on the device, not on the host's cores; on a
    CPU-only bench machine the real Evaluator's CPU work would compete with the input and output stages for the
    same cores, which a GPU host does not see (--real-metrics measures that case)."""

    def process_batch(self, ids: Sequence[str], real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor) -> Any:
        from matbench.evaluate import BatchResult

        h = hole.float()
        area = h.sum(dim=(1, 2, 3)).clamp(min=1)
        l1 = ((real.float() - fake.float()).abs() * h).sum(dim=(1, 2, 3)) / (3 * 255 * area)
        rows = [{"id": i, "hole_ratio": float(r), "l1": float(v)}
                for i, r, v in zip(ids, h.mean(dim=(1, 2, 3)), l1, strict=True)]
        return BatchResult(ids=list(ids), rows=rows)


def _photos(work: Path, n: int) -> Path:
    """The demo photos, repeated (hard links / copies under new names) to n images."""
    from matbench.data.demo import demo_images

    src = demo_images(work / "photos8", n=8)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    out = work / "photos"
    out.mkdir()
    for i in range(n):
        f = files[i % len(files)]
        shutil.copyfile(f, out / f"p{i:04d}{f.suffix}")
    return out


def _spec(work: Path, n: int, res: int, batch: int) -> Any:
    from matbench.spec import parse_spec

    return parse_spec({"name": "bench-pipeline", "output": "run", "batch_size": batch, "device": "cpu",
                       "resolutions": [res], "metrics": ["psnr", "ssim", "l1"], "smoke": True, "n_bootstrap": 0,
                       "datasets": [{"name": "photos", "path": "photos", "policy": "resize-crop", "limit": n}],
                       "masksets": [{"kind": "mat-large"}], "models": [{"name": "mean-fill", "label": "sleeper"}]},
                      base_dir=work)


def _context(spec: Any, facts: dict[str, Any], model: Sleeper, real_metrics: bool) -> Any:
    from matbench.runner.inputs import MaskSource, open_dataset
    from matbench.runner.models import default_evaluator
    from matbench.runner.pipeline import JobContext, Timer
    from matbench.runner.plan import plan_jobs

    job = plan_jobs(spec)[0]
    ds = facts["datasets"][job.dataset.name]
    return JobContext(spec=spec, run_dir=Path(spec.output), job=job, ids=ds.ids, dataset=open_dataset(job.dataset),
                      masks=MaskSource(facts["masksets"][(job.maskset.name, job.resolution)]),
                      evaluator=default_evaluator(spec, "cpu", True) if real_metrics else LightEvaluator(),
                      device="cpu", timer=Timer(),
                      get_model=lambda: model, get_scorer=lambda: None, save_ids=None, save_outputs=True,
                      on_done=lambda *a: None)


def _clean(run_dir: Path) -> None:
    for d in ("outputs", "inputs", "masks", "jobs"):
        shutil.rmtree(run_dir / d, ignore_errors=True)


def _alone(ctx: Any, todo: list[tuple[int, range]]) -> dict[str, float]:
    """Each stage alone over the same batches (input, then device, then output), in seconds."""
    from matbench.runner.pipeline import device_stage, load_stage, output_stage

    t0 = time.perf_counter()
    ins = [load_stage(ctx, k, idx) for k, idx in todo]
    t1 = time.perf_counter()
    outs = [device_stage(ctx, b) for b in ins]
    t2 = time.perf_counter()
    for o in outs:
        output_stage(ctx, o)
    t3 = time.perf_counter()
    _clean(ctx.run_dir)
    return {"input": t1 - t0, "device": t2 - t1, "output": t3 - t2}


def _timed(ctx: Any, todo: list[tuple[int, range]], workers: Any) -> float:
    from matbench.runner.pipeline import run_batches

    t0 = time.perf_counter()
    run_batches(ctx, todo, workers)
    wall = time.perf_counter() - t0
    _clean(ctx.run_dir)
    return wall


def pipeline_bench(work: Path, n: int, res: int, batch: int, reps: int, real_metrics: bool = False) -> dict[str, Any]:
    from matbench.distributed import batch_ranges
    from matbench.runner.inputs import prepare_inputs
    from matbench.runner.pipeline import Workers, available_cores, plan_workers

    _photos(work, n)
    spec = _spec(work, n, res, batch)
    facts = prepare_inputs(spec, Path(spec.output))
    model = Sleeper(0.0)
    ctx = _context(spec, facts, model, real_metrics)
    todo = list(enumerate(batch_ranges(n, batch)))
    _alone(ctx, todo[:1])  # warm-up: imports, first decode, allocator
    base = _alone(ctx, todo)  # device here = the metrics only (the model sleeps 0)
    model.seconds = max(0.0, RATIO * (base["input"] + base["output"]) - base["device"]) / len(todo)
    stage = _alone(ctx, todo)
    serial_walls, piped_walls = [], []
    workers = plan_workers()
    for _ in range(reps):  # interleaved, so load changes hit both modes alike
        serial_walls.append(_timed(ctx, todo, Workers(serial=True)))
        piped_walls.append(_timed(ctx, todo, workers))
    wall, wall_serial = min(piped_walls), min(serial_walls)
    return {
        "metrics": "psnr, ssim, l1 (matbench Evaluator, CPU)" if real_metrics else "light stand-in (hole L1, CPU)",
        "images": n, "resolution": res, "batch_size": batch, "batches": len(todo), "cores": available_cores(),
        "workers": workers.describe(), "reps": reps,
        "wall_s": round(wall, 3), "stage_s": {k: round(v, 3) for k, v in stage.items()},
        "serial_s": round(sum(stage.values()), 3),
        "device_sleep_s": round(model.seconds * len(todo), 3), "device_sleep_per_batch_s": round(model.seconds, 4),
        "efficiency": round(stage["device"] / wall, 3),
        "serial_runner": {"wall_s": round(wall_serial, 3), "efficiency": round(stage["device"] / wall_serial, 3)},
        "speedup": round(wall_serial / wall, 3),
        "walls_s": {"serial": [round(w, 3) for w in serial_walls], "pipelined": [round(w, 3) for w in piped_walls]},
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def demo_bench(work: Path, n_images: int, order: Sequence[str] = ("serial", "pipelined")) -> dict[str, Any]:
    """The demo spec end to end (run(), baselines only), serial then pipelined: images/s of each."""
    from matbench.data.demo import demo_images
    from matbench.demo import demo_spec
    from matbench.runner import RunOptions, run

    demo_images(work / "photos", n=n_images)
    out: dict[str, Any] = {}
    for mode in order:  # the first pays the process's one-time costs (imports, network builds, JIT): alternate it
        spec = demo_spec(work, n_images=n_images, extra_models=[])
        spec.output = work / f"run-{mode}"
        spec.cache_dir = work / f"cache-{mode}"  # both start with an empty ground-truth feature cache
        t0 = time.perf_counter()
        info = run(spec, RunOptions(progress=False, serial=mode == "serial"))
        wall = time.perf_counter() - t0
        n = sum(1 for _ in info["jobs"]) * n_images
        out[mode] = {"wall_s": round(wall, 2), "images": n, "images_per_s": round(n / wall, 3),
                     "metric_smoke": info["metric_smoke"]}
    out["order"] = list(order)
    out["speedup"] = round(out["serial"]["wall_s"] / out["pipelined"]["wall_s"], 3)
    out["loadavg_1min"] = round(os.getloadavg()[0], 2)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py pipeline", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="16 images at 256 px")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2, help="interleaved serial/pipelined repetitions (best taken)")
    ap.add_argument("--real-metrics", action="store_true", help="the real Evaluator (PSNR/SSIM/L1) in the device stage")
    ap.add_argument("--demo-order", default="serial,pipelined", help="which mode runs first in the process")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the stage bench (e.g. with --demo)")
    ap.add_argument("--demo", action="store_true", help="also the demo spec end to end, serial vs pipelined")
    ap.add_argument("-o", "--output", help="also write the JSON here")
    a = ap.parse_args(argv)
    n, res = (16, 256) if a.quick else (a.images, a.resolution)
    with tempfile.TemporaryDirectory(prefix="mb-bench-pipeline-") as tmp:
        res_json = {} if a.no_pipeline else {"pipeline": pipeline_bench(Path(tmp) / "p", n, res, a.batch_size, a.reps,
                                                                         a.real_metrics)}
        if a.demo:
            res_json["demo"] = demo_bench(Path(tmp) / "d", 8, a.demo_order.split(","))
    flat = {**res_json.get("pipeline", {}), **({"demo": res_json["demo"]} if "demo" in res_json else {})}
    text = json.dumps(flat, indent=2)
    if a.output:
        Path(a.output).write_text(text + "\n")
    if a.json:
        print(text)
    elif "wall_s" in flat:
        p = flat
        print(f"pipelined: wall {p['wall_s']} s, efficiency {p['efficiency']} (serial runner: "
              f"{p['serial_runner']['wall_s']} s, {p['serial_runner']['efficiency']}); stages alone {p['stage_s']}",
              file=sys.stdout)
    return 0
