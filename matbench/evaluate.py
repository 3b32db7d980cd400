"""Evaluation orchestration: per-batch work (features, per-image metrics, pair checks) and the final
dataset metrics with bootstrap confidence intervals and hole-ratio bins.

The runner calls `Evaluator.process_batch` on images in memory (possibly on several ranks) and
`Evaluator.finalize` once on all batches; `evaluate_folders` (`matbench eval`) does the same on a
results folder and a ground-truth folder. `finalize` only concatenates batches in the order given,
so the numbers do not depend on how images were grouped into batches.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from matbench.errors import InputError, MatbenchError
from matbench.io import atomic_path
from matbench.results import PER_IMAGE_FILE, PROTOCOL_FIELDS, MetricValue, ResultRecord, write_record

log = logging.getLogger(__name__)

ALL_METRICS = ("fid", "pids", "uids", "lpips", "pr", "kid", "psnr", "ssim", "l1")
INCEPTION_METRICS = frozenset({"fid", "pids", "uids", "kid"})
PER_IMAGE_METRICS = ("lpips", "psnr", "ssim", "l1")
PIXEL_METRICS = frozenset({"psnr", "ssim", "l1"})
ROW_COLUMNS = ("id", "hole_ratio", "lpips", "psnr", "ssim", "l1", "pair_check")
# Known region of a result may differ from the ground truth by this mean absolute difference
# (uint8 levels) before the pair is called a mismatch: room for JPEG and blended compositing,
# far below the ~30-60 levels that separate two different photographs.
PAIR_TOL = 6.0


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    bad = [m for m in names if m not in ALL_METRICS]
    if bad:
        raise InputError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(ALL_METRICS)}")
    if not names:
        raise InputError("no metrics requested")
    return [m for m in ALL_METRICS if m in names]  # canonical order, no duplicates


# --------------------------------------------------------------------------------------------- batches

@dataclass
class BatchResult:
    ids: list[str]
    rows: list[dict]
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> None:
        """Atomic .npz: ids, rows (JSON) and feature arrays."""
        arrays = {f"feat__{k}": _compact(np.asarray(v)) for k, v in self.features.items()}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=np.asarray(self.ids, dtype=str), rows=np.asarray(json.dumps(self.rows)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BatchResult:
        try:
            with np.load(path, allow_pickle=False) as z:
                ids = [str(s) for s in z["ids"]]
                rows = json.loads(str(z["rows"]))
                feats = {k[len("feat__"):]: z[k].astype(np.float64) for k in z.files if k.startswith("feat__")}
        except FileNotFoundError:
            raise InputError(f"{path}: no such batch file") from None
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{path}: not a matbench batch file ({e})") from None
        return cls(ids=ids, rows=rows, features=feats)


def _compact(a: np.ndarray) -> np.ndarray:
    """float32 copy when it is lossless (features of float32 networks), else the array itself."""
    if a.dtype == np.float64:
        a32 = a.astype(np.float32)
        if np.array_equal(a32.astype(np.float64), a):
            return a32
    return a


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


# --------------------------------------------------------------------------------------------- statistics

def _ci_pair(out: Any) -> tuple[float | None, float | None]:
    """Accept (low, high), {"low"/"ci_low", ...} or an object with ci_low/ci_high."""
    if out is None:
        return None, None
    if isinstance(out, dict):
        lo = out.get("ci_low", out.get("low"))
        hi = out.get("ci_high", out.get("high"))
    elif hasattr(out, "ci_low"):
        lo, hi = out.ci_low, out.ci_high
    else:
        lo, hi = out[0], out[1]
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def fid_trace_fast(real: np.ndarray, fake: np.ndarray, convention: str) -> float:
    """FID via singular values of the cross product of centred features.

    With A, B the centred features and c1, c2 the covariance factors, S1 S2 = c1 c2 A^T A B^T B has the
    non-zero eigenvalues of c1 c2 (A B^T)(A B^T)^T, so tr sqrt(S1 S2) = sqrt(c1 c2) * ||A B^T||_* .
    For N < D this avoids every D x D decomposition (bootstrap of FID on small sets and bins).
    """
    n1, n2 = real.shape[0], fake.shape[0]
    a = real - real.mean(axis=0)
    b = fake - fake.mean(axis=0)
    c1 = 1.0 / (n1 if convention == "mat" else n1 - 1)
    c2 = 1.0 / (n2 if convention == "mat" else n2 - 1)
    diff = real.mean(axis=0) - fake.mean(axis=0)
    sv = np.linalg.svd(a @ b.T, compute_uv=False)
    tr = math.sqrt(c1 * c2) * float(sv.sum())
    return float(diff @ diff + c1 * float((a * a).sum()) + c2 * float((b * b).sum()) - 2.0 * tr)


def _fid_statistic(real: np.ndarray, fake: np.ndarray, convention: str, device: str = "cpu"
                   ) -> Callable[[np.ndarray], float]:
    """FID of a resample of pairs (idx), in float64 torch on `device` (the bootstrap's inner loop).

    N < D: singular values of the N x N cross product (fid_trace_fast); otherwise covariances and
    two symmetric eigendecompositions, as matbench.metrics.fid, on the GPU when there is one.
    """
    dev = torch.device(device)
    r_all = torch.as_tensor(real, dtype=torch.float64, device=dev)
    f_all = torch.as_tensor(fake, dtype=torch.float64, device=dev)
    d = real.shape[1]

    def stat(idx: np.ndarray) -> float:
        i = torch.as_tensor(idx, dtype=torch.long, device=dev)
        r, f = r_all.index_select(0, i), f_all.index_select(0, i)
        n = r.shape[0]
        c = 1.0 / (n if convention == "mat" else n - 1)
        mr, mf = r.mean(0), f.mean(0)
        a, b = r - mr, f - mf
        diff = mr - mf
        if n < d:
            tr = c * torch.linalg.svdvals(a @ b.T).sum()
            return float(diff @ diff + c * (a * a).sum() + c * (b * b).sum() - 2.0 * tr)
        s1, s2 = c * (a.T @ a), c * (b.T @ b)
        # S1 = L L^T (Cholesky): S1 S2 is similar to L^T S2 L, so one eigvalsh (no eigenvectors) suffices;
        # singular S1 (e.g. dead ReLU channels) falls back to the symmetric square root.
        low, info = torch.linalg.cholesky_ex(s1)
        if int(info) == 0:
            m = low.T @ s2 @ low
        else:
            w, v = torch.linalg.eigh(s1)
            root = (v * w.clamp(min=0).sqrt()) @ v.T
            m = root @ s2 @ root
        lam = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp(min=0)
        return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2.0 * lam.sqrt().sum())

    return stat


def _bootstrap(stat: Callable[[np.ndarray], float], n: int, n_resamples: int, seed: int,
               method: str = "percentile") -> tuple[float | None, float | None]:
    if n_resamples <= 0 or n < 2:
        return None, None
    from matbench.metrics import bootstrap

    return _ci_pair(bootstrap.bootstrap_ci(stat, n, n_resamples, seed, method=method))


def _mean_metric(values: np.ndarray, n_resamples: int, seed: int) -> MetricValue:
    v = np.asarray(values, dtype=np.float64)
    lo = hi = None
    if n_resamples > 0 and v.size >= 2:
        from matbench.metrics import bootstrap

        lo, hi = _ci_pair(bootstrap.mean_ci(v, n_resamples=n_resamples, seed=seed))
    return MetricValue(value=float(v.mean()), ci_low=lo, ci_high=hi, n=int(v.size))


# --------------------------------------------------------------------------------------------- evaluator

class Evaluator:
    """Computes per-batch quantities and final dataset metrics for one (model, dataset, mask set) job."""

    def __init__(self, metrics: Sequence[str], *, device: str = "cpu", smoke: bool = False,
                 cache_dir: str | os.PathLike | None | bool = None, fid_convention: str = "mat",
                 lpips_net: str = "alex", inception: str = "inception-v3-compat",
                 inception_path: str | os.PathLike | None = None, n_bootstrap: int = 200, seed: int = 0,
                 batch_size: int = 16, vgg_path: str | os.PathLike | None = None, pair_tol: float = PAIR_TOL,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, allow_download: bool = True) -> None:
        self.metrics = parse_metrics(metrics)
        if fid_convention not in ("mat", "torch-fidelity"):
            raise InputError(f"unknown FID convention {fid_convention!r}; use mat or torch-fidelity")
        if inception not in ("inception-v3-compat", "inception-nvidia"):
            raise InputError(f"unknown Inception backend {inception!r}; use inception-v3-compat or inception-nvidia")
        self.device = str(device)
        self.smoke = bool(smoke)
        self.fid_convention = fid_convention
        self.lpips_net = lpips_net
        self.inception_name = inception
        self.inception_path = inception_path
        self.vgg_path = vgg_path
        self.n_bootstrap = int(n_bootstrap)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.pair_tol = float(pair_tol)
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.allow_download = allow_download
        self._cache_dir = cache_dir
        self._cache = None
        self._inception = None
        self._vgg = None
        self._lpips = None
        self.timings: dict[str, float] = {}

    # lazily built networks: a run that needs only PSNR loads nothing
    @property
    def needs_inception(self) -> bool:
        return bool(INCEPTION_METRICS & set(self.metrics))

    @property
    def needs_vgg(self) -> bool:
        return "pr" in self.metrics

    @property
    def cache(self):
        from matbench.features import FeatureCache

        if self._cache is None and self._cache_dir is not False:
            self._cache = FeatureCache(None if self._cache_dir in (None, True) else self._cache_dir)
        return self._cache

    @property
    def inception(self):
        if self._inception is None:
            from matbench.features import get_extractor

            self._inception = get_extractor(self.inception_name, self.device, self.smoke, self.inception_path,
                                            batch_size=self.batch_size, allow_download=self.allow_download)
        return self._inception

    @property
    def vgg(self):
        if self._vgg is None:
            from matbench.features import get_extractor

            self._vgg = get_extractor("vgg16", self.device, self.smoke, self.vgg_path, batch_size=self.batch_size,
                                      allow_download=self.allow_download)
        return self._vgg

    @property
    def lpips(self):
        if self._lpips is None:
            from matbench.metrics.lpips import LPIPS

            self._lpips = LPIPS(self.lpips_net, self.device, self.smoke, allow_download=self.allow_download)
        return self._lpips

    def _tick(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def process_batch(self, ids: Sequence[str], real: torch.Tensor, fake: torch.Tensor,
                      hole: torch.Tensor | None = None) -> BatchResult:
        """Per-image metrics, pair checks and features for one batch (real features via the cache)."""
        from matbench.features import extract_cached

        ids = [str(i) for i in ids]
        for name, t in (("real", real), ("fake", fake)):
            if not torch.is_tensor(t) or t.dtype != torch.uint8 or t.dim() != 4 or t.shape[1] != 3:
                raise ValueError(f"process_batch: {name} must be uint8 [N,3,H,W]")
        if real.shape != fake.shape:
            raise ValueError(f"process_batch: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ")
        if len(ids) != real.shape[0]:
            raise ValueError(f"process_batch: {len(ids)} ids for {real.shape[0]} images")
        n = len(ids)
        rows: list[dict] = [{"id": i, "hole_ratio": None, "lpips": None, "psnr": None, "ssim": None, "l1": None,
                             "pair_check": "unchecked"} for i in ids]
        if hole is not None:
            if hole.shape != (n, 1, *real.shape[2:]):
                raise ValueError(f"process_batch: hole {tuple(hole.shape)} does not match images")
            ratios = hole.bool().flatten(1).to(torch.float64).mean(dim=1).tolist()
            checks = _pair_checks(real, fake, hole, self.pair_tol)
            for r, hr, c in zip(rows, ratios, checks, strict=True):
                r["hole_ratio"], r["pair_check"] = hr, c
        if PIXEL_METRICS & set(self.metrics):
            t0 = time.perf_counter()
            from matbench.metrics.pixel import pixel_metrics_batch

            try:
                px = pixel_metrics_batch(real, fake)
            except ValueError as e:  # e.g. images too small for the SSIM window
                raise InputError(f"PSNR/SSIM/L1 on {_list(ids, 3)}: {e}") from None
            for k in PIXEL_METRICS & set(self.metrics):
                for r, v in zip(rows, px[k], strict=True):
                    r[k] = float(v)
            self._tick("pixel", t0)
        if "lpips" in self.metrics:
            t0 = time.perf_counter()
            vals = []
            for i in range(0, n, self.batch_size):
                vals.extend(self.lpips(real[i:i + self.batch_size], fake[i:i + self.batch_size]).tolist())
            for r, v in zip(rows, vals, strict=True):
                r["lpips"] = float(v)
            self._tick("lpips", t0)
        feats: dict[str, np.ndarray] = {}
        if self.needs_inception:
            t0 = time.perf_counter()
            feats["inception_real"] = extract_cached(self.inception, real, self.cache)
            feats["inception_fake"] = self.inception(fake)
            self._tick("inception_features", t0)
        if self.needs_vgg:
            t0 = time.perf_counter()
            feats["vgg_real"] = extract_cached(self.vgg, real, self.cache)
            feats["vgg_fake"] = self.vgg(fake)
            self._tick("vgg_features", t0)
        return BatchResult(ids=ids, rows=rows, features=feats)

    # ----------------------------------------------------------------------------------------- finalize

    def finalize(self, batches: Sequence[BatchResult], job: dict, protocol: dict | None = None
                 ) -> tuple[ResultRecord, pd.DataFrame]:
        t_start = time.perf_counter()
        ids = [i for b in batches for i in b.ids]
        rows = [r for b in batches for r in b.rows]
        n = len(ids)
        if n < 2:
            raise InputError(f"need at least 2 images to compute metrics, got {n}")
        dup = sorted(i for i, c in Counter(ids).items() if c > 1) if len(set(ids)) != n else []
        if dup:
            raise InputError(f"duplicate image ids across batches: {', '.join(dup[:10])}")
        feats: dict[str, np.ndarray] = {}
        for key in ("inception_real", "inception_fake", "vgg_real", "vgg_fake"):
            parts = [b.features[key] for b in batches if key in b.features]
            if parts:
                feats[key] = np.concatenate(parts).astype(np.float64)
                if feats[key].shape[0] != n:
                    raise InputError(f"{key}: {feats[key].shape[0]} feature rows for {n} images (batches incomplete)")
        df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
        hole = df["hole_ratio"].to_numpy(dtype=np.float64) if df["hole_ratio"].notna().all() else None

        metrics, ids_state = self._dataset_metrics(df, feats, np.arange(n), global_ids=None)
        bins_out: list[dict] = []
        if hole is not None:
            from matbench.metrics import bins as binsm

            assigned = np.asarray(binsm.assign_bins(hole))
            df["bin"] = [binsm.bin_label(int(b)) for b in assigned]
            edges = list(binsm.BIN_EDGES)
            for b in range(len(edges) - 1):
                idx = np.flatnonzero(assigned == b)
                entry: dict[str, Any] = {"lo": float(edges[b]), "hi": float(edges[b + 1]),
                                         "label": binsm.bin_label(b), "n": int(idx.size), "metrics": {}}
                if idx.size >= 2:
                    entry["metrics"], _ = self._dataset_metrics(df, feats, idx, global_ids=ids_state)
                bins_out.append(entry)
        prov = self.provenance()
        self._tick("finalize", t_start)
        prov["timings_s"] = {k: round(v, 3) for k, v in self.timings.items()}
        proto = self._protocol(n, protocol or {}, batches)
        record = ResultRecord(job=dict(job), metrics=metrics, bins=bins_out, protocol=proto, provenance=prov,
                              smoke=self.smoke)
        return record, df

    def _dataset_metrics(self, df: pd.DataFrame, feats: dict[str, np.ndarray], idx: np.ndarray,
                         global_ids: dict | None) -> tuple[dict[str, MetricValue], dict | None]:
        """Metrics on the subset idx. For bins, P-IDS/U-IDS reuse the SVM scores fitted on all images."""
        out: dict[str, MetricValue] = {}
        nb, seed, n = self.n_bootstrap, self.seed, idx.size
        for m in PER_IMAGE_METRICS:
            if m in self.metrics:
                out[m] = _mean_metric(df[m].to_numpy(dtype=np.float64)[idx], nb, seed)
        ids_state = global_ids
        if self.needs_inception:
            real, fake = feats["inception_real"][idx], feats["inception_fake"][idx]
            conv = self.fid_convention
            if "fid" in self.metrics:
                from matbench.metrics import fid as fidm

                t0 = time.perf_counter()
                stat = _fid_statistic(real, fake, conv, self.device)
                # metric module for N >= D; for N < D (bins, small sets) the equivalent N x N formula
                value = fidm.fid(real, fake, conv) if n >= real.shape[1] else stat(np.arange(n))
                # Resamples repeat images, which inflates FID: percentile intervals can miss the
                # point estimate entirely, so shift them back by the bootstrap bias estimate.
                lo, hi = _bootstrap(stat, n, nb, seed, method="bias-corrected")
                lo = None if lo is None else max(lo, 0.0)  # the shift can cross 0; FID cannot
                out["fid"] = MetricValue(value, lo, hi, n, convention=conv,
                                         extra={"extractor": self.inception_name, "ci_method": "bias-corrected"})
                self._tick("fid", t0)
            if {"pids", "uids"} & set(self.metrics):
                from matbench.metrics import ids as idsm

                t0 = time.perf_counter()
                if global_ids is None:
                    r = idsm.pids_uids(real, fake)
                    rs, fs = np.asarray(r["real_scores"]), np.asarray(r["fake_scores"])
                    ids_state = {"real_scores": rs, "fake_scores": fs, "converged": r.get("converged")}
                    extra = {"svm": "sklearn LinearSVC(dual=False)", "converged": r.get("converged")}
                else:
                    rs, fs = global_ids["real_scores"][idx], global_ids["fake_scores"][idx]
                    extra = {"svm": "fitted on all images"}
                for m, fn in (("pids", idsm.pids_from_scores), ("uids", idsm.uids_from_scores)):
                    if m in self.metrics:
                        lo, hi = _bootstrap(lambda j, fn=fn: fn(rs[j], fs[j]), n, nb, seed)
                        out[m] = MetricValue(fn(rs, fs), lo, hi, n, extra=dict(extra))
                self._tick("ids", t0)
            if "kid" in self.metrics:
                from matbench.metrics import kid as kidm

                t0 = time.perf_counter()
                k = kidm.kid(real, fake, subsets=self.kid_subsets, subset_size=self.kid_subset_size, seed=seed)
                # normal approximation from the spread of the subset estimates (documented)
                half = 1.96 * k["kid_std"] / math.sqrt(self.kid_subsets)
                out["kid"] = MetricValue(k["kid_mean"], k["kid_mean"] - half, k["kid_mean"] + half, n,
                                         extra={"kid_std": k["kid_std"], "subset_size": k.get("subset_size"),
                                                "subsets": self.kid_subsets, "ci_method": "subset-normal"})
                self._tick("kid", t0)
        if self.needs_vgg:
            t0 = time.perf_counter()
            # bins (global_ids given) recompute the manifolds from the bin's own images, like FID
            out.update(self._precision_recall(feats["vgg_real"][idx], feats["vgg_fake"][idx], nb, seed,
                                              quiet=global_ids is not None))
            self._tick("pr", t0)
        return out, ids_state

    def _precision_recall(self, real: np.ndarray, fake: np.ndarray, nb: int, seed: int,
                          quiet: bool = False) -> dict[str, MetricValue]:
        from matbench.metrics import prc

        n = real.shape[0]
        k = 3
        if n <= k:
            if not quiet:
                log.warning("precision/recall need more than %d images; skipped", k)
            return {}
        # Per-sample "inside the other manifold" indicators (the same k-NN code as prc.precision_recall):
        # their means are precision and recall, and resampling them gives the CI with the manifolds held
        # fixed. One k-NN pass instead of two at N = 36,500.
        ind = _pr_indicators(real, fake, k, self.device)
        if ind is None:
            pr = prc.precision_recall(real, fake, k=k, device=self.device)
        else:
            pr = {name: float(ind[name].astype(np.float64).mean()) for name in ("precision", "recall")}
        out = {}
        for name in ("precision", "recall"):
            lo = hi = None
            if ind is not None and nb > 0:
                from matbench.metrics import bootstrap

                lo, hi = _ci_pair(bootstrap.mean_ci(ind[name].astype(np.float64), n_resamples=nb, seed=seed))
            out[name] = MetricValue(pr[name], lo, hi, n, extra={"k": k, "features": "vgg16 fc2"})
        return out

    def _protocol(self, n: int, given: dict, batches: Sequence[BatchResult]) -> dict:
        proto: dict[str, Any] = {k: given[k] for k in PROTOCOL_FIELDS if k in given}
        proto["fid_convention"] = self.fid_convention
        if self.needs_inception:
            proto["feature_extractor"] = self.inception_name
            proto["extractor_sha256"] = self.inception.weights_sha256
        proto["n_images"] = n
        proto.setdefault("resolution", given.get("resolution"))
        return proto

    def provenance(self) -> dict:
        from matbench.results import environment_versions, now_iso

        dev = self.device
        if dev.startswith("cuda") and torch.cuda.is_available():
            dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
        weights: dict[str, Any] = {}
        if self.needs_inception:
            weights["inception"] = self.inception.describe()
        if self.needs_vgg:
            weights["vgg"] = self.vgg.describe()
        if "lpips" in self.metrics:
            try:
                weights["lpips"] = self.lpips.provenance()
            except Exception as e:  # provenance must never stop an evaluation
                weights["lpips"] = {"net": self.lpips_net, "error": str(e)}
        return {"versions": environment_versions(), "device": dev, "weights": weights, "smoke": self.smoke,
                "metrics_requested": list(self.metrics), "fid_convention": self.fid_convention,
                "n_bootstrap": self.n_bootstrap, "bootstrap_seed": self.seed, "pair_tol": self.pair_tol,
                "created": now_iso()}


def _pr_indicators(real: np.ndarray, fake: np.ndarray, k: int, device: str) -> dict[str, np.ndarray] | None:
    """Per-sample manifold membership (fake in real manifold; real in fake manifold), for CIs."""
    from matbench.metrics.prc import manifold_membership

    return manifold_membership(real, fake, k=k, device=device)


# --------------------------------------------------------------------------------------------- folders

MASK_POLARITIES = ("known=255", "hole=255")


class _MaskSource:
    """Hole masks by image id: a maskset directory (maskset.json) or a plain folder with a polarity."""

    def __init__(self, masks_dir: Path, polarity: str | None) -> None:
        self.dir = masks_dir
        self.maskset = None
        self.sha256 = None
        if not masks_dir.is_dir():
            raise InputError(f"{masks_dir}: mask directory does not exist")
        if (masks_dir / "maskset.json").is_file() and polarity is None:
            from matbench.data.maskset import MaskSet

            self.maskset = MaskSet.open(masks_dir)
            self.sha256 = getattr(self.maskset, "sha256", None)
            self.files = None
            self.names: dict[str, str] = {}
        else:
            if polarity is None:
                raise InputError(f"{masks_dir}: no maskset.json; say what white means with "
                                 f"--mask-polarity {' or '.join(MASK_POLARITIES)} (MAT: known=255, LaMa: hole=255)")
            if polarity not in MASK_POLARITIES:
                raise InputError(f"unknown mask polarity {polarity!r}; use {' or '.join(MASK_POLARITIES)}")
            from matbench.features import list_images

            self.files = list_images(masks_dir)
        self.polarity = polarity

    def check_ids(self, ids: Sequence[str]) -> None:
        if self.maskset is not None:
            self.names = dict(zip(ids, self.maskset.names_for(list(ids)), strict=True))
        if self.files is not None:
            missing = [i for i in ids if i not in self.files]
            if missing:
                raise InputError(f"{self.dir}: no mask for {len(missing)} image(s): {_list(missing)}")

    def hole(self, iid: str) -> np.ndarray:
        if self.maskset is not None:
            return np.asarray(self.maskset.hole(self.names.get(iid, iid)), dtype=bool)
        from matbench.io import read_gray

        g = read_gray(self.files[iid])
        return g < 128 if self.polarity == "known=255" else g >= 128


def _list(items: Sequence[str], k: int = 10) -> str:
    s = ", ".join(items[:k])
    return s + (f", … ({len(items)} in all)" if len(items) > k else "")


class _PairDataset(torch.utils.data.Dataset):
    def __init__(self, ids: list[str], gt: dict[str, Path], res: dict[str, Path], masks: _MaskSource | None):
        self.ids, self.gt, self.res, self.masks = ids, gt, res, masks

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple:
        from matbench.io import read_image

        iid = self.ids[i]
        # errors travel as strings: DataLoader workers would turn exceptions into multi-line tracebacks
        try:
            g = read_image(self.gt[iid])
            r = read_image(self.res[iid])
            if g.shape != r.shape:
                raise InputError(f"size mismatch for {iid!r}: {self.res[iid]} is {r.shape[1]}x{r.shape[0]}, "
                                 f"{self.gt[iid]} is {g.shape[1]}x{g.shape[0]}")
            h = None
            if self.masks is not None:
                h = self.masks.hole(iid)
                if h.shape != g.shape[:2]:
                    raise InputError(f"mask for {iid!r} is {h.shape[1]}x{h.shape[0]}, image {self.gt[iid]} is "
                                     f"{g.shape[1]}x{g.shape[0]}")
        except MatbenchError as e:
            return iid, None, None, None, str(e)
        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1).contiguous()  # noqa: E731
        return iid, to_t(g), to_t(r), (None if h is None else torch.from_numpy(h)[None]), None


def pair_folders(results_dir: Path, gt_dir: Path) -> tuple[list[str], dict[str, Path], dict[str, Path]]:
    """Ids present in both folders (sorted); missing/extra ids and size mismatches are errors."""
    from PIL import Image

    from matbench.features import list_images

    res = list_images(results_dir)
    gt = list_images(gt_dir)
    missing = sorted(set(gt) - set(res))
    extra = sorted(set(res) - set(gt))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} ground-truth id(s) have no result in {results_dir}: {_list(missing)}")
        if extra:
            parts.append(f"{len(extra)} result id(s) have no ground truth in {gt_dir}: {_list(extra)}")
        raise InputError("; ".join(parts) + f" (counts: {len(res)} results, {len(gt)} ground truths)")
    ids = sorted(gt)
    if len(ids) < 2:
        raise InputError(f"{gt_dir}: need at least 2 image pairs, found {len(ids)}")
    for iid in ids:  # header-only pass: sizes and readability before any network runs
        sizes = []
        for p in (res[iid], gt[iid]):
            try:
                with Image.open(p) as im:
                    sizes.append(im.size)
            except Exception as e:
                raise InputError(f"{p}: cannot read image ({type(e).__name__}: {e})") from None
        if sizes[0] != sizes[1]:
            raise InputError(f"size mismatch for {iid!r}: {res[iid]} is {sizes[0][0]}x{sizes[0][1]}, "
                             f"{gt[iid]} is {sizes[1][0]}x{sizes[1][1]}")
    return ids, gt, res


def _collate(items: list) -> list:
    return items


def evaluate_folders(results_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                     masks_dir: str | os.PathLike | None = None, metrics: Sequence[str] | str = ALL_METRICS,
                     out_dir: str | os.PathLike = "eval_out", allow_mismatch: bool = False,
                     mask_polarity: str | None = None, workers: int = 0, progress: bool = True,
                     job: dict | None = None, protocol: dict | None = None,
                     **evaluator_options: Any) -> ResultRecord:
    """Evaluate a folder of results against ground truths; writes metrics.json and per_image.csv."""
    from tqdm import tqdm

    results_dir, gt_dir, out_dir = Path(results_dir), Path(gt_dir), Path(out_dir)
    ids, gt, res = pair_folders(results_dir, gt_dir)
    masks = _MaskSource(Path(masks_dir), mask_polarity) if masks_dir is not None else None
    if masks is not None:
        masks.check_ids(ids)
    ev = Evaluator(metrics, **evaluator_options)
    ds = _PairDataset(ids, gt, res, masks)
    dl = torch.utils.data.DataLoader(ds, batch_size=ev.batch_size, num_workers=workers, collate_fn=_collate)
    batches: list[BatchResult] = []
    mismatched: list[str] = []
    low_agreement: list[str] = []
    shapes: set[tuple[int, int]] = set()
    with tqdm(total=len(ds), desc="evaluate", unit="img", disable=not progress) as bar:
        for items in dl:
            for it in items:
                if it[4] is not None:
                    raise InputError(it[4])
            runs = _same_shape_runs(items)
            for run in runs:
                iids = [it[0] for it in run]
                real = torch.stack([it[1] for it in run])
                fake = torch.stack([it[2] for it in run])
                hole = torch.stack([it[3] for it in run]) if masks is not None else None
                shapes.add((int(real.shape[2]), int(real.shape[3])))
                if hole is not None:
                    checks = _pair_checks(real, fake, hole, ev.pair_tol)
                    mismatched += [i for i, c in zip(iids, checks, strict=True) if c == "mismatch"]
                else:
                    low_agreement += [i for i, a in zip(iids, _agreement(real, fake), strict=True) if a < 0.05]
                if mismatched and not allow_mismatch:
                    continue  # keep reading to list every mismatched pair, compute nothing more
                batches.append(ev.process_batch(iids, real, fake, hole))
            bar.update(len(items))
    if mismatched:
        msg = (f"{len(mismatched)} of {len(ids)} result(s) differ from their ground truth in the known region "
               f"(results paired with the wrong images, or wrong mask polarity?): {_list(mismatched)}")
        if not allow_mismatch:
            raise InputError(msg + "; rerun with --allow-mismatch to evaluate anyway")
        log.warning(msg)
    if masks is None and len(low_agreement) > len(ids) // 2:
        log.warning("%d of %d results share almost no pixels with their ground truth; if the model composites "
                    "known pixels, results and ground truths may be mis-paired (give --masks to check)",
                    len(low_agreement), len(ids))
    job = dict(job or {"results": str(results_dir), "gt": str(gt_dir),
                       "masks": None if masks_dir is None else str(masks_dir)})
    proto = dict(protocol or {})
    if masks is not None and masks.sha256 and "maskset_sha256" not in proto:
        proto["maskset_sha256"] = masks.sha256
    if len(shapes) == 1 and "resolution" not in proto:
        h, w = next(iter(shapes))
        proto["resolution"] = h if h == w else f"{w}x{h}"
    record, df = ev.finalize(batches, job, proto)
    record.provenance["inputs"] = {"results": str(results_dir), "gt": str(gt_dir), "masks": job.get("masks"),
                                   "mask_polarity": mask_polarity, "mismatched": mismatched}
    write_outputs(out_dir, record, df)
    return record


def _same_shape_runs(items: list) -> list[list]:
    runs: list[list] = []
    for it in items:
        if runs and runs[-1][-1][1].shape == it[1].shape:
            runs[-1].append(it)
        else:
            runs.append([it])
    return runs


def write_outputs(out_dir: str | os.PathLike, record: ResultRecord, df: pd.DataFrame) -> None:
    """metrics.json and per_image.csv, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / PER_IMAGE_FILE) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    write_record(out_dir, record)
