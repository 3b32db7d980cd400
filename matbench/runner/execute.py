"""`run(spec)`: the lock, the inputs (rank 0), the evaluator, every job in order, run.json."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matbench.devices import resolve_device
from matbench.distributed import DistContext, init_from_env
from matbench.errors import MatbenchError, WeightsError
from matbench.io import write_json_atomic
from matbench.layout import RunLayout
from matbench.progress import bar as progress_bar
from matbench.results import ResultRecord, now_iso
from matbench.runner.generalization import generalization_table, write_generalization
from matbench.runner.inputs import prepare_inputs
from matbench.runner.job import RunContext, run_job
from matbench.runner.models import EvaluatorFactory, default_evaluator, make_evaluator
from matbench.runner.pipeline import Workers, plan_workers
from matbench.runner.plan import missing_weights, plan_jobs
from matbench.runner.records import initial_run_json, update_job_in_run_json
from matbench.runner.state import RUN_FILE, RunLock, load_batch_result
from matbench.spec import Spec, check_protocol

log = logging.getLogger("matbench.runner")


@dataclass
class RunOptions:
    restart: bool = False  # discard jobs whose stored configuration differs from the spec
    evaluator_factory: EvaluatorFactory = default_evaluator
    batch_loader: Callable[[Path], Any] = load_batch_result
    progress: bool | None = None  # None: matbench.progress's policy ($MATBENCH_PROGRESS, else on)
    serial: bool | None = None  # None: the spec's `pipeline` key decides
    workers: Workers | None = None  # None: from the spec's input_workers/output_workers and the cores


def run(spec: Spec, options: RunOptions | None = None) -> dict[str, Any]:
    """Run every job of the spec (resuming what is on disk); return run.json's content (on rank 0)."""
    opts = options or RunOptions()
    run_dir = Path(spec.output)
    device = resolve_device(spec.device, int(os.environ.get("LOCAL_RANK", "0")), where="device (spec or --device)")
    dist = init_from_env(device)
    handler = _attach_log(run_dir, dist)
    lock = RunLock(run_dir)
    try:
        return _run(spec, opts, run_dir, device, dist, lock)
    finally:
        lock.release()
        logging.getLogger("matbench").removeHandler(handler)
        handler.close()
        dist.close()


def _attach_log(run_dir: Path, dist: DistContext) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    lay = RunLayout(run_dir)
    path = lay.log_file if dist.is_main else lay.rank_log_file(dist.rank)
    h = logging.FileHandler(path, encoding="utf-8")
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    h.setLevel(logging.INFO)
    root = logging.getLogger("matbench")
    root.addHandler(h)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return h


def workers_for(spec: Spec, opts: RunOptions) -> Workers:
    if opts.workers is not None:
        return opts.workers
    serial = opts.serial if opts.serial is not None else not getattr(spec, "pipeline", True)
    return plan_workers(serial, getattr(spec, "input_workers", 0), getattr(spec, "output_workers", 0))


def _prepare_on_rank0(spec: Spec, run_dir: Path, dist: DistContext, lock: RunLock) -> dict[str, Any]:
    """Rank 0 takes the lock and prepares datasets and mask sets; every rank gets its facts (or its error)."""
    facts: Any = None
    err: str | None = None
    if dist.is_main:
        try:
            lock.acquire()
            facts = prepare_inputs(spec, run_dir)
        except Exception as e:
            if not dist.enabled:
                raise
            err = str(e) if isinstance(e, MatbenchError) else f"{type(e).__name__}: {e}"
            dist.broadcast((None, err))  # the other ranks stop too instead of waiting forever
            raise
    facts, err = dist.broadcast((facts, err))
    if err is not None:
        raise MatbenchError(f"rank 0 failed to prepare the inputs: {err}")
    return facts


