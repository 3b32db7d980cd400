"""A small sample run directory in the runner's layout, for tests, docs and the README screenshot.

The inpainted outputs are real (the weight-free OpenCV / mean-fill baselines run on procedurally drawn
images); per-image PSNR, SSIM and L1 are computed on them. Everything that needs pretrained networks
(FID, P-IDS, U-IDS, precision, recall, per-image LPIPS) is a deterministic STAND-IN derived from those
pixel errors, so every record is marked smoke and its provenance says so: the metrics are smoke
(provenance.metric_smoke), the models ran on no weights at all (provenance.weights.model.smoke is false).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from matbench.io import save_png, write_json_atomic
from matbench.layout import RunLayout
from matbench.models.base import create_model
from matbench.results import MetricValue, ResultRecord, write_record

SAMPLE_NOTE = "sample run: real classical-baseline outputs; FID/IDS/PR/LPIPS are stand-ins (not measured)"


def _image(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, 1 - xx * yy], axis=-1) * rng.uniform(80, 200, size=3)
    for _ in range(4):  # a few coloured discs
        cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 10, size / 4)]
        disc = (yy * size - cy) ** 2 + (xx * size - cx) ** 2 < r * r
        base[disc] = rng.uniform(0, 255, size=3)
    return np.clip(base, 0, 255).astype(np.uint8)


def _hole(rng: np.random.Generator, size: int, large: bool) -> np.ndarray:
    hole = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(1, 4 if not large else 6))):
        h, w = (rng.uniform(0.2, 0.6 if large else 0.35, 2) * size).astype(int)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        hole[y:y + h, x:x + w] = True
    return hole


def _bootstrap(x: np.ndarray, rng: np.random.Generator, n: int = 200) -> tuple[float, float]:
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def make_sample_run(run_dir: str | os.PathLike, n_images: int = 8, size: int = 64,
                    models: tuple[str, ...] = ("opencv-telea", "opencv-ns", "mean-fill"),
                    masksets: tuple[str, ...] = ("mat-small", "mat-large"), dataset: str = "sample-shapes",
                    samples: int = 2, seed: int = 0) -> Path:
    """Write RUN_DIR/{run.json, jobs/, outputs/, inputs/, masks/}; returns the run directory."""
    import torch
    from skimage.metrics import structural_similarity


    run_dir = Path(run_dir)
    lay = RunLayout(run_dir)
    rng = np.random.default_rng(seed)
    ids = [f"{i:05d}" for i in range(n_images)]
    gts = {i: _image(rng, size) for i in ids}
    for i, im in gts.items():
        save_png(lay.input_image(dataset, size, i), im)
    write_json_atomic(lay.run_file, {"name": "sample", "note": SAMPLE_NOTE, "seed": seed,
                                             "models": list(models), "masksets": list(masksets)})
    for ms in masksets:
        holes = {i: _hole(rng, size, "large" in ms) for i in ids}
        for i, h in holes.items():
            save_png(lay.mask_image(ms, size, i), h.astype(np.uint8) * 255)
        imgs = torch.from_numpy(np.stack([gts[i] for i in ids]).transpose(0, 3, 1, 2).copy())
        hole_t = torch.from_numpy(np.stack([holes[i] for i in ids])[:, None])
        for mi, name in enumerate(models):
            job = f"{dataset}-{ms}-{name}-{size}"
            model = create_model(name)
            out = model(imgs, hole_t, ids, seed=seed).numpy().transpose(0, 2, 3, 1)
            rows = []
            for k, i in enumerate(ids):
                save_png(lay.output_image(job, i), out[k])
                gt, o = gts[i].astype(np.float64), out[k].astype(np.float64)
                mse = float(((gt - o) ** 2).mean())
                psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))
                ssim = float(structural_similarity(gts[i], out[k], channel_axis=2, data_range=255))
                l1 = float(np.abs(gt - o).mean() / 255.0)
                rows.append((i, float(holes[i].mean()), 1.0 - ssim, psnr, ssim, l1))
            if samples and mi == 0:  # pluralistic stand-in: the first model's output, shifted a little
                for k, i in enumerate(ids):
                    for s in range(1, samples + 1):
                        shifted = np.where(holes[i][..., None], np.roll(out[k], 2 * s, axis=1), out[k])
                        save_png(lay.output_image(job, i, s), shifted.astype(np.uint8))
            arr = np.array([r[1:] for r in rows])
            job_dir = lay.job_dir(job)
            job_dir.mkdir(parents=True, exist_ok=True)
            with open(lay.per_image_file(job), "w") as f:
                f.write("id,hole_ratio,lpips,psnr,ssim,l1,pair_check\n")
                for r in rows:
                    f.write(f"{r[0]},{r[1]:.6f},{r[2]:.6f},{r[3]:.6f},{r[4]:.6f},{r[5]:.6f},ok\n")
            metrics: dict[str, MetricValue] = {}
            for col, name_m in enumerate(("hole_ratio", "lpips", "psnr", "ssim", "l1")):
                if name_m == "hole_ratio":
                    continue
                lo, hi = _bootstrap(arr[:, col], rng)
                metrics[name_m] = MetricValue(float(arr[:, col].mean()), lo, hi, n_images)
            l1m = metrics["l1"].value
            fid = 400.0 * l1m
            metrics["fid"] = MetricValue(fid, fid * 0.95, fid * 1.05, n_images, convention="stand-in")
            metrics["pids"] = MetricValue(max(0.0, 0.2 - l1m), None, None, n_images)
            metrics["uids"] = MetricValue(max(0.0, 0.45 - 2 * l1m), None, None, n_images)
            metrics["precision"] = MetricValue(max(0.0, 0.9 - 3 * l1m), None, None, n_images)
            metrics["recall"] = MetricValue(max(0.0, 0.8 - 4 * l1m), None, None, n_images)
            if samples and mi == 0:
                metrics["diversity"] = MetricValue(0.01 * samples, None, None, n_images)
            bins = []
            for lo in np.arange(0.0, 1.0, 0.2):
                sel = (arr[:, 0] >= lo) & (arr[:, 0] < lo + 0.2)
                # Like the runner: every bin with its count, metrics only where it holds >= 2 images.
                bins.append({"lo": round(float(lo), 2), "hi": round(float(lo) + 0.2, 2), "n": int(sel.sum()),
                             "metrics": {m: MetricValue(float(arr[sel, c].mean()), None, None, int(sel.sum()))
                                         for c, m in ((1, "lpips"), (2, "psnr"), (3, "ssim"), (4, "l1"))}
                             if sel.sum() >= 2 else {}})
            protocol = {"dataset_manifest_sha256": f"sample-{dataset}-{seed}", "maskset_sha256": f"sample-{ms}",
                        "fid_convention": "stand-in", "feature_extractor": "none", "extractor_sha256": None,
                        "n_images": n_images, "resolution": size}
            provenance = {"note": SAMPLE_NOTE, "versions": {"numpy": np.__version__, "torch": torch.__version__},
                          "device": "cpu", "metric_smoke": True,
                          "weights": {"model": {"name": name, "smoke": False, "weights": "none (classical)"}},
                          "timings_s": {"inpaint": 0.0}, "created": "2026-01-01T00:00:00+00:00"}
            rec = ResultRecord(job={"dataset": dataset, "maskset": ms, "model": name, "resolution": size,
                                    "sample": 0},
                               metrics=metrics, bins=bins, protocol=protocol, provenance=provenance, smoke=True)
            write_record(job_dir, rec)
    return run_dir


def synthetic_record(dataset: str, maskset: str, model: str, metrics: dict[str, object], resolution: int = 512,
                     smoke: bool = False, n: int = 100, **protocol: object) -> ResultRecord:
    """A record with hand-written metric values: `metrics` maps name -> value or (value, ci_low, ci_high).

    Protocol fields default to values shared by every record of the same dataset/mask set; keyword
    arguments override them (to build mismatches). The one exception is `sample` (default 0): the job's
    sample index, not a protocol field."""
    sample = int(protocol.pop("sample", 0))  # type: ignore[call-overload]
    mv = {}
    for k, v in metrics.items():
        if isinstance(v, tuple):
            mv[k] = MetricValue(float(v[0]), float(v[1]), float(v[2]), n)
        else:
            mv[k] = MetricValue(float(v), None, None, n)  # type: ignore[arg-type]
    proto = {"dataset_manifest_sha256": f"manifest-{dataset}", "maskset_sha256": f"maskset-{maskset}",
             "fid_convention": "mat", "feature_extractor": "inception-v3-compat", "extractor_sha256": "incep",
             "n_images": n, "resolution": resolution}
    proto.update(protocol)
    return ResultRecord(job={"dataset": dataset, "maskset": maskset, "model": model, "resolution": resolution,
                             "sample": sample},
                        metrics=mv, protocol=proto, provenance={"versions": {"matbench": "test"}, "device": "cpu"},
                        smoke=smoke)


def write_job(run_dir: str | os.PathLike, record: ResultRecord, job_id: str | None = None) -> Path:
    """Write `record` as RUN_DIR/jobs/<job_id>/metrics.json (job id derived from the job when not given)."""
    j = record.job
    job_id = job_id or f"{j['dataset']}-{j['maskset']}-{j['model']}-{j['resolution']}"
    return write_record(RunLayout(run_dir).job_dir(job_id), record)
