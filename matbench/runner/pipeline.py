"""The batch pipeline of one job: input stage -> device stage -> output stage.

input:  decode + prepare the images, read the masks (worker threads, a few batches ahead; pinned memory for CUDA)
device: the model (every sample), per-batch evaluation (features, LPIPS, PSNR/SSIM/L1), diversity
output: PNGs, the diversity record, then the batch record (worker threads behind a bounded queue)

`run_batches(ctx, todo, workers)` runs them overlapped; `workers.serial` runs them one after the other in the
calling thread (the reference: both give bit-identical files, because every batch is computed by the same
functions on the same data; only the scheduling differs). A batch counts as done only when its record
(jobs/<job>/batches/<k>.npz, written last) is on disk, so a kill loses at most the batches in flight.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench.errors import MatbenchError
from matbench.io import save_png, write_json_atomic
from matbench.layout import RunLayout
from matbench.runner.inputs import MaskSource
from matbench.runner.models import precision_context
from matbench.runner.plan import Job
from matbench.runner.state import batch_file, diversity_file, save_batch_result


@dataclass
class Timer:
    """Seconds per stage, summed over threads (thread-safe)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self.lock:
                self.seconds[stage] += dt


@dataclass
class Workers:
    """Thread counts of the input and output stages and how far ahead the input stage reads."""

    input: int = 1
    output: int = 1
    prefetch: int = 2  # batches decoded ahead of the device
    queue: int = 2  # batches waiting for the output stage before the device stage waits (back-pressure)
    serial: bool = False

    def describe(self) -> dict[str, Any]:
        return {"mode": "serial" if self.serial else "pipelined", "input_workers": self.input,
                "output_workers": self.output, "prefetch": self.prefetch, "output_queue": self.queue}


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(serial: bool = False, input_workers: int = 0, output_workers: int = 0,
                 cores: int | None = None) -> Workers:
    """Threads from the cores this process may use (0 = automatic): one core is left to the device stage, the
    rest split between decoding and encoding, so the stages never ask for more threads than cores."""
    c = cores or available_cores()
    spare = max(2, c - 1)
    inp = input_workers or max(1, spare // 2)
    out = output_workers or max(1, spare - inp)
    return Workers(input=inp, output=out, prefetch=max(2, inp + 1), queue=max(2, out + 1), serial=serial)


@dataclass
class BatchIn:
    k: int
    idx: range
    ids: list[str]
    imgs: np.ndarray  # N,H,W,3 uint8 (as prepared; for the input PNGs)
    holes: np.ndarray  # N,H,W bool
    real: torch.Tensor  # N,3,H,W uint8 (pinned when the device is CUDA)
    hole: torch.Tensor  # N,1,H,W bool


@dataclass
class BatchOut:
    inp: BatchIn
    samples: list[torch.Tensor]  # per sample: N,3,H,W uint8 on the CPU
    result: Any  # the evaluator's batch result
    diversity: list[float] | None


@dataclass
class JobContext:
    """Everything the stages of one job need (built by matbench.runner.job)."""

    spec: Any
    run_dir: Path
    job: Job
    ids: list[str]  # the dataset's ids (global index -> id)
    dataset: Any
    masks: MaskSource
    evaluator: Any
    device: str
    timer: Timer
    get_model: Callable[[], Any]  # built on first use (a fully resumed job never loads it)
    get_scorer: Callable[[], Any]  # diversity scorer (samples > 1)
    save_ids: set[str] | None  # ids whose PNGs (inputs, masks, outputs) are written; None: all
    save_outputs: bool  # False: save_outputs = "none" (inputs/masks still follow save_inputs)
    on_done: Callable[[int, Any, list[float] | None, int], None]  # (k, result, diversity, n evaluations)


# --------------------------------------------------------------------------- the stages


def _pin(t: torch.Tensor, device: str) -> torch.Tensor:
    return t.pin_memory() if device.startswith("cuda") and torch.cuda.is_available() else t


def load_stage(ctx: JobContext, k: int, idx: range) -> BatchIn:
    """Input stage: decode and prepare the batch's images, read its masks."""
    ids = [ctx.ids[i] for i in idx]
    res = ctx.job.resolution
    with ctx.timer("load"):
        imgs = np.stack([np.asarray(ctx.dataset.load(i, res, policy=ctx.job.dataset.policy)) for i in ids])
        holes = np.stack([ctx.masks.hole(i) for i in idx])
        if holes.shape[1:] != (res, res):
            raise MatbenchError(f"mask set {ctx.masks.p.name}: masks are {holes.shape[1:]}, expected {res}x{res}")
        real = _pin(torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))), ctx.device)
        hole = _pin(torch.from_numpy(np.ascontiguousarray(holes[:, None])), ctx.device)
    return BatchIn(k, idx, ids, imgs, holes, real, hole)


