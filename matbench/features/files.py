"""``features.npz`` (``--save-features``): keys ``{extractor}.real`` / ``{extractor}.fake``, one float32 array
each, rows in per_image.csv order."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from matbench.errors import InputError
from matbench.io import atomic_path

FEATURES_FILE = "features.npz"


def feature_key_name(key: str, inception_name: str) -> str | None:
    """features.npz key of an evaluator feature key: inception_real -> {inception}.real, vgg_fake -> vgg16.fake,
    dinov2-vitl14_real -> dinov2-vitl14.real, inception:spatial_real -> inception-v3-compat:spatial.real."""
    name, _, side = key.rpartition("_")
    if side not in ("real", "fake") or not name:
        return None
    base = re.split("[:@]", name, maxsplit=1)[0]  # inception:spatial -> inception-v3-compat:spatial
    mapped = {"inception": inception_name, "vgg": "vgg16"}.get(base, base)
    return f"{mapped}{name[len(base):]}.{side}"


def save_features(out_dir: str | os.PathLike, feats: dict[str, np.ndarray], inception_name: str,
                  n_rows: int) -> Path:
    """features.npz: one float32 array per extractor and side, rows in the order of per_image.csv."""
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
