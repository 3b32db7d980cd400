"""Per-image randomness: every random draw for an image comes from (seed, image id, purpose).

Never from the global RNG or from the position in a batch, so results are identical for any
batch size, order, or number of processes.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, image_id: str, *purpose: str | int) -> int:
    """A 63-bit seed from (seed, image id, purpose...), stable across processes and platforms."""
    key = "\x1f".join([str(int(seed)), str(image_id), *map(str, purpose)])
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, image_id: str, *purpose: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded from derive_seed (draw on CPU, then move, for device independence)."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, image_id, *purpose))
    return g


def randn(shape: tuple[int, ...], seed: int, image_id: str, *purpose: str | int) -> torch.Tensor:
    """Standard normal draws on CPU in float32 for one image."""
    return torch.randn(shape, generator=generator(seed, image_id, *purpose), dtype=torch.float32)
