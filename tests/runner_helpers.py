"""Test helpers for the runner: a tiny stand-in evaluator, a model that can kill its own process,
and a script entry point (plain or under torchrun) that runs a spec with the stand-in evaluator.

    python tests/runner_helpers.py SPEC [--real]
    python -m torch.distributed.run --nproc_per_node=2 tests/runner_helpers.py SPEC

The stand-in evaluation is deliberately order-sensitive (float32 running sums over the batches in
the order given) so that a wrong batch order or a lost batch changes the numbers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from matbench.models.base import Inpainter, Requirements, create_model
from matbench.results import MetricValue, ResultRecord
from matbench.runner import RunOptions


@dataclass
class StandinBatch:
    ids: list[str]
    rows: list[dict[str, Any]]
    features: np.ndarray  # [N, 8] float32: fake then real per-channel means and stds inside the hole... of sorts

    def save(self, path: str | os.PathLike) -> None:
        np.savez(path, ids=np.array(self.ids), l1=np.array([r["l1"] for r in self.rows]),
                 hole=np.array([r["hole_ratio"] for r in self.rows]), features=self.features)

    @classmethod
    def load(cls, path: str | os.PathLike) -> StandinBatch:
        z = np.load(path)
        ids = [str(x) for x in z["ids"]]
        rows = [{"id": i, "l1": float(a), "hole_ratio": float(b)} for i, a, b in zip(ids, z["l1"], z["hole"],
                                                                                     strict=True)]
        return cls(ids, rows, z["features"])


class StandinEvaluator:
    calls = 0

    def __init__(self, smoke: bool = True) -> None:
        self.smoke = smoke

    def process_batch(self, ids: Sequence[str], real: torch.Tensor, fake: torch.Tensor,
                      hole: torch.Tensor) -> StandinBatch:
        StandinEvaluator.calls += 1
        r = real.double() / 255
        f = fake.double() / 255
        h = hole.double()
        area = h.sum(dim=(1, 2, 3)).clamp(min=1)
        l1 = ((r - f).abs() * h).sum(dim=(1, 2, 3)) / (3 * area)
        feats = torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3)), r.mean(dim=(2, 3))[:, :1],
                           r.std(dim=(2, 3))[:, :1]], dim=1).float().numpy()
        rows = [{"id": i, "l1": float(a), "hole_ratio": float(b)}
                for i, a, b in zip(ids, l1, h.mean(dim=(1, 2, 3)), strict=True)]
        return StandinBatch(list(ids), rows, feats)

    def finalize(self, batches: list[StandinBatch], job: dict, protocol: dict) -> tuple[ResultRecord, pd.DataFrame]:
        acc = np.zeros(8, dtype=np.float32)
        for b in batches:  # float32 running sum: order-sensitive on purpose
            for row in b.features:
                acc = acc * np.float32(0.999) + row
        rows = [r for b in batches for r in b.rows]
        df = pd.DataFrame(rows)
        metrics = {"l1": MetricValue(float(df["l1"].mean()), n=len(df)),
                   "fid": MetricValue(float(np.abs(acc).sum()), n=len(df), convention="standin")}
        return ResultRecord(job=job, metrics=metrics, protocol={**protocol, "feature_extractor": "standin"},
                            smoke=self.smoke), df


def standin_factory(spec: Any, device: str, smoke: bool) -> StandinEvaluator:
    return StandinEvaluator(smoke)


# ---------------------------------------------------------------------------- a model that can be killed


class Killer(Inpainter):
    """Wraps a real model; logs every call's ids to $MATBENCH_TEST_CALLS and SIGKILLs its own process on
    the call number $MATBENCH_TEST_KILL_AT (1-based, counted per process) before doing the work."""

    def __init__(self, inner: str = "mean-fill", **options: Any) -> None:
        super().__init__()
        self.inner = create_model(inner, **options)
        self.name = f"killer({inner})"
        self.requires = self.inner.requires
        self.smoke = getattr(self.inner, "smoke", False)
        self.n_calls = 0

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        self.n_calls += 1
        kill_at = int(os.environ.get("MATBENCH_TEST_KILL_AT", "0"))
        if kill_at and self.n_calls >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if log := os.environ.get("MATBENCH_TEST_CALLS"):
            with open(log, "a") as f:
                f.write(f"{os.environ.get('RANK', '0')} {sample} {' '.join(ids)}\n")
        return self.inner(images, hole, ids, seed=seed, sample=sample)


class Signaller(Inpainter):
    """mean-fill that sends its own process $MATBENCH_TEST_SIGNAL (e.g. INT = Ctrl-C) on call $MATBENCH_TEST_AT,
    or fails with a RuntimeError there when the signal is FAIL."""

    name = "signaller"

    def __init__(self) -> None:
        super().__init__()
        self.inner = create_model("mean-fill")
        self.n_calls = 0

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        self.n_calls += 1
        if self.n_calls == int(os.environ.get("MATBENCH_TEST_AT", "0")):
            sig = os.environ.get("MATBENCH_TEST_SIGNAL", "INT")
            if sig == "FAIL":
                raise RuntimeError("simulated CUDA error: device-side assert triggered\nsecond line")
            os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))
            import time

            time.sleep(5)  # the signal arrives meanwhile
        return self.inner(images, hole, ids, seed=seed, sample=sample)


def signaller(**_: Any) -> Inpainter:
    return Signaller()


class ConvNet(Inpainter):
    """A tiny convolutional model (one torch module attribute) for the precision / memory-format modes."""

    name = "convnet"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(8, 3, 3, padding=1)).eval()

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        x = torch.cat([images.float() / 127.5 - 1, hole.float()], dim=1)
        y = self.net(x)
        self.last_dtype = y.dtype
        return ((y.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def convnet(**_: Any) -> Inpainter:
    return ConvNet()


def killer(**options: Any) -> Inpainter:
    return Killer(**options)


class Noisy(Inpainter):
    """A stochastic model (per-image, per-sample noise from matbench.seeding) for diversity tests."""

    name = "noisy"
    requires = Requirements(samples=True)

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        from matbench.seeding import generator

        out = []
        for i, x in zip(ids, images, strict=True):
            g = generator(seed, i, "noise", sample)
            out.append(torch.randint(0, 256, x.shape, generator=g, dtype=torch.uint8))
        return torch.stack(out)


def noisy(**_: Any) -> Inpainter:
    return Noisy()


noisy.requires = Requirements(samples=True)  # read by get_model_info for "pkg.mod:factory" references


def main(argv: list[str]) -> int:
    from matbench.runner import RunOptions, run
    from matbench.spec import load_spec

    spec = load_spec(argv[0])
    real = "--real" in argv
    opts = RunOptions(progress=False) if real else RunOptions(evaluator_factory=standin_factory,
                                                              batch_loader=StandinBatch.load, progress=False)
    run(spec, opts)
    return 0


def subprocess_env(**extra: str) -> dict[str, str]:
    """A child test process's environment: tests/ first on PYTHONPATH (these helpers, and the caller's matbench
    after it), one OpenMP thread, plus `extra`."""
    here = str(Path(__file__).resolve().parent)
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]), **extra}


def run_spec_script(spec: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    """This file as a script on SPEC (the stand-in evaluator) in a child process."""
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), str(spec)],
                          env=subprocess_env(**env_extra), capture_output=True, text=True, timeout=300)


def make_images(d: Path, n: int, size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    for i in range(n):
        base = np.stack([(xx * (3 + i)) % 256, (yy * (5 + i)) % 256, (xx + yy) * 2 % 256], axis=-1)
        noise = rng.integers(0, 30, size=(*size, 3))
        Image.fromarray(((base + noise) % 256).astype(np.uint8)).save(d / f"img{i:02d}.png")
    return d


def standin_opts() -> RunOptions:
    return RunOptions(evaluator_factory=standin_factory, batch_loader=StandinBatch.load, progress=False)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    torch.set_num_threads(1)
    sys.exit(main(sys.argv[1:]))
