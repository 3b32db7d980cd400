"""Pluralistic diversity: k samples per image, mean pairwise LPIPS between samples inside the hole.

Known pixels are identical between samples (the Inpainter contract pastes them back), so the
comparison is restricted to the hole: both samples are cropped to the hole's bounding box
(grown to at least MIN_CROP pixels per side so the LPIPS network has enough support) and LPIPS is
taken on the crops. The score of an image is the mean over all k(k-1)/2 pairs; the dataset score
is the mean over images (higher = more diverse).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

MIN_CROP = 64


def hole_box(hole: torch.Tensor, min_size: int = MIN_CROP) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the hole [1,H,W] or [H,W], grown to min_size and kept inside the image."""
    h2 = hole.reshape(hole.shape[-2:])
    H, W = h2.shape
    rows = torch.nonzero(h2.any(dim=1)).flatten()
    cols = torch.nonzero(h2.any(dim=0)).flatten()
    if rows.numel() == 0:  # no hole: the whole image (samples are then identical, score 0)
        return 0, H, 0, W
    t, b, l, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    t, b = _grow(t, b, min(min_size, H), H)
    l, r = _grow(l, r, min(min_size, W), W)
    return t, b, l, r


def _grow(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    if hi - lo >= size:
        return lo, hi
    extra = size - (hi - lo)
    lo = max(0, lo - extra // 2)
    hi = min(limit, lo + size)
    lo = hi - size
    return lo, hi


def pairwise_diversity(samples: Sequence[torch.Tensor], hole: torch.Tensor,
                       distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Per-image mean pairwise distance between k >= 2 samples (each uint8 [N,3,H,W]) inside the hole.

    `distance(a_u8, b_u8) -> [n]` is e.g. matbench.metrics.lpips.LPIPS; it is called per image on
    the hole crop (crops differ in size between images).
    """
    k = len(samples)
    if k < 2:
        raise ValueError("diversity needs at least 2 samples per image")
    n = samples[0].shape[0]
    out = np.zeros(n, dtype=np.float64)
    for i in range(n):
        t, b, l, r = hole_box(hole[i])
        crops = [s[i:i + 1, :, t:b, l:r] for s in samples]
        pairs = list(itertools.combinations(range(k), 2))
        a = torch.cat([crops[p] for p, _ in pairs])
        bb = torch.cat([crops[q] for _, q in pairs])
        d = distance(a, bb)
        out[i] = float(torch.as_tensor(d, dtype=torch.float64).reshape(-1).mean())
    return out


class DiversityScorer:
    """LPIPS-based diversity with the network built lazily (only jobs with samples > 1 pay for it)."""

    def __init__(self, net: str = "alex", device: str = "cpu", smoke: bool = False) -> None:
        self.net, self.device, self.smoke = net, device, smoke
        self._lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def _distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if self._lpips is None:
            from matbench.metrics.lpips import LPIPS

            self._lpips = LPIPS(self.net, self.device, self.smoke)
        return self._lpips

    def __call__(self, samples: Sequence[torch.Tensor], hole: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return pairwise_diversity(samples, hole, self._distance())
