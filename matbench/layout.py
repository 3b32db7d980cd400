"""The run directory's layout on disk, in one place: every path the runner writes and the reports read.

    RUN_DIR/run.json, run.log, run.rank<R>.log, .lock       run record, logs, lock
    RUN_DIR/generalization.json, generalization.csv          cross-dataset table
    RUN_DIR/masksets/<maskset>/<res>/                         generated mask sets (MaskSet directories)
    RUN_DIR/inputs/<dataset>/<res>/<id>.png                   prepared inputs (save_inputs)
    RUN_DIR/masks/<maskset>/<res>/<id>.png                    holes as PNG (save_inputs)
    RUN_DIR/outputs/<job>/<id>.png, <id>_s<S>.png             model outputs (sample 0, then S = 1, 2, ...)
    RUN_DIR/jobs/<job>/state.json, metrics.json, per_image.csv, features.npz
    RUN_DIR/jobs/<job>/batches/<k>.npz, <k>.diversity.json    batch records (resume)

These names are a storage format: old run directories must resume, so they never change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from matbench.results import METRICS_FILE, PER_IMAGE_FILE

RUN_FILE = "run.json"
LOG_FILE = "run.log"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
FEATURES_FILE = "features.npz"  # = matbench.features.FEATURES_FILE (kept import-free here; tests compare)
GENERALIZATION_JSON = "generalization.json"
GENERALIZATION_CSV = "generalization.csv"
JOBS_DIR = "jobs"
BATCHES_DIR = "batches"
INPUTS_DIR = "inputs"
MASKS_DIR = "masks"
OUTPUTS_DIR = "outputs"
MASKSETS_DIR = "masksets"


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run directory (nothing is created or checked here)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    # ------------------------------------------------------------------ run-level files
    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def log_file(self) -> Path:
        return self.root / LOG_FILE

    def rank_log_file(self, rank: int) -> Path:
        """The log of a non-main torchrun rank (rank 0 writes run.log)."""
        return self.root / f"run.rank{rank}.log"

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def generalization_json(self) -> Path:
        return self.root / GENERALIZATION_JSON

    @property
    def generalization_csv(self) -> Path:
        return self.root / GENERALIZATION_CSV

    # ------------------------------------------------------------------ images
    def maskset_dir(self, maskset: str, resolution: int | str) -> Path:
        return self.root / MASKSETS_DIR / maskset / str(resolution)

    def inputs_dir(self, dataset: str, resolution: int | str) -> Path:
        return self.root / INPUTS_DIR / dataset / str(resolution)

    def input_image(self, dataset: str, resolution: int | str, image_id: str) -> Path:
        return self.inputs_dir(dataset, resolution) / f"{image_id}.png"

    def masks_dir(self, maskset: str, resolution: int | str) -> Path:
        return self.root / MASKS_DIR / maskset / str(resolution)

    def mask_image(self, maskset: str, resolution: int | str, image_id: str) -> Path:
        return self.masks_dir(maskset, resolution) / f"{image_id}.png"

    def outputs_dir(self, job_id: str) -> Path:
        return self.root / OUTPUTS_DIR / job_id

    def output_image(self, job_id: str, image_id: str, sample: int = 0) -> Path:
        """Sample 0 is `<id>.png` (what single-output models write); further samples `<id>_s<S>.png`."""
        return self.outputs_dir(job_id) / (f"{image_id}.png" if sample == 0 else f"{image_id}_s{sample}.png")

    # ------------------------------------------------------------------ jobs
    @property
    def jobs_dir(self) -> Path:
        return self.root / JOBS_DIR

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def state_file(self, job_id: str) -> Path:
        return self.job_dir(job_id) / STATE_FILE

    def metrics_file(self, job_id: str) -> Path:
        return self.job_dir(job_id) / METRICS_FILE

    def per_image_file(self, job_id: str) -> Path:
        return self.job_dir(job_id) / PER_IMAGE_FILE

    def features_file(self, job_id: str) -> Path:
        return self.job_dir(job_id) / FEATURES_FILE

    def batches_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / BATCHES_DIR

    def batch_file(self, job_id: str, k: int) -> Path:
        return self.batches_dir(job_id) / f"{k}.npz"

    def diversity_file(self, job_id: str, k: int) -> Path:
        return self.batches_dir(job_id) / f"{k}.diversity.json"

    @staticmethod
    def of_job_dir(path: str | os.PathLike) -> tuple[RunLayout, str] | None:
        """(layout, job id) when PATH is RUN_DIR/jobs/<job>, else None (e.g. a `matbench eval` output folder)."""
        p = Path(path)
        if p.parent.name != JOBS_DIR:
            return None
        return RunLayout(p.parent.parent), p.name
