"""Records: run.json, the job's metrics.json / per_image.csv / state.json, and their provenance."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from matbench.distributed import DistContext
from matbench.io import atomic_path, csv_safe_text
from matbench.results import MetricValue, ResultRecord, environment_versions, now_iso, write_record
from matbench.runner.plan import Job
from matbench.runner.state import RUN_FILE, read_json, write_state
from matbench.spec import Spec

RUN_SCHEMA = "matbench.run/1"


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()})"


def initial_run_json(spec: Spec, run_dir: Path, jobs: list[Job], device: str, dist: DistContext,
                     metric_smoke: bool) -> dict[str, Any]:
    prev = read_json(run_dir / RUN_FILE) if dist.is_main else None
    created = prev.get("created") if prev else None
    return {
        "schema": RUN_SCHEMA,
        "name": spec.name,
        "status": "running",
        "created": created or now_iso(),
        "updated": now_iso(),
        "resumed": prev is not None,
        "smoke": metric_smoke or any(m.smoke for m in spec.models),
        "metric_smoke": metric_smoke,
        "device": device_name(device),
        "world_size": dist.world_size,
        "versions": environment_versions(),
        "spec": spec.to_json(),
        "spec_toml": spec.raw,
        "jobs": [{**j.describe(), "id": j.id, "status": "pending"} for j in jobs],
        "summary": {},
    }


def update_job_in_run_json(info: dict[str, Any], job: Job, rec: ResultRecord) -> None:
    for j in info["jobs"]:
        if j["id"] == job.id:
            j["status"] = "complete"
            j["smoke"] = rec.smoke
    info["summary"][job.id] = {k: v.value for k, v in rec.metrics.items()}
    info["updated"] = now_iso()


def add_diversity(record: ResultRecord, per_image: pd.DataFrame, results: list[tuple[int, Any, Any]],
                  samples: int, lpips_net: str) -> pd.DataFrame:
    """The diversity metric (mean over images) and its per-image column."""
    ids_all = [i for r in results for i in r[1].ids]
    div = np.array([v for r in results for v in r[2]], dtype=np.float64)
    record.metrics["diversity"] = MetricValue(value=float(div.mean()), n=len(div), convention="lpips-hole",
                                              extra={"samples": samples, "net": lpips_net})
    per_image = per_image.copy()
    div_by_id = dict(zip(ids_all, div.tolist(), strict=True))
    per_image["diversity"] = [div_by_id.get(str(i), math.nan) for i in per_image["id"]] \
        if "id" in per_image.columns else div
    return per_image


def write_job_record(jd: Path, record: ResultRecord, per_image: pd.DataFrame, state: dict[str, Any]) -> None:
    """per_image.csv, metrics.json, then state.json = complete (the job's last write)."""
    jd.mkdir(parents=True, exist_ok=True)
    with atomic_path(jd / "per_image.csv") as tmp:
        csv_safe_text(per_image).to_csv(tmp, index=False)  # no formulas in spreadsheets
    write_record(jd, record)
    write_state(jd.parent.parent, jd.name, {**state, "status": "complete", "finished": now_iso()})
