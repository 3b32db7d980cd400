"""torch.distributed scale-out: the same `matbench run` under `torchrun --nproc_per_node=G`.

Work is sharded by BATCH index over one fixed global batching (batch j -> rank j % world), so every
batch is computed exactly as in a single process; per-batch results are gathered to rank 0 with
`gather_object`, and dataset-level metrics are computed once there. Hence a run's numbers do not
depend on the number of processes. gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # True if init_from_env created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def all_ok(self, ok: bool) -> bool:
        """True on every rank iff `ok` on every rank (so one failing rank stops all instead of hanging)."""
        if not self.enabled:
            return ok
        flags: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(flags, bool(ok))
        return all(flags)

    def close(self) -> None:
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False


def init_from_env(device: str = "cpu", timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1); a no-op context otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.distributed.is_initialized():  # the caller set it up
        return DistContext(rank=torch.distributed.get_rank(), world_size=torch.distributed.get_world_size(),
                           local_rank=local_rank, backend=str(torch.distributed.get_backend()))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)  # gather_object on nccl uses the current device
    torch.distributed.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend, owns_group=True)


def shard(n_batches: int, rank: int, world_size: int) -> list[int]:
    """The batch indices rank `rank` computes: j with j % world_size == rank."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad rank {rank} for world size {world_size}")
    return list(range(rank, n_batches, world_size))


def batch_ranges(n_items: int, batch_size: int) -> list[range]:
    """The fixed global batching: [0, B), [B, 2B), ... (the last may be short)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [range(s, min(s + batch_size, n_items)) for s in range(0, n_items, batch_size)]


