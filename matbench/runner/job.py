"""One job: resume what is on disk, compute the rest through the pipeline, gather, finalize, write."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matbench.distributed import DistContext, batch_ranges, shard
from matbench.errors import MatbenchError
from matbench.features.files import FEATURES_FILE, save_features
from matbench.progress import bar as progress_bar
from matbench.results import METRICS_FILE, ResultRecord, environment_versions, now_iso, read_record
from matbench.runner.inputs import MaskSource, PreparedDataset, PreparedMaskSet, open_dataset
from matbench.runner.models import build_model, model_provenance
from matbench.runner.pipeline import JobContext, Timer, Workers, run_batches
from matbench.runner.plan import Job, job_batch_size
from matbench.runner.records import add_diversity, device_name, write_job_record
from matbench.runner.state import (
    batch_done,
    check_job_state,
    job_dir,
    job_fingerprint,
    load_finished,
    read_json,
    write_state,
)
from matbench.spec import Spec

log = logging.getLogger("matbench.runner")


@dataclass
class RunContext:
    """What every job of a run shares."""

    spec: Spec
    opts: Any  # RunOptions
    run_dir: Path
    dist: DistContext
    device: str
    evaluator: Any
    metric_smoke: bool
    workers: Workers
    overall: Any  # the overall progress bar
    prepare_s: float = 0.0
    weights_hashes: dict[str, str] = field(default_factory=dict)
    scorer: Any = None  # the LPIPS diversity scorer, built once when first needed


@dataclass
class JobRun:
    """One job's progress in this process."""

    rc: RunContext
    job: Job
    ds: PreparedDataset
    pms: PreparedMaskSet
    fp: dict[str, Any]
    ranges: list[range]
    mine: list[int]
    timer: Timer = field(default_factory=Timer)
    results: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    computed: list[int] = field(default_factory=list)
    model: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def save_sample_ids(spec: Spec, ids: list[str]) -> set[str] | None:
    """save_outputs = "sample:N": a fixed, seeded sample of N ids (the same for every job of the dataset)."""
    so = str(spec.save_outputs)
    if not so.startswith("sample:"):
        return None
    n = min(int(so.split(":", 1)[1]), len(ids))
    pick = np.random.default_rng([spec.seed, 20240601]).choice(len(ids), size=n, replace=False)
    return {ids[i] for i in sorted(pick.tolist())}


def run_job(rc: RunContext, job: Job, ds: PreparedDataset, pms: PreparedMaskSet) -> ResultRecord | None:
    """Run (or resume, or skip) one job; its record on rank 0, None elsewhere."""
    spec, dist = rc.spec, rc.dist
    fp = job_fingerprint(spec, job, ds, pms, rc.metric_smoke)
    done = check_job_state(rc.run_dir, job, fp, rc.opts.restart) and _record_current(rc, job) \
        if dist.is_main else None
    done = dist.broadcast(done)
    ranges = batch_ranges(len(ds.ids), job_batch_size(spec, job))
    mine = shard(len(ranges), dist.rank, dist.world_size)
    jr = JobRun(rc, job, ds, pms, fp, ranges, mine)
    if done:
        rc.overall.update(_n_evals(jr, mine))
        log.info("job %s: complete on disk, skipped", job.id)
        return read_record(job_dir(rc.run_dir, job.id) / METRICS_FILE) if dist.is_main else None
    if dist.is_main:
        write_state(rc.run_dir, job.id, {"status": "running", "n_batches": len(ranges),
                                         "batch_size": job_batch_size(spec, job), "fingerprint": fp,
                                         "started": now_iso()})
    dist.barrier()
    t_job = time.perf_counter()
    if isinstance(getattr(rc.evaluator, "timings", None), dict):
        rc.evaluator.timings.clear()  # the evaluator is shared by the run's jobs; keep this job's time only
    _compute_mine(jr)
    gathered = dist.gather({"results": list(jr.results.items()), "timings": dict(jr.timer.seconds),
                            "model": model_provenance(job.model, jr.model, rc.weights_hashes) if jr.model else None,
                            "computed": jr.computed, "rank": dist.rank})
    if not dist.is_main:
        return None
    return _finalize(jr, gathered, t_job)


