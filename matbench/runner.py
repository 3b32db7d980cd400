"""spec -> jobs -> stages: the benchmark runner behind `matbench run`.

One job = (dataset, mask set, model, resolution); job_id = "{dataset}__{maskset}__{model}__{res}".
Images stream through in fixed global batches: load -> mask -> model -> (outputs saved as PNG) ->
per-batch evaluation (features + per-image metrics, in memory) -> the batch's result written
atomically to jobs/<job>/batches/<k>.npz. A batch whose file exists is never recomputed, so a
killed run resumes where it stopped; dataset-level metrics are computed at the end from all batch
files in index order, giving the same numbers as an uninterrupted run. Under torchrun, batch k
runs on rank k % world and the batch results are gathered to rank 0 (see matbench.distributed).

Run directory:
    run.json, run.log
    jobs/<job_id>/{metrics.json, per_image.csv, state.json, batches/<k>.npz}
    outputs/<job_id>/<id>.png (sample 0), <id>_s<k>.png (extra samples)
    inputs/<dataset>/<res>/<id>.png        ground truth as prepared
    masks/<maskset>/<res>/<id>.png         255 = hole
    masksets/<maskset>/<res>/              generated mask sets (MaskSet directories)
    generalization.json, generalization.csv
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import inspect
import json
import logging
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench import weights as weights_mod
from matbench.distributed import DistContext, batch_ranges, init_from_env, resolve_device, shard
from matbench.errors import MatbenchError, SpecError, WeightsError
from matbench.io import atomic_path, save_png, sha256_bytes, sha256_file, write_json_atomic, write_text_atomic
from matbench.results import METRICS_FILE, PER_IMAGE_FILE, MetricValue, ResultRecord, environment_versions, now_iso
from matbench.spec import DatasetSpec, MaskSetSpec, ModelSpec, Spec

log = logging.getLogger("matbench.runner")

RUN_SCHEMA = "matbench.run/1"
RUN_FILE = "run.json"
LOG_FILE = "run.log"
STATE_FILE = "state.json"


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Job:
    dataset: DatasetSpec
    maskset: MaskSetSpec
    model: ModelSpec
    resolution: int

    @property
    def id(self) -> str:
        return job_id(self.dataset.name, self.maskset.name, self.model.label, self.resolution)

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset.name, "maskset": self.maskset.name, "model": self.model.label,
                "model_name": self.model.name, "resolution": self.resolution, "sample": 0}


def job_id(dataset: str, maskset: str, model: str, resolution: int) -> str:
    return f"{dataset}__{maskset}__{model}__{resolution}"


def plan_jobs(spec: Spec) -> list[Job]:
    """Every (dataset, resolution, mask set, model) combination, in a fixed order."""
    return [Job(d, m, mo, r) for d in spec.datasets for r in spec.resolutions
            for m in spec.masksets for mo in spec.models]


def missing_weights(spec: Spec) -> list[str]:
    """One line per model whose weights are neither given, found in the cache, nor smoke."""
    out = []
    for m in spec.models:
        if m.weights is not None or m.smoke:
            continue
        from matbench.models.base import get_model_info

        for w in get_model_info(m.name).requires.weights:
            try:
                entry = weights_mod.get(w)
            except WeightsError:
                out.append(f"{m.key} ({m.label}): weights {w!r} are not registered")
                continue
            if weights_mod.find(w) is None:
                how = f"download from {entry.url}" if entry.url else (entry.manual or "obtain from the authors")
                out.append(f"{m.key} ({m.label}): {entry.filename} not found ({how}; or set weights = PATH, "
                           "or smoke = true)")
    return out


# --------------------------------------------------------------------------- inputs: datasets and masks


@dataclass
class PreparedDataset:
    name: str
    ids: list[str]
    manifest_sha256: str


@dataclass
class PreparedMaskSet:
    name: str
    resolution: int
    directory: Path | None  # MaskSet directory (generated or imported)
    sha256: str
    kind: str | None
    seed: int


def open_dataset(d: DatasetSpec) -> Any:
    from matbench.data.datasets import Dataset

    return Dataset.open(d.path, preset=d.preset)


def prepare_dataset(d: DatasetSpec) -> PreparedDataset:
    ds = open_dataset(d)
    ids = list(ds.ids)
    if d.limit is not None:
        ids = ids[: d.limit]
    if not ids:
        raise MatbenchError(f"dataset {d.name} ({d.path}) has no images")
    return PreparedDataset(d.name, ids, ds.manifest_sha256())


def _have_maskset_module() -> bool:
    try:
        import matbench.data.maskset  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def prepare_maskset(m: MaskSetSpec, resolution: int, n: int, run_dir: Path) -> PreparedMaskSet:
    """Generated sets are written once as MaskSet directories under RUN_DIR/masksets; imported ones are checked."""
    if m.path is None and not _have_maskset_module():
        # Without the MaskSet module, generated masks are drawn on the fly; hash = sha256 of the packed bits.
        h = hashlib.sha256(f"{m.kind}|{resolution}|{m.seed}|{n}".encode())
        src = MaskSource(PreparedMaskSet(m.name, resolution, None, "", m.kind, m.seed))
        for i in range(n):
            h.update(np.packbits(src.hole(i)).tobytes())
        return PreparedMaskSet(m.name, resolution, None, h.hexdigest(), m.kind, m.seed)
    from matbench.data.masks import generator_params
    from matbench.data.maskset import MaskSet, make_maskset

    if m.path is not None:
        ms = MaskSet.open(m.path)
        if int(ms.resolution) != resolution:
            raise SpecError(f"masksets[{m.name}].path: {m.path} holds {ms.resolution}px masks, "
                            f"the run needs {resolution}px (add a mask set per resolution or use kind =)")
        if len(ms.names) < n:
            raise SpecError(f"masksets[{m.name}].path: {m.path} has {len(ms.names)} masks for {n} images")
        return PreparedMaskSet(m.name, resolution, Path(m.path), ms.sha256, None, m.seed)
    out = run_dir / "masksets" / m.name / str(resolution)
    ms = None
    if out.is_dir():
        with contextlib.suppress(Exception):
            ms = MaskSet.open(out)
        if ms is not None and (len(ms.names) != n or ms.meta.get("params", {}).get("hole_range")
                               != generator_params(m.kind, resolution, m.hole_range).get("hole_range")):
            ms = None
        if ms is None:
            shutil.rmtree(out)
    if ms is None:
        make_maskset(m.kind, n, resolution, m.seed, out, hole_range=m.hole_range)
        ms = MaskSet.open(out)
    return PreparedMaskSet(m.name, resolution, out, ms.sha256, m.kind, m.seed)


class MaskSource:
    """Mask i (the i-th image of the dataset) of a prepared mask set, as bool HxW (True = hole)."""

    def __init__(self, p: PreparedMaskSet) -> None:
        self.p = p
        self.ms = None
        if p.directory is not None:
            from matbench.data.maskset import MaskSet

            self.ms = MaskSet.open(p.directory)

    def __len__(self) -> int:
        return len(self.ms.names) if self.ms is not None else -1

    def hole(self, index: int) -> np.ndarray:
        if self.ms is None:
            from matbench.data.masks import generate_mask

            return np.asarray(generate_mask(self.p.kind, self.p.resolution, self.p.seed + index), dtype=bool)
        return np.asarray(self.ms.hole(index), dtype=bool)


# --------------------------------------------------------------------------- models and evaluators


def build_model(m: ModelSpec, device: str) -> Any:
    from matbench.models.base import create_model, get_model_info

    info = get_model_info(m.name)
    opts: dict[str, Any] = dict(m.options)
    if m.weights is not None:
        opts["weights"] = str(m.weights)
    if m.smoke:
        opts["smoke"] = True
    params = inspect.signature(info.factory).parameters
    takes_device = "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_device:
        opts["device"] = device
    try:
        model = create_model(m.name, **opts)
    except WeightsError as e:
        raise WeightsError(f"{m.key} ({m.label}): {e}") from None
    if not takes_device:
        model = model.to(device)
    return model


def model_provenance(m: ModelSpec, model: Any, hashes: dict[str, str]) -> dict[str, Any]:
    prov = {"name": m.name, "label": m.label, "options": m.options, "samples": m.samples,
            "smoke": bool(getattr(model, "smoke", False) or m.smoke)}
    with contextlib.suppress(Exception):
        prov.update(model.provenance())
    if m.weights is not None:
        key = str(m.weights)
        if key not in hashes:
            hashes[key] = sha256_file(m.weights)
        prov["weights_path"] = key
        prov["weights_sha256"] = hashes[key]
    return prov


EvaluatorFactory = Callable[[Spec, str, bool], Any]


def default_evaluator(spec: Spec, device: str, smoke: bool) -> Any:
    from matbench.evaluate import Evaluator

    return Evaluator(spec.metrics, device=device, smoke=smoke, cache_dir=spec.cache_dir,
                     fid_convention=spec.fid_convention, lpips_net=spec.lpips_net, n_bootstrap=spec.n_bootstrap,
                     seed=spec.seed, batch_size=spec.batch_size)


def _probe_batch() -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8, generator=g)
    hole = torch.zeros(2, 1, 128, 128, dtype=torch.bool)
    hole[:, :, 32:96, 32:96] = True
    return ["probe0", "probe1"], real, real.clone(), hole


def make_evaluator(spec: Spec, device: str, factory: EvaluatorFactory) -> tuple[Any, bool]:
    """(evaluator, smoke). smoke = "auto": real metric networks if their weights load, smoke otherwise."""
    if spec.smoke != "auto":
        return factory(spec, device, bool(spec.smoke)), bool(spec.smoke)
    try:
        ev = factory(spec, device, False)
        ev.process_batch(*_probe_batch())  # loads every network it needs
        return ev, False
    except WeightsError as e:
        log.warning("metric network weights unavailable (%s)", e)
        return factory(spec, device, True), True


# --------------------------------------------------------------------------- state on disk


def job_dir(run_dir: Path, jid: str) -> Path:
    return run_dir / "jobs" / jid


def batch_file(run_dir: Path, jid: str, k: int) -> Path:
    return job_dir(run_dir, jid) / "batches" / f"{k}.npz"


def diversity_file(run_dir: Path, jid: str, k: int) -> Path:
    return job_dir(run_dir, jid) / "batches" / f"{k}.diversity.json"


def batch_done(run_dir: Path, jid: str, k: int, needs_diversity: bool) -> bool:
    # The npz is written last, so its presence means the whole batch (outputs, diversity) is on disk.
    return batch_file(run_dir, jid, k).is_file() and (not needs_diversity or diversity_file(run_dir, jid, k).is_file())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _save_batch_result(br: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        br.save(tmp)


def _load_batch_result(path: Path) -> Any:
    from matbench.evaluate import BatchResult

    return BatchResult.load(path)


# --------------------------------------------------------------------------- the run


@dataclass
class RunOptions:
    restart: bool = False  # discard jobs whose stored configuration differs from the spec
    evaluator_factory: EvaluatorFactory = default_evaluator
    batch_loader: Callable[[Path], Any] = _load_batch_result
    progress: bool = True


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t0


def run(spec: Spec, options: RunOptions | None = None) -> dict[str, Any]:
    """Run every job of the spec (resuming what is on disk); return run.json's content (on rank 0)."""
    opts = options or RunOptions()
    run_dir = Path(spec.output)
    import os

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(spec.device, local_rank)
    dist = init_from_env(device)
    handler = _attach_log(run_dir, dist)
    try:
        return _run(spec, opts, run_dir, device, dist)
    finally:
        logging.getLogger("matbench").removeHandler(handler)
        handler.close()
        dist.close()


