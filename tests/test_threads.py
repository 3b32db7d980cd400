"""Thread plan: workers + compute threads never exceed the cores; pools are set and restored."""

from __future__ import annotations

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