def device_stage(ctx: JobContext, b: BatchIn) -> BatchOut:
    """Device stage: every sample of the model, the per-batch evaluation, diversity."""
    model = ctx.get_model()
    m = ctx.job.model
    nb = ctx.device.startswith("cuda")
    real = b.real.to(ctx.device, non_blocking=nb)
    hole = b.hole.to(ctx.device, non_blocking=nb)
    samples = []
    precision = getattr(model, "runner_precision", "fp32")
    with ctx.timer("inpaint"), torch.no_grad(), precision_context(precision, ctx.device):
        for s in range(m.samples):
            samples.append(model(real, hole, b.ids, seed=ctx.spec.seed, sample=s).cpu())
    with ctx.timer("evaluate"):
        # The evaluator gets CPU tensors, as in the serial runner; it moves them to its device itself.
        result = ctx.evaluator.process_batch(b.ids, b.real, samples[0], b.hole)
    div = None
    if m.samples > 1:
        with ctx.timer("diversity"):
            div = [float(x) for x in ctx.get_scorer()(samples, b.hole)]
    return BatchOut(b, samples, result, div)


def output_stage(ctx: JobContext, o: BatchOut) -> None:
    """Output stage: PNGs, the diversity record, and last the batch record (which marks the batch done)."""
    with ctx.timer("save"):
        _save_pngs(ctx, o)
        if o.diversity is not None:
            write_json_atomic(diversity_file(ctx.run_dir, ctx.job.id, o.inp.k),
                              {"ids": o.inp.ids, "diversity": o.diversity})
        save_batch_result(o.result, batch_file(ctx.run_dir, ctx.job.id, o.inp.k))
    ctx.on_done(o.inp.k, o.result, o.diversity, len(o.inp.ids) * len(o.samples))


def _save_pngs(ctx: JobContext, o: BatchOut) -> None:
    res = ctx.job.resolution
    lay, job, spec = RunLayout(ctx.run_dir), ctx.job, ctx.spec
    for j, i in enumerate(o.inp.ids):
        if ctx.save_ids is not None and i not in ctx.save_ids:
            continue
        if spec.save_inputs:
            p = lay.input_image(job.dataset.name, res, i)
            if not p.exists():
                save_png(p, np.ascontiguousarray(o.inp.imgs[j]))
            p = lay.mask_image(job.maskset.name, res, i)
            if not p.exists():
                save_png(p, o.inp.holes[j].astype(np.uint8) * 255)
        if not ctx.save_outputs:
            continue
        for s, out in enumerate(o.samples):
            save_png(lay.output_image(job.id, i, s), np.ascontiguousarray(out[j].numpy().transpose(1, 2, 0)))


# --------------------------------------------------------------------------- errors