def _attach_log(run_dir: Path, dist: DistContext) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    name = LOG_FILE if dist.is_main else f"run.rank{dist.rank}.log"
    h = logging.FileHandler(run_dir / name, encoding="utf-8")
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    h.setLevel(logging.INFO)
    root = logging.getLogger("matbench")
    root.addHandler(h)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return h


def _run(spec: Spec, opts: RunOptions, run_dir: Path, device: str, dist: DistContext) -> dict[str, Any]:
    t_run = time.perf_counter()
    jobs = plan_jobs(spec)
    missing = missing_weights(spec)
    if missing:
        raise WeightsError("missing model weights:\n  " + "\n  ".join(missing))
    timer = _Timer()

    # ---- prepare (rank 0): dataset manifests and ids, mask sets; then every rank uses rank 0's facts
    facts: Any = None
    err: str | None = None
    if dist.is_main:
        try:
            with timer("prepare"):
                facts = _prepare(spec, run_dir)
        except Exception as e:
            if not dist.enabled:
                raise
            err = str(e) if isinstance(e, MatbenchError) else f"{type(e).__name__}: {e}"
            dist.broadcast((None, err))  # the other ranks stop too instead of waiting forever
            raise
    facts, err = dist.broadcast((facts, err))
    if err is not None:
        raise MatbenchError(f"rank 0 failed to prepare the inputs: {err}")
    datasets: dict[str, PreparedDataset] = facts["datasets"]
    masksets: dict[tuple[str, int], PreparedMaskSet] = facts["masksets"]

    evaluator, metric_smoke = make_evaluator(spec, device, opts.evaluator_factory)
    if metric_smoke:
        _loud(dist, "SMOKE MODE: metric networks (Inception/LPIPS) run on random weights — "
                    "the numbers are NOT comparable to any paper")
    run_info = _initial_run_json(spec, run_dir, jobs, device, dist, metric_smoke)
    if dist.is_main:
        write_json_atomic(run_dir / RUN_FILE, run_info)
        log.info("run %s: %d jobs on %s (world size %d) -> %s", spec.name, len(jobs), device, dist.world_size,
                 run_dir)

    per_rank_images = 0
    plans = []
    for job in jobs:
        n = len(datasets[job.dataset.name].ids)
        ranges = batch_ranges(n, spec.batch_size)
        mine = shard(len(ranges), dist.rank, dist.world_size)
        per_rank_images += sum(len(ranges[k]) for k in mine) * job.model.samples
        plans.append((job, ranges, mine))

    overall = _bar(total=per_rank_images, desc="all jobs", unit="img", position=0,
                   disable=not (opts.progress and dist.is_main))
    weights_hashes: dict[str, str] = {}
    records: dict[str, ResultRecord] = {}
    shared: dict[str, Any] = {"scorer": None}  # the LPIPS diversity scorer, built once when first needed
    try:
        for job, ranges, mine in plans:
            rec = _run_job(spec, opts, run_dir, dist, device, job, ranges, mine, datasets[job.dataset.name],
                           masksets[(job.maskset.name, job.resolution)], evaluator, metric_smoke,
                           weights_hashes, overall, shared, timer_prepare=timer.seconds.get("prepare", 0.0))
            if rec is not None:
                records[job.id] = rec
                if dist.is_main:
                    _update_job_in_run_json(run_info, job, rec)
                    write_json_atomic(run_dir / RUN_FILE, run_info)
    except BaseException:
        if dist.is_main:
            run_info["status"] = "failed"
            run_info["updated"] = now_iso()
            write_json_atomic(run_dir / RUN_FILE, run_info)
        raise
    finally:
        overall.close()

    if dist.is_main:
        if spec.generalization:
            gen = generalization_table(records, spec.resolutions[0], spec.resolutions[1])
            write_generalization(run_dir, gen)
            run_info["generalization"] = {"base": spec.resolutions[0], "target": spec.resolutions[1],
                                          "rows": len(gen["rows"]), "file": "generalization.json"}
        run_info["status"] = "complete"
        run_info["updated"] = now_iso()
        run_info["timings_s"] = {"prepare": round(timer.seconds.get("prepare", 0.0), 3),
                                 "total": round(time.perf_counter() - t_run, 3)}
        write_json_atomic(run_dir / RUN_FILE, run_info)
        log.info("run %s complete in %.1f s", spec.name, time.perf_counter() - t_run)
    dist.barrier()
    return run_info if dist.is_main else {}