def _run(spec: Spec, opts: RunOptions, run_dir: Path, device: str, dist: DistContext,
         lock: RunLock) -> dict[str, Any]:
    t_run = time.perf_counter()
    jobs = plan_jobs(spec)
    missing = missing_weights(spec)
    if missing:
        raise WeightsError("missing model weights:\n  " + "\n  ".join(missing))
    facts = _prepare_on_rank0(spec, run_dir, dist, lock)
    if spec.protocol:  # now that the inputs are read: image counts, imported mask sets; before any job runs
        check_protocol(spec, _where(spec), {k: len(v.ids) for k, v in facts["datasets"].items()},
                       {name: p.origin for (name, _), p in facts["masksets"].items()})
    prepare_s = time.perf_counter() - t_run
    evaluator, metric_smoke = make_evaluator(spec, device, opts.evaluator_factory)
    if metric_smoke:
        _loud(dist, "SMOKE MODE: metric networks (Inception/LPIPS) run on random weights — "
                    "the numbers are NOT comparable to any paper")
    info = initial_run_json(spec, run_dir, jobs, device, dist, metric_smoke)
    workers = workers_for(spec, opts)
    info["pipeline"] = workers.describe()
    if dist.is_main:
        write_json_atomic(run_dir / RUN_FILE, info)
        log.info("run %s: %d jobs on %s (world size %d, %s) -> %s", spec.name, len(jobs), device,
                 dist.world_size, workers.describe(), run_dir)
    total = sum(len(facts["datasets"][j.dataset.name].ids) * j.model.samples for j in jobs)

    overall = progress_bar(total // dist.world_size, "all jobs", "img", opts.progress if dist.is_main else False,
                           position=0)
    rc = RunContext(spec, opts, run_dir, dist, device, evaluator, metric_smoke, workers, overall, prepare_s)
    records: dict[str, ResultRecord] = {}
    try:
        for job in jobs:
            rec = run_job(rc, job, facts["datasets"][job.dataset.name],
                          facts["masksets"][(job.maskset.name, job.resolution)])
            if rec is not None:
                records[job.id] = rec
                if dist.is_main:
                    update_job_in_run_json(info, job, rec)
                    write_json_atomic(run_dir / RUN_FILE, info)
    except BaseException as e:
        _set_status(info, run_dir, dist, "interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
        raise
    finally:
        overall.close()
    if dist.is_main:
        _finish(spec, run_dir, info, records, prepare_s, t_run)
    dist.barrier()
    return info if dist.is_main else {}


def _where(spec: Spec) -> str:
    return f"{spec.source}: " if spec.source else ""


def _set_status(info: dict[str, Any], run_dir: Path, dist: DistContext, status: str) -> None:
    if dist.is_main:
        info["status"] = status
        info["updated"] = now_iso()
        write_json_atomic(run_dir / RUN_FILE, info)
        log.warning("run %s: %s", info.get("name"), status)


def _finish(spec: Spec, run_dir: Path, info: dict[str, Any], records: dict[str, ResultRecord], prepare_s: float,
            t_run: float) -> None:
    if spec.generalization:
        gen = generalization_table(records, spec.resolutions[0], spec.resolutions[1])
        write_generalization(run_dir, gen)
        info["generalization"] = {"base": spec.resolutions[0], "target": spec.resolutions[1],
                                  "rows": len(gen["rows"]), "file": "generalization.json"}
    info["status"] = "complete"
    info["updated"] = now_iso()
    info["timings_s"] = {"prepare": round(prepare_s, 3), "total": round(time.perf_counter() - t_run, 3)}
    write_json_atomic(run_dir / RUN_FILE, info)
    log.info("run %s complete in %.1f s", spec.name, time.perf_counter() - t_run)


def _loud(dist: DistContext, msg: str) -> None:
    log.warning(msg)
    if dist.is_main:
        bar = "!" * min(100, len(msg) + 4)
        print(f"\n{bar}\n! {msg}\n{bar}\n", file=sys.stderr, flush=True)
