"""spec -> jobs -> stages: the benchmark runner behind `matbench run` (one stage per module).

    plan.py            jobs of a spec, their batch size, missing weights, --dry-run
    inputs.py          datasets (ids, manifest) and mask sets
    models.py          building models (precision, channels_last, compile) and evaluators; model provenance
    pipeline.py        the stages of a batch (input -> device -> output), serial or overlapped
    job.py             one job: resume, compute through the pipeline, gather (torchrun), finalize
    state.py           paths, fingerprints, finished / corrupt batch records, the run-directory lock
    records.py         run.json, metrics.json / per_image.csv / state.json, provenance
    generalization.py  the 512 -> 1024 table
    execute.py         run(spec, RunOptions)

One job = (dataset, mask set, model, resolution); job_id = "{dataset}__{maskset}__{model}__{res}".
Images stream through in fixed global batches; a batch is done when jobs/<job>/batches/<k>.npz is on disk
(written last, atomically), so a killed run resumes where it stopped and dataset-level metrics computed at the
end from all batch files in index order equal an uninterrupted run's. Under torchrun, batch k runs on rank
k % world and the batch results are gathered to rank 0 (see matbench.distributed). See docs/runner.md.
"""

from matbench.runner.execute import RunOptions, run, workers_for
from matbench.runner.generalization import generalization_table, write_generalization
from matbench.runner.inputs import (
    MaskSource,
    PreparedDataset,
    PreparedMaskSet,
    open_dataset,
    prepare_dataset,
    prepare_maskset,
)
from matbench.runner.models import build_model, default_evaluator, make_evaluator, model_provenance
from matbench.runner.pipeline import Workers, available_cores, plan_workers
from matbench.runner.plan import EXIT_NOT_REAL, Job, dry_run, job_id, missing_weights, not_real, plan_jobs
from matbench.runner.records import RUN_SCHEMA
from matbench.runner.state import (
    LOCK_FILE,
    LOG_FILE,
    RUN_FILE,
    STATE_FILE,
    RunLock,
    batch_done,
    batch_file,
    job_dir,
    job_fingerprint,
)

__all__ = [
    "EXIT_NOT_REAL", "LOCK_FILE", "LOG_FILE", "RUN_FILE", "RUN_SCHEMA", "STATE_FILE", "Job", "MaskSource",
    "PreparedDataset", "PreparedMaskSet", "RunLock", "RunOptions", "Workers", "available_cores", "batch_done",
    "batch_file", "build_model", "default_evaluator", "dry_run", "generalization_table", "job_dir", "job_fingerprint",
    "job_id", "make_evaluator", "missing_weights", "model_provenance", "not_real", "open_dataset", "plan_jobs",
    "plan_workers", "prepare_dataset", "prepare_maskset", "run", "workers_for", "write_generalization",
]
