"""Thread plan: workers + compute threads never exceed the cores; pools are set and restored."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import pytest
import torch

from matbench import threads as T


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("workers", [None, 0, 1, 2, 16])
@pytest.mark.parametrize("threads", [None, 1, 4, 100])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_plan_never_exceeds_the_cores(cores, workers, threads, device):
    p = T.plan(workers, threads, cores=cores, device=device)
    assert p.workers >= 0 and p.intra_op >= 1 and p.cores == cores
    assert p.workers + p.intra_op <= max(cores, 1)
    if workers is not None and workers < cores:
        assert p.workers == workers
    if threads is None:
        assert p.workers + p.intra_op == cores  # automatic: every core used, none twice


def test_plan_defaults_and_errors():
    def wt(**kw):
        p = T.plan(**kw)
        return p.workers, p.intra_op

    assert wt(cores=1) == (0, 1) and wt(cores=2) == (0, 2) and wt(cores=3) == (1, 2) and wt(cores=16) == (1, 15)
    assert wt(cores=16, device="cuda:0") == (4, 12) and wt(cores=2, device="cuda") == (1, 1)
    with pytest.raises(ValueError, match="workers"):
        T.plan(-1)
    with pytest.raises(ValueError, match="threads"):
        T.plan(0, 0)
    assert 1 <= T.available_cores() <= (__import__("os").cpu_count() or 1)


def test_limited_sets_every_pool_and_restores_it():
    from threadpoolctl import threadpool_info

    before = (torch.get_num_threads(), cv2.getNumThreads())
    with T.limited(1):
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        try:
            import numba
        except ImportError:
            pass
        else:
            assert numba.get_num_threads() == 1
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before


def _fresh_python(code: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", code], env={**full, **env}, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip()


def test_starting_numba_keeps_torchs_thread_count() -> None:
    """numba's OpenMP layer resets the OpenMP thread count it shares with torch when it starts (once per
    process, at the first parallel kernel; seen with OMP_NUM_THREADS=1): torch work before and after the first
    PSNR/SSIM batch then ran on different thread counts. Only a fresh process shows it. The thread plan's
    `limited` must hold whether or not numba has started."""
    pytest.importorskip("numba")
    code = ("import torch\nfrom matbench.evaluate import Evaluator\n"
            "a = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)\n"
            "h = torch.zeros(2, 1, 32, 32, dtype=torch.bool); h[..., 8:20, 8:20] = True\n"
            "ev = Evaluator(['psnr', 'ssim', 'l1'], smoke=True, cache_dir=False)\n"
            "ev.process_batch(['a', 'b'], a, a.flip(0), h)\n"
            "print(torch.get_num_threads())")
    assert _fresh_python(code, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="2") == "1"
    code = ("import torch\nfrom matbench import threads as T\ntorch.set_num_threads(2)\n"
            "with T.limited(1):\n    print(torch.get_num_threads())\nprint(torch.get_num_threads())")
    assert _fresh_python(code, NUMBA_NUM_THREADS="2").split() == ["1", "2"]


def test_openmp_waits_passively_unless_the_user_says_otherwise():
    """Spinning OpenMP workers multiplied the CPU time of a network pass on a loaded runner (docs/evaluation.md):
    importing matbench sets the passive policy before torch loads OpenMP, and keeps a user's own value."""
    code = "import os, matbench; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
    assert T.plan(workers=0, threads=1, cores=2).describe()["omp_wait_policy"] == os.environ["OMP_WAIT_POLICY"]
