"""Feature files and reference statistics around the evaluator: ``features.npz`` (``--save-features``; keys
``{extractor}.real`` / ``{extractor}.fake``, rows in per_image.csv order) and FD of generated features against a
reference statistics file with a bootstrap interval (``matbench stats fd``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from matbench.errors import InputError
from matbench.metrics import featspace as FS

FEATURES_FILE = "features.npz"


def is_feature_metric(name: str) -> bool:
    return name in FS.FEATURE_METRICS


def fd_to_reference_statistic(mu: np.ndarray, sigma: np.ndarray, fake: np.ndarray, convention: str
                              ) -> Callable[[np.ndarray], float]:
    """FD between resampled generated features and fixed reference statistics, sigma = L Lᵀ factored once:
    tr sqrt(S_ref S_f) = Σ sqrt(eig(Lᵀ S_f L)) = sqrt(c) ||B L||_* with B the centred resample (N < D)."""
    s = 0.5 * (sigma + sigma.T)
    try:
        low = np.linalg.cholesky(s)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(s)
        low = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    tr_ref = float(np.trace(s))
    d = mu.shape[0]

    def stat(idx: np.ndarray) -> float:
        f = fake[idx]
        m = f.shape[0]
        c = 1.0 / (m if convention == "mat" else m - 1)
        mf = f.mean(0)
        b = f - mf
        bl = b @ low
        if m < d:
            tr = np.sqrt(c) * float(np.linalg.svd(bl, compute_uv=False).sum())
        else:
            tr = float(np.sqrt(np.clip(np.linalg.eigvalsh(c * (bl.T @ bl)), 0.0, None)).sum())
        diff = mu - mf
        return float(diff @ diff + tr_ref + c * float((b * b).sum()) - 2.0 * tr)

    return stat


def feature_key_name(key: str, inception_name: str) -> str | None:
    """features.npz key of an evaluator feature key: inception_real -> {inception}.real, vgg_fake -> vgg16.fake,
    dinov2-vitl14_real -> dinov2-vitl14.real."""
    name, _, side = key.rpartition("_")
    if side not in ("real", "fake") or not name:
        return None
    name = {"inception": inception_name, "vgg": "vgg16"}.get(name, name)
    return f"{name}.{side}"


def save_features(out_dir: str | os.PathLike, feats: dict[str, np.ndarray], inception_name: str,
                  n_rows: int) -> Path:
    """features.npz: one float32 array per extractor and side, rows in the order of per_image.csv."""
    from matbench.io import atomic_path

    arrays = {}
    for key, a in feats.items():
        name = feature_key_name(key, inception_name)
        if name is None:
            continue
        if a.shape[0] != n_rows:
            raise InputError(f"{key}: {a.shape[0]} feature rows for {n_rows} images")
        arrays[name] = np.asarray(a, dtype=np.float32)
    path = Path(out_dir) / FEATURES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path