def _prepare(spec: Spec, run_dir: Path) -> dict[str, Any]:
    datasets = {}
    for d in spec.datasets:
        datasets[d.name] = prepare_dataset(d)
        log.info("dataset %s: %d images, manifest %s", d.name, len(datasets[d.name].ids),
                 datasets[d.name].manifest_sha256[:12])
    # One generated set per (mask set, resolution), as long as the largest dataset; mask i goes with image i,
    # so every dataset (and model) sees the same masks.
    n_max = max(len(d.ids) for d in datasets.values())
    masksets = {}
    for m in spec.masksets:
        for r in spec.resolutions:
            masksets[(m.name, r)] = prepare_maskset(m, r, n_max, run_dir)
            log.info("mask set %s at %d px: sha256 %s", m.name, r, masksets[(m.name, r)].sha256[:12])
    return {"datasets": datasets, "masksets": masksets}


def _loud(dist: DistContext, msg: str) -> None:
    log.warning(msg)
    if dist.is_main:
        import sys

        bar = "!" * min(100, len(msg) + 4)
        print(f"\n{bar}\n! {msg}\n{bar}\n", file=sys.stderr, flush=True)


def _bar(**kw: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(dynamic_ncols=True, **kw)


def job_fingerprint(spec: Spec, job: Job, ds: PreparedDataset, ms: PreparedMaskSet, metric_smoke: bool) -> dict:
    """Everything that can change a job's numbers; a stored job is reused only if this is equal."""
    m = job.model
    return {
        "dataset": {"name": ds.name, "preset": job.dataset.preset, "policy": job.dataset.policy,
                    "manifest_sha256": ds.manifest_sha256, "n_images": len(ds.ids),
                    "ids_sha256": sha256_bytes("\n".join(ds.ids).encode())},
        "maskset": {"name": ms.name, "sha256": ms.sha256, "kind": ms.kind, "seed": ms.seed},
        "model": {"name": m.name, "weights": str(m.weights) if m.weights else None, "smoke": m.smoke,
                  "samples": m.samples, "options": m.options},
        "resolution": job.resolution, "seed": spec.seed, "batch_size": spec.batch_size,
        "metrics": spec.metrics, "metric_smoke": metric_smoke, "fid_convention": spec.fid_convention,
        "lpips_net": spec.lpips_net, "n_bootstrap": spec.n_bootstrap,
    }


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(prefix + k)
    return out


def _check_job_state(run_dir: Path, job: Job, fp: dict, restart: bool) -> bool:
    """True if the job is complete on disk with this configuration; raise/clear if it differs."""
    jd = job_dir(run_dir, job.id)
    state = _read_json(jd / STATE_FILE)
    if state is None:
        if jd.exists() and restart:
            shutil.rmtree(jd)
        return False
    stored = json.loads(json.dumps(state.get("fingerprint", {})))
    current = json.loads(json.dumps(fp, default=str))
    if stored != current:
        if not restart:
            raise SpecError(f"{jd}: holds results of a different configuration "
                            f"({', '.join(_diff_keys(stored, current)) or 'fingerprint'} changed); "
                            "use another output directory or --restart to discard them")
        shutil.rmtree(jd)
        return False
    return state.get("status") == "complete" and (jd / METRICS_FILE).is_file()


def _run_job(spec: Spec, opts: RunOptions, run_dir: Path, dist: DistContext, device: str, job: Job,
             ranges: list[range], mine: list[int], ds: PreparedDataset, pms: PreparedMaskSet, evaluator: Any,
             metric_smoke: bool, weights_hashes: dict[str, str], overall: Any, shared: dict[str, Any],
             timer_prepare: float) -> ResultRecord | None:
    from matbench.results import read_record

    fp = job_fingerprint(spec, job, ds, pms, metric_smoke)
    done = None
    if dist.is_main:
        done = _check_job_state(run_dir, job, fp, opts.restart)
    done = dist.broadcast(done)
    jd = job_dir(run_dir, job.id)
    n_img_mine = sum(len(ranges[k]) for k in mine) * job.model.samples
    if done:
        overall.update(n_img_mine)
        log.info("job %s: complete on disk, skipped", job.id)
        return read_record(jd / METRICS_FILE) if dist.is_main else None
    if dist.is_main:
        write_json_atomic(jd / STATE_FILE, {"status": "running", "job_id": job.id, "n_batches": len(ranges),
                                            "batch_size": spec.batch_size, "fingerprint": fp,
                                            "started": now_iso()})
    dist.barrier()

    timer = _Timer()
    t_job = time.perf_counter()
    if isinstance(getattr(evaluator, "timings", None), dict):
        evaluator.timings.clear()  # the evaluator is shared by the run's jobs; keep this job's time only
    needs_div = job.model.samples > 1
    todo = [k for k in mine if not batch_done(run_dir, job.id, k, needs_div)]
    skipped = len(mine) - len(todo)
    results: list[tuple[int, Any, list[float] | None]] = []
    bar = _bar(total=n_img_mine, desc=job.id, unit="img", position=1, leave=False,
               disable=not (opts.progress and dist.is_main))
    model = None
    prov: dict[str, Any] = {}
    ok = True
    try:
        dataset = open_dataset(job.dataset)
        masks = MaskSource(pms)
        for k in mine:
            n_b = len(ranges[k]) * job.model.samples
            if k not in todo:
                with timer("resume_load"):
                    results.append((k, opts.batch_loader(batch_file(run_dir, job.id, k)),
                                    _read_div(diversity_file(run_dir, job.id, k)) if needs_div else None))
                bar.update(n_b)
                overall.update(n_b)
                continue
            if model is None:
                with timer("model_load"):
                    model = build_model(job.model, device)
                prov = model_provenance(job.model, model, weights_hashes)
                if needs_div and shared["scorer"] is None:
                    from matbench.diversity import DiversityScorer

                    shared["scorer"] = DiversityScorer(spec.lpips_net, device, metric_smoke)
            results.append(_run_batch(spec, run_dir, job, k, ranges[k], ds, dataset, masks, model, evaluator,
                                      shared["scorer"], timer, device))
            bar.update(n_b)
            overall.update(n_b)
    except BaseException:
        ok = False
        raise
    finally:
        bar.close()
        if dist.enabled and not ok:
            # Tell the other ranks (waiting in all_ok below) to stop instead of hanging.
            with contextlib.suppress(Exception):
                dist.all_ok(False)
    if not dist.all_ok(True):
        raise MatbenchError(f"job {job.id}: another rank failed (see its run.rank*.log)")
    if skipped:
        log.info("job %s (rank %d): resumed, %d of %d batches already on disk", job.id, dist.rank, skipped,
                 len(mine))

    gathered = dist.gather({"results": results, "timings": dict(timer.seconds), "model": prov,
                            "computed": [k for k in todo], "rank": dist.rank})
    if not dist.is_main:
        return None
    assert gathered is not None
    all_results = sorted((r for g in gathered for r in g["results"]), key=lambda t: t[0])
    if [r[0] for r in all_results] != list(range(len(ranges))):
        raise MatbenchError(f"job {job.id}: batches missing after gather")
    stage_s: dict[str, float] = defaultdict(float)
    for g in gathered:
        for s, v in g["timings"].items():
            stage_s[s] += v
    model_prov = next((g["model"] for g in gathered if g["model"]), None)
    if model_prov is None:  # everything was resumed: describe the model without running it
        model_prov = {"name": job.model.name, "label": job.model.label, "options": job.model.options,
                      "samples": job.model.samples, "smoke": job.model.smoke}
        if job.model.weights is not None:
            model_prov["weights_path"] = str(job.model.weights)
            model_prov["weights_sha256"] = weights_hashes.setdefault(str(job.model.weights),
                                                                     sha256_file(job.model.weights))

    protocol = {"dataset_manifest_sha256": ds.manifest_sha256, "maskset_sha256": pms.sha256,
                "fid_convention": spec.fid_convention, "n_images": len(ds.ids), "resolution": job.resolution}
    t0 = time.perf_counter()
    record, per_image = evaluator.finalize([r[1] for r in all_results], job.describe(), protocol)
    stage_s["finalize"] += time.perf_counter() - t0
    metric_timings = dict(record.provenance.get("timings_s", {}))  # rank 0's share of feature/metric time
    for k, v in protocol.items():
        record.protocol.setdefault(k, v)

    if needs_div:
        ids_all = [i for r in all_results for i in r[1].ids]
        div = np.array([v for r in all_results for v in r[2]], dtype=np.float64)
        record.metrics["diversity"] = MetricValue(value=float(div.mean()), n=len(div), convention="lpips-hole",
                                                  extra={"samples": job.model.samples, "net": spec.lpips_net})
        per_image = per_image.copy()
        div_by_id = dict(zip(ids_all, div.tolist(), strict=True))
        per_image["diversity"] = [div_by_id.get(str(i), math.nan) for i in per_image["id"]] \
            if "id" in per_image.columns else div

    record.smoke = bool(record.smoke or metric_smoke or model_prov.get("smoke"))
    record.provenance.update({
        "spec": spec.to_json(),
        "versions": environment_versions(),
        "device": _device_name(device),
        "world_size": dist.world_size,
        # metric networks (from the evaluator) and the model, side by side
        "weights": {**record.provenance.get("weights", {}), "model": model_prov},
        "metric_timings_s": metric_timings,
        "dataset": {"name": ds.name, "manifest_sha256": ds.manifest_sha256, "n_images": len(ds.ids)},
        "maskset": {"name": pms.name, "sha256": pms.sha256, "kind": pms.kind, "seed": pms.seed},
        "seeds": {"run": spec.seed, "masks": pms.seed, "bootstrap": spec.seed},
        "metric_smoke": metric_smoke,
        "timings_s": {**{k: round(v, 4) for k, v in sorted(stage_s.items())},
                      "job_wall": round(time.perf_counter() - t_job, 4), "prepare_run": round(timer_prepare, 4)},
        "batches": {"n": len(ranges), "batch_size": spec.batch_size,
                    "computed": sorted(k for g in gathered for k in g["computed"]),
                    "resumed": len(ranges) - sum(len(g["computed"]) for g in gathered)},
        "created": now_iso(),
    })
    jd.mkdir(parents=True, exist_ok=True)
    with atomic_path(jd / PER_IMAGE_FILE) as tmp:
        per_image.to_csv(tmp, index=False)
    from matbench.results import write_record

    write_record(jd, record)
    write_json_atomic(jd / STATE_FILE, {"status": "complete", "job_id": job.id, "n_batches": len(ranges),
                                        "batch_size": spec.batch_size, "fingerprint": fp, "finished": now_iso()})
    n = len(ds.ids) * job.model.samples
    wall = time.perf_counter() - t_job
    log.info("job %s: %d images in %.1f s (%.2f img/s); %s", job.id, n, wall, n / max(wall, 1e-9),
             ", ".join(f"{k}={v.value:.4g}" for k, v in record.metrics.items()))
    return record


def _read_div(path: Path) -> list[float]:
    d = _read_json(path)
    if d is None:
        raise MatbenchError(f"{path}: unreadable diversity record (delete it to recompute its batch)")
    return list(d["diversity"])


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    import platform

    return f"{device} ({platform.processor() or platform.machine()})"


def _run_batch(spec: Spec, run_dir: Path, job: Job, k: int, idx: range, ds: PreparedDataset, dataset: Any,
               masks: MaskSource, model: Any, evaluator: Any, scorer: Any, timer: _Timer,
               device: str) -> tuple[int, Any, list[float] | None]:
    ids = [ds.ids[i] for i in idx]
    res = job.resolution
    with timer("load"):
        imgs = np.stack([np.asarray(dataset.load(i, res, policy=job.dataset.policy)) for i in ids])
        holes = np.stack([masks.hole(i) for i in idx])
        if holes.shape[1:] != (res, res):
            raise MatbenchError(f"mask set {pms_name(masks)}: masks are {holes.shape[1:]}, expected {res}x{res}")
        real = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)))
        hole = torch.from_numpy(holes[:, None])
    with timer("inpaint"), torch.no_grad():
        fake = model(real, hole, ids, seed=spec.seed, sample=0).cpu()
    samples = [fake]
    if job.model.samples > 1:
        with timer("inpaint"), torch.no_grad():
            for s in range(1, job.model.samples):
                samples.append(model(real, hole, ids, seed=spec.seed, sample=s).cpu())
    with timer("save"):
        _save_pngs(spec, run_dir, job, ids, imgs, holes, samples)
    with timer("evaluate"):
        br = evaluator.process_batch(ids, real, fake, hole)
    div = None
    if job.model.samples > 1:
        with timer("diversity"):
            div = [float(x) for x in scorer(samples, hole)]
        write_json_atomic(diversity_file(run_dir, job.id, k), {"ids": ids, "diversity": div})
    with timer("save"):
        _save_batch_result(br, batch_file(run_dir, job.id, k))
    return (k, br, div)


