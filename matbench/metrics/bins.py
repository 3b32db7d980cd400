"""Hole-ratio bins (LaMa style: 0-10 %, 10-20 %, ..., 90-100 % of the image area missing).

Edge handling: bin i holds ratios r with edges[i] <= r < edges[i+1] (left-closed), except the last bin, which is
closed on both sides so that a fully masked image (r = 1.0) lands in 90-100 %. A ratio of exactly 0.1 is in
10-20 %. Ratios outside [0, 1] or NaN are an error.
"""

from __future__ import annotations

import numpy as np

BIN_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _check_edges(edges: tuple[float, ...] | np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError(f"bin edges must be a strictly increasing sequence of >= 2 values, got {edges!r}")
    return e


def assign_bins(hole_ratios: np.ndarray, edges: tuple[float, ...] | np.ndarray = BIN_EDGES) -> np.ndarray:
    """Bin index (int64) per hole ratio; see the module doc for edges."""
    e = _check_edges(edges)
    r = np.asarray(hole_ratios, dtype=np.float64)
    bad = ~((r >= e[0]) & (r <= e[-1]))  # also catches NaN
    if np.any(bad):
        raise ValueError(f"hole ratios outside [{e[0]}, {e[-1]}]: {r[bad][:5].tolist()}")
    idx = np.searchsorted(e, r, side="right") - 1
    return np.minimum(idx, e.size - 2).astype(np.int64)


def bin_label(i: int, edges: tuple[float, ...] | np.ndarray = BIN_EDGES) -> str:
    """Label of bin i, e.g. '10-20%'."""
    e = _check_edges(edges)
    if not 0 <= i < e.size - 1:
        raise ValueError(f"bin index {i} out of range 0..{e.size - 2}")
    return f"{e[i] * 100:g}-{e[i + 1] * 100:g}%"


def hole_ratio(hole: np.ndarray) -> np.ndarray:
    """Fraction of missing pixels per image for a bool hole mask [N, 1, H, W] or [N, H, W] (True = missing)."""
    h = np.asarray(hole)
    if h.ndim < 3:
        raise ValueError(f"hole masks must be [N, H, W] or [N, 1, H, W], got shape {h.shape}")
    return h.reshape(h.shape[0], -1).astype(bool).mean(axis=1)
