"""Pairing checks: does a result's known region equal its ground truth's?"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Known region of a result may differ from the ground truth by this mean absolute difference
# (uint8 levels) before the pair is called a mismatch: room for JPEG and blended compositing,
# far below the ~30-60 levels that separate two different photographs.
PAIR_TOL = 6.0


def _hwc_or_chw_to_chw(a: np.ndarray | torch.Tensor) -> np.ndarray:
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    if a.ndim == 3 and a.shape[0] not in (1, 3) and a.shape[-1] in (1, 3):
        a = a.transpose(2, 0, 1)
    return a


def known_region_diff(real_u8: Any, fake_u8: Any, hole: Any) -> float:
    """Mean |real - fake| (uint8 levels) over the known pixels (hole == False); 0 if nothing is known."""
    r = _hwc_or_chw_to_chw(real_u8).astype(np.float64)
    f = _hwc_or_chw_to_chw(fake_u8).astype(np.float64)
    h = hole.detach().cpu().numpy() if torch.is_tensor(hole) else np.asarray(hole)
    h = h.reshape(r.shape[-2:]).astype(bool)
    if r.shape != f.shape:
        raise ValueError(f"check_pair: shapes differ {r.shape} vs {f.shape}")
    known = ~h
    if not known.any():
        return 0.0
    return float(np.abs(r - f).mean(axis=0)[known].mean())


def check_pair(real_u8: Any, fake_u8: Any, hole: Any, tol: float = PAIR_TOL) -> bool:
    """True if the known region of the result equals the ground truth's (mean abs diff <= tol)."""
    return known_region_diff(real_u8, fake_u8, hole) <= tol


def _pair_checks(real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor, tol: float) -> list[str]:
    known = (~hole.bool()).to(torch.float64)  # N1HW
    diff = (real.to(torch.float64) - fake.to(torch.float64)).abs().mean(dim=1, keepdim=True)
    nk = known.flatten(1).sum(dim=1)
    mean = (diff * known).flatten(1).sum(dim=1) / nk.clamp(min=1)
    return ["ok" if m <= tol else "mismatch" for m in mean.tolist()]


def _agreement(real: torch.Tensor, fake: torch.Tensor, levels: int = 2) -> list[float]:
    """Fraction of pixels equal within `levels` (used without masks to warn about mis-pairing)."""
    close = ((real.to(torch.int16) - fake.to(torch.int16)).abs() <= levels).all(dim=1)
    return close.flatten(1).to(torch.float64).mean(dim=1).tolist()