def pms_name(masks: MaskSource) -> str:
    return masks.p.name


def _save_pngs(spec: Spec, run_dir: Path, job: Job, ids: list[str], imgs: np.ndarray, holes: np.ndarray,
               samples: list[torch.Tensor]) -> None:
    res = str(job.resolution)
    for j, i in enumerate(ids):
        if spec.save_inputs:
            p = run_dir / "inputs" / job.dataset.name / res / f"{i}.png"
            if not p.exists():
                save_png(p, np.ascontiguousarray(imgs[j]))
            p = run_dir / "masks" / job.maskset.name / res / f"{i}.png"
            if not p.exists():
                save_png(p, holes[j].astype(np.uint8) * 255)
        if spec.save_outputs:
            for s, out in enumerate(samples):
                name = f"{i}.png" if s == 0 else f"{i}_s{s}.png"
                save_png(run_dir / "outputs" / job.id / name, np.ascontiguousarray(out[j].numpy().transpose(1, 2, 0)))


# --------------------------------------------------------------------------- run.json


def _initial_run_json(spec: Spec, run_dir: Path, jobs: list[Job], device: str, dist: DistContext,
                      metric_smoke: bool) -> dict[str, Any]:
    prev = _read_json(run_dir / RUN_FILE) if dist.is_main else None
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
        "device": _device_name(device),
        "world_size": dist.world_size,
        "versions": environment_versions(),
        "spec": spec.to_json(),
        "spec_toml": spec.raw,
        "jobs": [{**j.describe(), "id": j.id, "status": "pending"} for j in jobs],
        "summary": {},
    }


