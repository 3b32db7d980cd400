"""Tiny synthetic leaderboard groups for the rank-confidence tests: job folders of one run directory with
metrics.json, per_image.csv and (optionally) features.npz, all models on the same images and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matbench.reports.sample import synthetic_record, write_job

from matbench.features.files import FEATURES_FILE
from matbench.metrics.fid import fid
from matbench.results import MetricValue

EXTRACTOR = "inception-v3-compat"


def write_group(run_dir: Path, per_image: dict[str, dict[str, np.ndarray]], *, real: np.ndarray | None = None,
                fakes: dict[str, np.ndarray] | None = None, maskset: str = "mat-large",
                random_models: tuple[str, ...] = ()) -> Path:
    """One job per model: per_image[model] = {metric: values [n]}; with `real` and `fakes`, features.npz and an
    FID (MAT convention) computed from them. With random_models, every record is smoke (smoke and real results
    may not share a table) and those models ran on random weights. Returns the run directory."""
    n = len(next(iter(next(iter(per_image.values())).values())))
    hole = np.linspace(0.1, 0.6, n)
    for model, cols in per_image.items():
        metrics: dict[str, object] = {m: float(np.mean(v)) for m, v in cols.items()}
        rec = synthetic_record("places", maskset, model, metrics, n=n, smoke=bool(random_models))  # type: ignore
        if random_models:
            rec.provenance.update({"metric_smoke": False, "weights": {"model": {"smoke": model in random_models}}})
        if fakes is not None and real is not None:
            rec.metrics["fid"] = MetricValue(fid(real, fakes[model], "mat"), None, None, n, convention="mat",
                                             extra={"extractor": EXTRACTOR})
        path = write_job(run_dir, rec)
        lines = ["id,hole_ratio," + ",".join(cols)]
        for i in range(n):
            lines.append(f"{i:05d},{hole[i]:.6f}," + ",".join(f"{cols[m][i]:.12g}" for m in cols))
        (path.parent / "per_image.csv").write_text("\n".join(lines) + "\n")
        if fakes is not None and real is not None:
            np.savez(path.parent / FEATURES_FILE, **{f"{EXTRACTOR}.real": real.astype(np.float32),
                                                     f"{EXTRACTOR}.fake": fakes[model].astype(np.float32)})
    return run_dir