def _record_current(rc: RunContext, job: Job) -> bool:
    """Whether a complete job's files carry what the spec asks beyond the numbers (its protocol and published
    row, features.npz); if not, the job is finalized again from its batch records (no image is recomputed)."""

    jd = job_dir(rc.run_dir, job.id)
    proto = (read_json(jd / METRICS_FILE) or {}).get("protocol", {}) or {}
    why = []
    if proto.get("protocol") != rc.spec.protocol:
        why.append(f"protocol {proto.get('protocol')!r} -> {rc.spec.protocol!r}")
    elif rc.spec.protocol and job.model.published_row and proto.get("published_row") != job.model.published_row:
        why.append(f"published_row {proto.get('published_row')!r} -> {job.model.published_row!r}")
    if rc.spec.save_features and not (jd / FEATURES_FILE).is_file():
        why.append(f"{FEATURES_FILE} asked for")
    if why:
        log.info("job %s: complete on disk; finalized again from its batches (%s)", job.id, "; ".join(why))
    return not why


def _n_evals(jr: JobRun, ks: list[int]) -> int:
    return sum(len(jr.ranges[k]) for k in ks) * jr.job.model.samples


def _compute_mine(jr: JobRun) -> None:
    """This rank's batches: finished ones loaded from disk, the rest computed; every rank stops if one fails."""
    rc, job = jr.rc, jr.job
    needs_div = job.model.samples > 1
    bar = progress_bar(_n_evals(jr, jr.mine), job.id, "img", rc.opts.progress if rc.dist.is_main else False,
                       position=1, leave=False)
    ok = False
    try:
        todo = []
        for k in jr.mine:
            got = None
            if batch_done(rc.run_dir, job.id, k, needs_div):
                with jr.timer("resume_load"):
                    got = load_finished(rc.run_dir, job.id, k, needs_div, rc.opts.batch_loader)
            if got is None:
                todo.append(k)
                continue
            jr.results[k] = got
            bar.update(_n_evals(jr, [k]))
            rc.overall.update(_n_evals(jr, [k]))
        if len(todo) < len(jr.mine):
            log.info("job %s (rank %d): resumed, %d of %d batches already on disk", job.id, rc.dist.rank,
                     len(jr.mine) - len(todo), len(jr.mine))

        def on_done(k: int, result: Any, div: Any, n: int) -> None:
            with jr.lock:
                jr.results[k] = (result, div)
                jr.computed.append(k)
            bar.update(n)
            rc.overall.update(n)

        run_batches(_job_context(jr, on_done), [(k, jr.ranges[k]) for k in todo], rc.workers)
        ok = True
    finally:
        bar.close()
        if rc.dist.enabled and not ok:
            with contextlib.suppress(Exception):  # tell the other ranks (waiting in all_ok) to stop
                rc.dist.all_ok(False)
    if not rc.dist.all_ok(True):
        raise MatbenchError(f"job {job.id}: another rank failed (see its run.rank*.log)")


def _job_context(jr: JobRun, on_done: Any) -> JobContext:
    rc, job = jr.rc, jr.job

    def get_model() -> Any:
        if jr.model is None:
            with jr.timer("model_load"):
                jr.model = build_model(job.model, rc.device)
        return jr.model

    def get_scorer() -> Any:
        if rc.scorer is None:
            from matbench.diversity import DiversityScorer

            rc.scorer = DiversityScorer(rc.spec.lpips_net, rc.device, rc.metric_smoke)
        return rc.scorer

    return JobContext(spec=rc.spec, run_dir=rc.run_dir, job=job, ids=jr.ds.ids, dataset=open_dataset(job.dataset),
                      masks=MaskSource(jr.pms), evaluator=rc.evaluator, device=rc.device, timer=jr.timer,
                      get_model=get_model, get_scorer=get_scorer, save_ids=save_sample_ids(rc.spec, jr.ds.ids),
                      save_outputs=str(rc.spec.save_outputs) != "none", on_done=on_done)