def _stage_error(stage: str, ctx: JobContext, b: BatchIn | range | None, e: BaseException) -> BaseException:
    """One line naming the stage, the job, the batch and its files; MatbenchErrors already name their file."""
    if not isinstance(e, Exception):
        return e  # KeyboardInterrupt, SystemExit: as they are
    if isinstance(e, MatbenchError) and "\n" not in str(e):
        return e
    k = b.k if isinstance(b, BatchIn) else None
    ids = b.ids if isinstance(b, BatchIn) else ([ctx.ids[i] for i in b] if isinstance(b, range) else [])
    where = f"batch {k}" if k is not None else "batch"
    files = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
    if isinstance(e, OSError) and e.filename:
        what = f"{e.filename}: {e.strerror or e}"
    else:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        what = f"{type(e).__name__}: {first}"
    return MatbenchError(f"job {ctx.job.id}, {where} ({files}), {stage} stage: {what}")


def _staged(stage: str, fn: Callable[..., Any], ctx: JobContext, arg: Any, *more: Any) -> Any:
    try:
        return fn(ctx, arg, *more)
    except BaseException as e:
        err = _stage_error(stage, ctx, arg.inp if isinstance(arg, BatchOut) else arg, e)
        if err is e:
            raise
        raise err from e


# --------------------------------------------------------------------------- executors


def run_batches(ctx: JobContext, todo: list[tuple[int, range]], workers: Workers) -> None:
    """Compute the batches `todo` [(k, index range)]; each finished batch is reported through ctx.on_done."""
    if workers.serial or not todo:
        for k, idx in todo:
            b = _load(ctx, k, idx)
            o = _staged("device", device_stage, ctx, b)
            _staged("output", output_stage, ctx, o)
        return
    _Pipelined(ctx, todo, workers).run()


def _load(ctx: JobContext, k: int, idx: range) -> BatchIn:
    try:
        return load_stage(ctx, k, idx)
    except BaseException as e:
        err = _stage_error("input", ctx, idx, e)
        if err is e:
            raise
        raise err from e


class _Pipelined:
    """Input pool (reads `prefetch` batches ahead) -> device stage in the calling thread -> output pool (at most
    `queue` batches pending: the device stage waits when the disk is slower). The first error anywhere stops the
    run: nothing new starts, the batches already handed to the output stage are finished (so nothing computed is
    lost), then the error is raised."""

    def __init__(self, ctx: JobContext, todo: list[tuple[int, range]], workers: Workers) -> None:
        self.ctx, self.todo, self.w = ctx, todo, workers
        self.pending: deque[Future] = deque()

    def run(self) -> None:
        ctx = self.ctx
        with ThreadPoolExecutor(self.w.input, thread_name_prefix="mb-input") as inp, \
                ThreadPoolExecutor(self.w.output, thread_name_prefix="mb-output") as out:
            loads: deque[Future] = deque()
            nxt = 0
            try:
                for _ in range(len(self.todo)):
                    while nxt < len(self.todo) and len(loads) < self.w.prefetch:
                        loads.append(inp.submit(_load, ctx, *self.todo[nxt]))
                        nxt += 1
                    with ctx.timer("device_wait_input"):
                        b = loads.popleft().result()
                    self._check_outputs()
                    o = _staged("device", device_stage, ctx, b)
                    self._backpressure()
                    self.pending.append(out.submit(_staged, "output", output_stage, ctx, o))
                self._drain()
            except BaseException:
                for f in loads:
                    f.cancel()
                self._drain(quiet=True)
                raise

    def _check_outputs(self) -> None:
        while self.pending and self.pending[0].done():
            self.pending.popleft().result()  # raises the output stage's error

    def _backpressure(self) -> None:
        self._check_outputs()
        with self.ctx.timer("device_wait_output"):
            while len(self.pending) >= self.w.queue:
                self.pending.popleft().result()

    def _drain(self, quiet: bool = False) -> None:
        while self.pending:
            f = self.pending.popleft()
            if quiet:
                with contextlib.suppress(BaseException):
                    f.result()
            else:
                f.result()
