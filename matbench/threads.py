"""CPU thread budget: DataLoader workers plus intra-op threads never exceed the cores we may use.

Oversubscription is what the system time of a CPU evaluation was made of (torch's and OpenCV's thread
pools, numba's and the BLAS pool each sized to the machine, plus DataLoader workers each starting its own):
idle threads spin and yield against each other. `plan` splits the cores between reading workers (one
thread each) and the compute threads of the main process; `limited` applies the compute count to every
pool we use (torch, OpenCV, numba, BLAS/OpenMP via threadpoolctl) and restores them afterwards;
`worker_init` pins a DataLoader worker to one thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


def available_cores() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup (container) CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


@dataclass(frozen=True)
class ThreadPlan:
    workers: int  # DataLoader worker processes, one thread each
    intra_op: int  # compute threads of the main process
    cores: int

    def describe(self) -> dict:
        return {"cores": self.cores, "workers": self.workers, "intra_op_threads": self.intra_op,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


def plan(workers: int | None = None, threads: int | None = None, cores: int | None = None,
         device: str = "cpu") -> ThreadPlan:
    """Workers + intra-op threads <= cores. None means automatic. On the CPU the networks are the work and
    decoding a 512² PNG costs little next to an image's network passes (figures in docs/evaluation.md), so
    a worker only pays off from 3 cores (one worker, the rest compute; with 1-2 cores images are read
    inline and every core computes). With a GPU, reading is the bottleneck: up to 4 workers, at least one
    core left for the main process. Requests that do not fit are reduced (with a log line), compute
    threads last."""
    cores = available_cores() if cores is None else max(1, int(cores))
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if workers is None:
        on_gpu = not str(device).startswith("cpu")
        w = min(4, cores - 1) if on_gpu else (1 if cores >= 3 else 0)
    else:
        w = min(int(workers), cores - 1)
    t = cores - w if threads is None else min(int(threads), cores - w)
    if (workers is not None and w != workers) or (threads is not None and t != threads):
        log.info("thread plan: %d worker(s) x 1 thread + %d compute thread(s) on %d core(s) (asked %s workers, "
                 "%s threads)", w, t, cores, workers, threads)
    return ThreadPlan(workers=w, intra_op=max(1, t), cores=cores)


def start_numba_keeping_torch() -> None:
    """Start numba's threading layer (once per process) without changing torch's thread count.

    numba's OpenMP layer, when it starts, resets the OpenMP thread count it shares with torch to
    NUMBA_NUM_THREADS (every core) unless torch's count was set in this process (seen with
    OMP_NUM_THREADS=1). Started lazily by the first parallel kernel, it changed torch's count in the middle
    of a run: torch work before the first PSNR/SSIM batch ran on one thread count and after it on another,
    and a model's float sums (so, rarely, an output level) depended on which came first: a batch recomputed
    after a resume differed from the first run."""
    import torch

    n = torch.get_num_threads()
    try:
        import numba

        numba.get_num_threads()  # starts the layer if it has not started
    except ImportError:
        return
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _set_all(n: int, numba_too: bool = True) -> dict:
    """Set every pool to n threads; returns the previous settings."""
    import torch

    if numba_too:
        start_numba_keeping_torch()  # before reading torch's count: starting numba would change it
    prev: dict = {"torch": torch.get_num_threads()}
    torch.set_num_threads(n)
    with contextlib.suppress(ImportError):
        import cv2

        prev["cv2"] = cv2.getNumThreads()
        cv2.setNumThreads(n)
    if numba_too:
        with contextlib.suppress(ImportError):
            import numba

            prev["numba"] = numba.get_num_threads()
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return prev


def _restore(prev: dict) -> None:
    import torch

    torch.set_num_threads(prev["torch"])
    if "cv2" in prev:
        import cv2

        cv2.setNumThreads(prev["cv2"])
    if "numba" in prev:
        import numba

        numba.set_num_threads(prev["numba"])


@contextlib.contextmanager
def limited(n: int) -> Iterator[None]:
    """Run the body with torch, OpenCV, numba and BLAS/OpenMP pools at n threads; restore them after."""
    from threadpoolctl import threadpool_limits

    prev = _set_all(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        _restore(prev)


def worker_init(_worker_id: int) -> None:
    """DataLoader worker_init_fn: one thread per pool (torch already does this for itself in workers)."""
    from threadpoolctl import threadpool_limits

    _set_all(1, numba_too=False)  # workers only decode images; starting numba's pool after fork is needless
    threadpool_limits(limits=1)
