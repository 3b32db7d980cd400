"""The Evaluator: per-batch work (features, per-image metrics, pair checks) and the final dataset metrics
with bootstrap confidence intervals and hole-ratio bins. What each metric does lives in its glue file
(matbench/evaluate/glue/), listed in matbench/evaluate/registry.py.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from matbench.errors import InputError
from matbench.evaluate.batch import BatchResult
from matbench.evaluate.hooks import BatchContext, DatasetContext
from matbench.evaluate.pairs import PAIR_TOL, _pair_checks
from matbench.evaluate.registry import (
    EXTRACTORS,
    INCEPTION_METRICS,
    PER_IMAGE_METRICS,
    ROW_COLUMNS,
    extractors_for,
    glue_for,
    parse_metrics,
)
from matbench.evaluate.stats import BOOTSTRAP_CLOCK, _mean_metric
from matbench.history import git_provenance  # the commit, so `history import` keeps it (issue 25)
from matbench.results import PROTOCOL_FIELDS, MetricValue, ResultRecord

CPU_NET_BATCH = 2


class Evaluator:
    """Computes per-batch quantities and final dataset metrics for one (model, dataset, mask set) job."""

    def __init__(self, metrics: Sequence[str], *, device: str = "cpu", smoke: bool = False,
                 cache_dir: str | os.PathLike | None | bool = None, fid_convention: str = "mat",
                 lpips_net: str = "alex", inception: str = "inception-v3-compat",
                 inception_path: str | os.PathLike | None = None, n_bootstrap: int = 200, seed: int = 0,
                 batch_size: int = 16, vgg_path: str | os.PathLike | None = None, pair_tol: float = PAIR_TOL,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, allow_download: bool = True,
                 net_batch: int | None = None) -> None:
        self.metrics = parse_metrics(metrics)
        if fid_convention not in ("mat", "torch-fidelity"):
            raise InputError(f"unknown FID convention {fid_convention!r}; use mat or torch-fidelity")
        if inception not in ("inception-v3-compat", "inception-nvidia", "pt-inception"):
            raise InputError(f"unknown Inception backend {inception!r}; use inception-v3-compat, inception-nvidia "
                             "or pt-inception (pytorch-fid's, LaMa's protocol)")
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
        # Images per network call (LPIPS, feature extractors). On the CPU a few images already keep every
        # core busy and each extra image costs tens of MB of activations, so the default stays small there.
        on_cpu = self.device.startswith("cpu")
        self.net_batch = int(net_batch) if net_batch else (min(self.batch_size, CPU_NET_BATCH) if on_cpu
                                                           else self.batch_size)
        self.pair_tol = float(pair_tol)
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.allow_download = allow_download
        self._cache_dir = cache_dir
        self._cache = None
        self._lpips = None
        self.timings: dict[str, float] = {}

    # lazily built networks: a run that needs only PSNR loads nothing
    @property
    def needs_inception(self) -> bool:
        return bool(INCEPTION_METRICS & set(self.metrics))

    @property
    def needs_vgg(self) -> bool:
        return any(e.name == "vgg" for e in extractors_for(self.metrics))  # pr, dc

    @property
    def cache(self):
        from matbench.features import FeatureCache

        if self._cache is None and self._cache_dir is not False:
            self._cache = FeatureCache(None if self._cache_dir in (None, True) else self._cache_dir)
        return self._cache

    def extractor(self, name: str):
        """The feature extractor registered as `name`, built on first use (kept as self._<name>)."""
        attr = f"_{name}"
        if getattr(self, attr, None) is None:
            setattr(self, attr, EXTRACTORS[name].build(self))
        return getattr(self, attr)

    @property
    def inception(self):
        return self.extractor("inception")

    @property
    def vgg(self):
        return self.extractor("vgg")

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
        rows: list[dict] = [{"id": i, "hole_ratio": None, **dict.fromkeys(PER_IMAGE_METRICS),
                             "pair_check": "unchecked"} for i in ids]
        if hole is not None:
            if hole.shape != (n, 1, *real.shape[2:]):
                raise ValueError(f"process_batch: hole {tuple(hole.shape)} does not match images")
            ratios = hole.bool().flatten(1).to(torch.float64).mean(dim=1).tolist()
            checks = _pair_checks(real, fake, hole, self.pair_tol)
            for r, hr, c in zip(rows, ratios, checks, strict=True):
                r["hole_ratio"], r["pair_check"] = hr, c
        ctx = BatchContext(ids=ids, real=real, fake=fake, hole=hole, rows=rows)
        for g in glue_for(self.metrics):
            if g.batch is not None:
                t0 = time.perf_counter()
                g.batch(self, ctx)
                self._tick(g.name, t0)
        feats: dict[str, np.ndarray] = {}
        for e in extractors_for(self.metrics):
            t0 = time.perf_counter()
            net = self.extractor(e.name)
            feats[f"{e.name}_real"] = extract_cached(net, real, self.cache)
            feats[f"{e.name}_fake"] = net(fake)
            self._tick(f"{e.name}_features", t0)
        return BatchResult(ids=ids, rows=rows, features=feats)

    # ----------------------------------------------------------------------------------------- finalize

    def finalize(self, batches: Sequence[BatchResult], job: dict, protocol: dict | None = None
                 ) -> tuple[ResultRecord, pd.DataFrame]:
        t_start = time.perf_counter()
        boot0 = BOOTSTRAP_CLOCK["s"]
        ids = [i for b in batches for i in b.ids]
        rows = [r for b in batches for r in b.rows]
        n = len(ids)
        if n < 2:
            raise InputError(f"need at least 2 images to compute metrics, got {n}")
        dup = sorted(i for i, c in Counter(ids).items() if c > 1) if len(set(ids)) != n else []
        if dup:
            raise InputError(f"duplicate image ids across batches: {', '.join(dup[:10])}")
        feats: dict[str, np.ndarray] = {}
        for key in (f"{e}_{side}" for e in EXTRACTORS for side in ("real", "fake")):
            parts = [b.features[key] for b in batches if key in b.features]
            if parts:
                feats[key] = np.concatenate(parts).astype(np.float64)
                if feats[key].shape[0] != n:
                    raise InputError(f"{key}: {feats[key].shape[0]} feature rows for {n} images (batches incomplete)")
        self.last_features = feats  # for --save-features (features.npz), rows in per_image.csv order
        df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
        hole = df["hole_ratio"].to_numpy(dtype=np.float64) if df["hole_ratio"].notna().all() else None

        metrics, state = self._dataset_metrics(df, feats, np.arange(n), whole_state=None)
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
                    entry["metrics"], _ = self._dataset_metrics(df, feats, idx, whole_state=state)
                bins_out.append(entry)
        prov = self.provenance()
        self._tick("finalize", t_start)
        # resampling time inside the metric stages above (included in them, reported on its own too)
        self.timings["bootstrap"] = self.timings.get("bootstrap", 0.0) + BOOTSTRAP_CLOCK["s"] - boot0
        prov["timings_s"] = {k: round(v, 3) for k, v in self.timings.items()}
        proto = self._protocol(n, protocol or {}, batches)
        record = ResultRecord(job=dict(job), metrics=metrics, bins=bins_out, protocol=proto, provenance=prov,
                              smoke=self.smoke)
        return record, df

    def _dataset_metrics(self, df: pd.DataFrame, feats: dict[str, np.ndarray], idx: np.ndarray,
                         whole_state: dict | None) -> tuple[dict[str, MetricValue], dict]:
        """Metrics on the subset idx. whole_state: None for the whole set, else its state (bins reuse it)."""
        out: dict[str, MetricValue] = {}
        nb, seed = self.n_bootstrap, self.seed
        for m in PER_IMAGE_METRICS:
            if m in self.metrics:
                out[m] = _mean_metric(df[m].to_numpy(dtype=np.float64)[idx], nb, seed)
        ctx = DatasetContext(df=df, feats=feats, idx=idx, n_bootstrap=nb, seed=seed,
                             in_bin=whole_state is not None, state={} if whole_state is None else whole_state)
        for g in glue_for(self.metrics):
            if g.dataset is not None:
                t0 = time.perf_counter()
                out.update(g.dataset(self, ctx))
                self._tick(g.name, t0)
        return out, ctx.state

    def _protocol(self, n: int, given: dict, batches: Sequence[BatchResult]) -> dict:
        proto: dict[str, Any] = {k: given[k] for k in PROTOCOL_FIELDS if k in given}
        proto["fid_convention"] = self.fid_convention
        if self.needs_inception:
            proto["feature_extractor"] = self.inception_name
            proto["extractor_sha256"] = self.inception.weights_sha256
            proto["resize"] = getattr(self.inception, "resize_convention", "") or "legacy-tf"
        spaces = {e.name: self.extractor(e.name) for e in extractors_for(self.metrics)
                  if e.name not in ("inception", "vgg")}
        if spaces:  # DINOv2 / CLIP / pytorch-fid features behind fd_dinov2, cmmd, ...: identity of each
            from matbench.metrics.featspace import identity

            proto["feature_spaces"] = {k: {f: v for f, v in identity(x).items() if f != "smoke"}
                                       for k, x in spaces.items()}
        if "mask_kind" in given:
            proto["mask_kind"] = given["mask_kind"]
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
        for e in extractors_for(self.metrics):
            if e.name not in ("inception", "vgg"):
                weights[e.name] = self.extractor(e.name).describe()
        if "lpips" in self.metrics:
            try:
                weights["lpips"] = self.lpips.provenance()
            except Exception as e:  # provenance must never stop an evaluation
                weights["lpips"] = {"net": self.lpips_net, "error": str(e)}
        return {"versions": environment_versions(), "device": dev, "weights": weights, "smoke": self.smoke,
                "metrics_requested": list(self.metrics), "fid_convention": self.fid_convention,
                "n_bootstrap": self.n_bootstrap, "bootstrap_seed": self.seed, "pair_tol": self.pair_tol,
                "created": now_iso(), "git": git_provenance()}
