"""The evaluator's side of the feature-space metrics (fd_dinov2, cmmd, clip_fid, ...; matbench/metrics/featspace.py):
which extractors a request needs, per-batch features (ground truth through the cache), the metrics with
bootstrap intervals on any subset (hole-ratio bins), FD against a reference statistics file, provenance, and
``features.npz`` (``--save-features``).

Features travel in BatchResult.features under ``{extractor}.real`` / ``{extractor}.fake`` (the same keys as
features.npz), so batches saved by the runner carry them like the Inception and VGG features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench.errors import InputError
from matbench.metrics import featspace as FS

FEATURES_FILE = "features.npz"


def is_feature_metric(name: str) -> bool:
    return name in FS.FEATURE_METRICS or name == "fd_ref"


class FeatureSpaces:
    """Extractors and metrics for the feature-space names among `metrics`."""

    def __init__(self, metrics: Sequence[str], *, device: str = "cpu", smoke: bool = False, batch_size: int = 16,
                 allow_download: bool = True, ref_stats: str | os.PathLike | None = None,
                 weights_paths: dict[str, str] | None = None) -> None:
        self.requested = FS.parse(list(metrics))
        self.device, self.smoke, self.batch_size = device, smoke, batch_size
        self.allow_download = allow_download
        self.weights_paths = dict(weights_paths or {})
        self.ref = None
        if ref_stats is not None:
            from matbench import refstats

            self.ref = refstats.load(ref_stats)
        self._extractors: dict[str, Any] = {}
        self._ids_scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def extractor_names(self) -> list[str]:
        names = [m.extractor for m in self.requested]
        if self.ref is not None:
            names.append(self.ref.meta["extractor"])
        return list(dict.fromkeys(names))

    def __bool__(self) -> bool:
        return bool(self.extractor_names)

    def extractor(self, name: str) -> Any:
        if name not in self._extractors:
            from matbench import extractors
            from matbench.features import get_extractor

            resize = None
            if self.ref is not None and name == self.ref.meta["extractor"] and name in extractors.names():
                resize = self.ref.meta.get("resize") or None
            if resize is not None:
                ex = extractors.build(name, self.device, self.smoke, self.weights_paths.get(name),
                                      batch_size=self.batch_size, allow_download=self.allow_download,
                                      resize_convention=resize)
            else:
                ex = get_extractor(name, self.device, self.smoke, self.weights_paths.get(name),
                                   batch_size=self.batch_size, allow_download=self.allow_download)
            if self.ref is not None and name == self.ref.meta["extractor"]:
                self.ref.check(name, ex.weights_sha256, FS.identity(ex)["resize"])
            self._extractors[name] = ex
        return self._extractors[name]

    def process(self, real: torch.Tensor, fake: torch.Tensor, cache: Any) -> dict[str, np.ndarray]:
        from matbench.features import extract_cached

        out = {}
        for name in self.extractor_names:
            ex = self.extractor(name)
            out[f"{name}.real"] = extract_cached(ex, real, cache)
            out[f"{name}.fake"] = ex(fake)
        return out

    def metrics(self, feats: dict[str, np.ndarray], idx: np.ndarray, *, n_bootstrap: int, seed: int,
                convention: str, kid_subsets: int, kid_subset_size: int, is_bin: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for fm in self.requested:
            real, fake = feats[f"{fm.extractor}.real"][idx], feats[f"{fm.extractor}.fake"][idx]
            state: dict | None = self._ids_scores
            if fm.kind == "ids" and is_bin:
                rs, fs = self._ids_scores[fm.name]
                state = {fm.name: (rs[idx], fs[idx])}
            out.update(FS.compute(fm, real, fake, FS.identity(self.extractor(fm.extractor)), n_bootstrap=n_bootstrap,
                                  seed=seed, convention=convention, device=self.device, kid_subsets=kid_subsets,
                                  kid_subset_size=min(kid_subset_size, len(idx)), ids_state=state))
        if self.ref is not None:
            name = self.ref.meta["extractor"]
            fake = feats[f"{name}.fake"][idx]
            if fake.shape[0] >= 2:
                out["fd_ref"] = self._fd_ref(fake, n_bootstrap, seed, convention, self.extractor(name))
        return out

    def _fd_ref(self, fake: np.ndarray, nb: int, seed: int, convention: str, ex: Any) -> Any:
        from matbench.metrics import bootstrap
        from matbench.results import MetricValue

        ref = self.ref
        value = ref.fd(fake, convention)
        stat = fd_to_reference_statistic(ref.mu, ref.sigma_for(convention), fake, convention)
        lo = hi = None
        if nb > 0:
            lo, hi = bootstrap.bootstrap_ci(stat, fake.shape[0], nb, seed, method="bias-corrected")
            lo = max(float(lo), 0.0)
        extra = {**FS.identity(ex), "reference": str(ref.path), "reference_n": ref.n,
                 "reference_dataset_manifest_sha256": ref.meta.get("dataset_manifest_sha256", ""),
                 "ci_method": "bias-corrected, generated side resampled"}
        return MetricValue(value, lo, None if hi is None else float(hi), int(fake.shape[0]),
                           convention=convention, extra=extra)

    def provenance(self) -> dict[str, Any]:
        return {name: ex.describe() for name, ex in self._extractors.items()}

    def protocol_fields(self) -> dict[str, Any]:
        """Identity of the extra feature spaces, recorded in the result's protocol (compared across results)."""
        return {"feature_spaces": {n: {k: v for k, v in FS.identity(ex).items() if k != "smoke"}
                                   for n, ex in self._extractors.items()}}


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
    """features.npz key of a BatchResult feature key: inception_real -> {inception}.real, vgg_fake -> vgg16.fake."""
    if "." in key:
        return key
    for prefix, name in (("inception_", inception_name), ("vgg_", "vgg16")):
        if key.startswith(prefix):
            return f"{name}.{key[len(prefix):]}"
    return None


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
