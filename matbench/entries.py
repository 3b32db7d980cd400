"""Result-record entries: one record plus where its files live (the run-directory layout), and the job fields
(dataset, mask set, model, resolution, smoke sources) read from a record. Core: the history, the study maker and
the reports all read records through these."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matbench.errors import InputError
from matbench.io import csv_restore_text
from matbench.layout import RunLayout
from matbench.results import PER_IMAGE_FILE, ResultRecord, find_records

MODEL_SMOKE_MARK = "(random weights)"  # the model's weights were random: its outputs are not inpaintings
METRIC_SMOKE_MARK = "(smoke)"  # only the metric networks were random: real outputs, smoke numbers

__all__ = ["METRIC_SMOKE_MARK", "MODEL_SMOKE_MARK", "Entry", "entry_for", "job_field", "job_resolution",
           "load_entries", "smoke_sources"]


def job_field(record: ResultRecord, key: str) -> str:
    """dataset / maskset / model of a record; `matbench eval` records (job = results, gt, masks folders) fall
    back to the folder names (gt -> dataset, masks -> mask set, results -> model)."""
    job = record.job
    if job.get(key) is not None:
        return str(job[key])
    folder = {"dataset": "gt", "maskset": "masks", "model": "results"}[key]
    if job.get(folder):
        return Path(str(job[folder])).name
    return "none" if key == "maskset" else "?"


def job_resolution(record: ResultRecord) -> int | None:
    """The job's square resolution; None when unknown or not square (eval records may say "640x480")."""
    r = record.job.get("resolution", record.protocol.get("resolution"))
    try:
        return int(r) if r is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class Entry:
    """One result record plus where its files live."""

    record: ResultRecord
    job_id: str
    result_dir: Path
    run_dir: Path

    @property
    def dataset(self) -> str:
        return job_field(self.record, "dataset")

    @property
    def maskset(self) -> str:
        return job_field(self.record, "maskset")

    @property
    def model(self) -> str:
        return job_field(self.record, "model") if "model" in self.record.job else (
            Path(str(self.record.job["results"])).name if self.record.job.get("results") else self.job_id)

    @property
    def resolution(self) -> int | None:
        return job_resolution(self.record)

    @property
    def sample(self) -> int:
        return int(self.record.job.get("sample") or 0)

    @property
    def row_label(self) -> str:
        return self.model if self.sample == 0 else f"{self.model} (sample {self.sample})"

    @property
    def model_smoke(self) -> bool:
        """The model itself ran on random weights: its output images are not real inpaintings."""
        return smoke_sources(self.record)[0]

    @property
    def metric_smoke(self) -> bool:
        """The metric networks were random (or stand-ins): the numbers are smoke, the images may be real."""
        return smoke_sources(self.record)[1]

    @property
    def smoke_mark(self) -> str:
        """What follows the row label in tables: ' (random weights)' when the model was random (its outputs are not
        inpaintings: never bold, never ranked), ' (smoke)' when only the metric networks were, else ''."""
        if self.model_smoke:
            return f" {MODEL_SMOKE_MARK}"
        return f" {METRIC_SMOKE_MARK}" if self.record.smoke else ""

    @property
    def path(self) -> Path:
        return self.record.path or self.result_dir / "metrics.json"

    def per_image_path(self) -> Path | None:
        p = self.result_dir / PER_IMAGE_FILE
        return p if p.is_file() else None

    def per_image(self) -> Any:
        """per_image.csv as a pandas DataFrame (id as str), or None when absent."""
        import pandas as pd

        p = self.per_image_path()
        if p is None:
            return None
        try:
            df = pd.read_csv(p, dtype={"id": str})
        except Exception as e:  # pandas raises several types; name the file
            raise InputError(f"{p}: cannot read per-image CSV ({type(e).__name__}: {e})") from None
        if "id" not in df.columns:
            raise InputError(f"{p}: per-image CSV has no 'id' column")
        _check_numeric_columns(df, p)
        return csv_restore_text(df)  # undo the writers' formula guard: exact round trip

    def outputs_dir(self) -> Path | None:
        for d in (RunLayout(self.run_dir).outputs_dir(self.job_id), self.result_dir / "outputs"):
            if d.is_dir():
                return d
        return None

    def input_path(self, image_id: str) -> Path | None:
        p = RunLayout(self.run_dir).input_image(self.dataset, self.resolution, image_id)
        return p if p.is_file() else None

    def mask_path(self, image_id: str) -> Path | None:
        p = RunLayout(self.run_dir).mask_image(self.maskset, self.resolution, image_id)
        return p if p.is_file() else None


def entry_for(record: ResultRecord) -> Entry:
    result_dir = (record.path.parent if record.path else Path(".")).resolve()
    of_job = RunLayout.of_job_dir(result_dir)
    run_dir = of_job[0].root if of_job else result_dir
    return Entry(record=record, job_id=result_dir.name, result_dir=result_dir, run_dir=run_dir)


def load_entries(paths: Iterable[str | os.PathLike]) -> list[Entry]:
    """Every result below `paths` (run dirs, result dirs or metrics.json files)."""
    seen: set[Path] = set()
    out: list[Entry] = []
    for rec in find_records(paths):
        e = entry_for(rec)
        if e.path.resolve() in seen:  # the same file reached through two arguments
            continue
        seen.add(e.path.resolve())
        out.append(e)
    return out


def smoke_sources(record: ResultRecord) -> tuple[bool, bool]:
    """(model ran on random weights, metric networks random) for a record; both False when not smoke.

    The runner records the model's own flag in provenance.weights.model.smoke and the metric networks' in
    provenance.metric_smoke; `matbench eval` records the metric networks' in provenance.smoke and knows no
    model. When a smoke record says neither, the smoke cannot be pinned on the metrics, so the model's
    outputs are treated as smoke too (never show possibly random pictures as real)."""
    if not record.smoke:
        return False, False
    prov = record.provenance if isinstance(record.provenance, dict) else {}
    weights = prov.get("weights")
    model = weights.get("model") if isinstance(weights, dict) else None
    model_smoke = bool(model["smoke"]) if isinstance(model, dict) and "smoke" in model else None
    metric = prov.get("metric_smoke", prov.get("smoke"))
    metric_smoke = bool(metric) if metric is not None else None
    if model_smoke is None:
        model_smoke = not metric_smoke
    if metric_smoke is None:
        metric_smoke = not model_smoke
    return model_smoke, metric_smoke


def _check_numeric_columns(df: Any, path: Path) -> None:
    """A metric column with one non-number (an edited cell, a stray text) would read as text and fail later in a
    plot or sort with a traceback: name the file, row and column instead. Columns with no number at all are text."""
    for col in df.columns:
        if col == "id" or df[col].dtype.kind in "biufcmM":  # already numbers (or dates): nothing to check
            continue
        cells = df[col].dropna()
        nums = cells.map(_as_float)
        if nums.notna().any() and nums.isna().any():
            i = nums[nums.isna()].index[0]
            raise InputError(f"{path}: row {int(i) + 2} (id {df['id'][i]}), column '{col}': {cells[i]!r:.40} is not "
                             "a number")


def _as_float(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