def _update_job_in_run_json(info: dict[str, Any], job: Job, rec: ResultRecord) -> None:
    for j in info["jobs"]:
        if j["id"] == job.id:
            j["status"] = "complete"
            j["smoke"] = rec.smoke
    info["summary"][job.id] = {k: v.value for k, v in rec.metrics.items()}
    info["updated"] = now_iso()


# --------------------------------------------------------------------------- 512 -> 1024 generalization


def generalization_table(records: dict[str, ResultRecord], base: int, target: int) -> dict[str, Any]:
    """Per (dataset, mask set, model) and metric: value at base and target resolution, absolute and relative delta."""
    by_key: dict[tuple[str, str, str], dict[int, ResultRecord]] = defaultdict(dict)
    for rec in records.values():
        j = rec.job
        by_key[(j["dataset"], j["maskset"], j["model"])][int(j["resolution"])] = rec
    rows = []
    for (d, m, mo), recs in sorted(by_key.items()):
        if base not in recs or target not in recs:
            continue
        a, b = recs[base], recs[target]
        for metric in [k for k in a.metrics if k in b.metrics]:
            va, vb = a.metrics[metric].value, b.metrics[metric].value
            rel = (vb - va) / abs(va) if va not in (0, None) and math.isfinite(va) else None
            rows.append({"dataset": d, "maskset": m, "model": mo, "metric": metric, "base_resolution": base,
                         "target_resolution": target, "base": va, "target": vb, "delta": vb - va,
                         "relative": rel, "relative_percent": None if rel is None else 100.0 * rel,
                         "smoke": bool(a.smoke or b.smoke)})
    return {"schema": "matbench.generalization/1", "base": base, "target": target, "rows": rows}