def _finalize(jr: JobRun, gathered: list[Any], t_job: float) -> ResultRecord:
    rc, job, ds, pms = jr.rc, jr.job, jr.ds, jr.pms
    results = sorted(((k, *v) for g in gathered for k, v in g["results"]), key=lambda t: t[0])
    if [r[0] for r in results] != list(range(len(jr.ranges))):
        raise MatbenchError(f"job {job.id}: batches missing after gather")
    stage_s: dict[str, float] = defaultdict(float)
    for g in gathered:
        for s, v in g["timings"].items():
            stage_s[s] += v
    model_prov = next((g["model"] for g in gathered if g["model"]), None) \
        or model_provenance(job.model, None, rc.weights_hashes)  # all resumed: described without running it
    protocol = {"dataset_manifest_sha256": ds.manifest_sha256, "maskset_sha256": pms.sha256,
                "fid_convention": rc.spec.fid_convention, "n_images": len(ds.ids), "resolution": job.resolution}
    if pms.kind or pms.origin:
        protocol["mask_kind"] = pms.kind or pms.origin
    t0 = time.perf_counter()
    record, per_image = rc.evaluator.finalize([r[1] for r in results], job.describe(), protocol)
    stage_s["finalize"] += time.perf_counter() - t0
    for k, v in protocol.items():
        record.protocol.setdefault(k, v)
    if job.model.samples > 1:
        per_image = add_diversity(record, per_image, results, job.model.samples, rc.spec.lpips_net)
    record.smoke = bool(record.smoke or rc.metric_smoke or model_prov.get("smoke"))
    computed = sorted(k for g in gathered for k in g["computed"])
    record.provenance.update(_provenance(jr, record, model_prov, stage_s, computed, t_job))
    if rc.spec.protocol:
        from matbench import protocols

        protocols.check(rc.spec.protocol, protocols.run_fields(record))  # the conventions the record states
        protocols.annotate(record, rc.spec.protocol, job.model.published_row)
    if rc.spec.save_features:  # before state.json says complete: a job is complete with all its files
        _save_features(jr, len(per_image))
    write_job_record(job_dir(rc.run_dir, job.id), record, per_image,
                     {"n_batches": len(jr.ranges), "batch_size": job_batch_size(rc.spec, job), "fingerprint": jr.fp})
    n = len(ds.ids) * job.model.samples
    wall = time.perf_counter() - t_job
    log.info("job %s: %d images in %.1f s (%.2f img/s); %s", job.id, n, wall, n / max(wall, 1e-9),
             ", ".join(f"{k}={v.value:.4g}" for k, v in record.metrics.items()))
    return record


def _save_features(jr: JobRun, n_rows: int) -> None:

    ev = jr.rc.evaluator
    feats = getattr(ev, "last_features", None)
    if feats is None:
        raise MatbenchError(f"job {jr.job.id}: save_features = true, but the evaluator "
                            f"({type(ev).__name__}) keeps no features")
    save_features(job_dir(jr.rc.run_dir, jr.job.id), feats, getattr(ev, "inception_name", "inception"), n_rows)


def _provenance(jr: JobRun, record: ResultRecord, model_prov: dict, stage_s: dict[str, float],
                computed: list[int], t_job: float) -> dict[str, Any]:
    rc, ds, pms = jr.rc, jr.ds, jr.pms
    return {
        "spec": rc.spec.to_json(),
        "versions": environment_versions(),
        "device": device_name(rc.device),
        "world_size": rc.dist.world_size,
        # metric networks (from the evaluator) and the model, side by side
        "weights": {**record.provenance.get("weights", {}), "model": model_prov},
        "metric_timings_s": dict(record.provenance.get("timings_s", {})),  # rank 0's feature/metric time
        "dataset": {"name": ds.name, "manifest_sha256": ds.manifest_sha256, "n_images": len(ds.ids)},
        "maskset": {"name": pms.name, "sha256": pms.sha256, "kind": pms.kind, "seed": pms.seed},
        "seeds": {"run": rc.spec.seed, "masks": pms.seed, "bootstrap": rc.spec.seed},
        "metric_smoke": rc.metric_smoke,
        "pipeline": {**rc.workers.describe(), "save_outputs": str(rc.spec.save_outputs)},
        "timings_s": {**{k: round(v, 4) for k, v in sorted(stage_s.items())},
                      "job_wall": round(time.perf_counter() - t_job, 4), "prepare_run": round(rc.prepare_s, 4)},
        "batches": {"n": len(jr.ranges), "batch_size": job_batch_size(rc.spec, jr.job), "computed": computed,
                    "resumed": len(jr.ranges) - len(computed)},
        "created": now_iso(),
    }