def write_generalization(run_dir: Path, table: dict[str, Any]) -> None:
    write_json_atomic(run_dir / "generalization.json", table)
    cols = ["dataset", "maskset", "model", "metric", "base_resolution", "target_resolution", "base", "target",
            "delta", "relative", "relative_percent", "smoke"]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in table["rows"]:
        w.writerow({c: r[c] for c in cols})
    write_text_atomic(run_dir / "generalization.csv", buf.getvalue())


# --------------------------------------------------------------------------- dry run


def dry_run(spec: Spec) -> str:
    """What would run: jobs, image counts (per job and in total), missing weights. Touches no outputs."""
    lines = [f"run {spec.name!r} -> {spec.output}", f"device {spec.device}, batch size {spec.batch_size}, "
             f"resolutions {spec.resolutions}" + (" (generalization table)" if spec.generalization else ""),
             f"metrics: {', '.join(spec.metrics)}; metric networks: "
             + {True: "SMOKE (random weights)", False: "released weights", "auto": "auto"}[spec.smoke]]
    counts: dict[str, int | str] = {}
    for d in spec.datasets:
        try:
            ds = open_dataset(d)
            n = len(ds.ids)
            counts[d.name] = min(n, d.limit) if d.limit else n
        except MatbenchError as e:
            counts[d.name] = f"unreadable: {e}"
        except ImportError:
            counts[d.name] = "?"
    total = 0
    lines.append("jobs:")
    for job in plan_jobs(spec):
        n = counts[job.dataset.name]
        status = ""
        state = _read_json(job_dir(spec.output, job.id) / STATE_FILE)
        if state:
            status = f"  [{state.get('status')} on disk]"
        if isinstance(n, int):
            total += n * job.model.samples
            extra = f" x {job.model.samples} samples" if job.model.samples > 1 else ""
            lines.append(f"  {job.id}: {n} images{extra}{status}")
        else:
            lines.append(f"  {job.id}: {n}{status}")
    lines.append(f"total: {len(plan_jobs(spec))} jobs, {total} model evaluations (images x samples)")
    missing = missing_weights(spec)
    lines.append("missing weights: " + ("none" if not missing else ""))
    lines += [f"  {m}" for m in missing]
    return "\n".join(lines)
