"""The Evaluator: per-batch work (features, per-image metrics, pair checks) and the final dataset metrics
with bootstrap confidence intervals and hole-ratio bins. What each metric computes is declared beside its math
and registered in matbench.metrics (registry.py); the Evaluator runs the computations the requested metrics
need, in registry order, with the options of one EvalConfig.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from matbench import features as F
from matbench.errors import InputError
from matbench.evaluate.batch import BatchResult
from matbench.evaluate.config import EvalConfig
from matbench.evaluate.pairs import _pair_checks
from matbench.history import git_provenance  # the commit, so `history import` keeps it (issue 25)
from matbench.metrics import bins as binsm
from matbench.metrics import registry as R
from matbench.metrics.bootstrap import BOOTSTRAP_CLOCK, mean_interval
from matbench.metrics.featspace import identity
from matbench.metrics.lpips import LPIPS
from matbench.results import PROTOCOL_FIELDS, MetricValue, ResultRecord, environment_versions, now_iso

# features.npz / batch keys of the two extractors that predate the registry; others use their own name
_KEYS = {R.INCEPTION: "inception", "vgg16": "vgg"}
ALL_METRICS = R.default_metrics()
PER_IMAGE_METRICS = R.per_image_metrics()  # built-in per_image.csv columns, in this order
ROW_COLUMNS = ("id", "hole_ratio", *PER_IMAGE_METRICS, "pair_check")  # then per-image metrics of user modules


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """Requested metric names in canonical order (built-ins, `module:name`, entry points); see matbench.metrics."""
    return R.parse_metrics(spec)


class Evaluator:
    """Computes per-batch quantities and final dataset metrics for one (model, dataset, mask set) job.

    Evaluator(metrics, config) or Evaluator(metrics, **options) with the fields of EvalConfig as options."""

    def __init__(self, metrics: Sequence[str] | str | None = None, config: EvalConfig | None = None,
                 **options: Any) -> None:
        self.metrics = parse_metrics(ALL_METRICS if metrics is None else metrics)
        if config is None:
            config = EvalConfig.from_options(options)
        elif options:
            config = config.replace(**options)
        self.config = config
        self.per_image = R.per_image_metrics(self.metrics)
        self.row_columns = (*ROW_COLUMNS, *(m for m in self.per_image if m not in PER_IMAGE_METRICS))
        self._groups = R.groups_for(self.metrics)
        self._extractors = R.extractors_for(self.metrics)
        # the networks behind them: "inception", "inception:spatial" and "inception@local" share one
        self._bases = list(dict.fromkeys(R.split_extractor(e)[0] for e in self._extractors))
        self._cache: F.FeatureCache | None = None
        self._networks: dict[str, Any] = {}
        self._lpips: LPIPS | None = None
        self.timings: dict[str, float] = {}
        self.last_features: dict[str, np.ndarray] = {}

    # options, read by the metric computations (matbench/metrics/*.py) through ctx.ev
    def __getattr__(self, name: str) -> Any:
        if name != "config" and name in EvalConfig.fields():
            return getattr(self.config, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        # `ev.n_bootstrap = 0` keeps working (and is not silently ignored): options live in the frozen config
        if name in EvalConfig.fields() and "config" in self.__dict__:
            object.__setattr__(self, "config", self.config.replace(**{name: value}))
        else:
            object.__setattr__(self, name, value)

    @property
    def device(self) -> str:
        return str(self.config.device)

    @property
    def inception_name(self) -> str:
        return self.config.inception

    @property
    def net_batch(self) -> int:
        return self.config.effective_net_batch

    # lazily built networks: a run that needs only PSNR loads nothing
    @property
    def needs_inception(self) -> bool:
        return R.INCEPTION in self._bases

    @property
    def needs_vgg(self) -> bool:
        return "vgg16" in self._bases  # pr, dc

    @property
    def cache(self) -> F.FeatureCache | None:
        cd = self.config.cache_dir
        if self._cache is None and cd is not False:
            self._cache = F.FeatureCache(None if cd in (None, True) else cd)
        return self._cache

    @staticmethod
    def feature_key(extractor: str) -> str:
        """The batch/features.npz key of an extractor's features (`<key>_real`, `<key>_fake`)."""
        base, output, view = R.split_extractor(extractor)
        return R.join_extractor(_KEYS.get(base, base), output, view)

    def extractor_name(self, extractor: str) -> str:
        """The features registry name behind an extractor of the metric registry (inception: the backend), with
        its output and view (inception-v3-compat:spatial)."""
        base, output, view = R.split_extractor(extractor)
        return R.join_extractor(self.config.inception if base == R.INCEPTION else base, output, view)

    def network(self, extractor: str) -> Any:
        """The feature extractor `extractor` (a matbench.features name, or inception), built on first use."""
        extractor = R.split_extractor(extractor)[0]
        if extractor not in self._networks:
            c = self.config
            name = self.extractor_name(extractor)
            path = {R.INCEPTION: c.inception_path, "vgg16": c.vgg_path}.get(extractor) or c.feature_weights.get(name)
            self._networks[extractor] = F.get_extractor(name, self.device, c.smoke, path, batch_size=self.net_batch,
                                                        allow_download=c.allow_download, runtime=c.runtime)
        return self._networks[extractor]

    def extractor(self, key: str) -> Any:
        """The network behind a feature key (inception, vgg, or an extractor name)."""
        return self.network({v: k for k, v in _KEYS.items()}.get(key, key))

    @property
    def inception(self) -> Any:
        return self.network(R.INCEPTION)

    @property
    def vgg(self) -> Any:
        return self.network("vgg16")

    @property
    def lpips(self) -> LPIPS:
        if self._lpips is None:
            c = self.config
            self._lpips = LPIPS(c.lpips_net, self.device, c.smoke, allow_download=c.allow_download)
        return self._lpips

    def _tick(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def process_batch(self, ids: Sequence[str], real: torch.Tensor, fake: torch.Tensor,
                      hole: torch.Tensor | None = None) -> BatchResult:
        """Per-image metrics, pair checks and features for one batch (real features via the cache)."""
        ids = [str(i) for i in ids]
        for name, t in (("real", real), ("fake", fake)):
            if not torch.is_tensor(t) or t.dtype != torch.uint8 or t.dim() != 4 or t.shape[1] != 3:
                raise ValueError(f"process_batch: {name} must be uint8 [N,3,H,W]")
        if real.shape != fake.shape:
            raise ValueError(f"process_batch: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ")
        if len(ids) != real.shape[0]:
            raise ValueError(f"process_batch: {len(ids)} ids for {real.shape[0]} images")
        n = len(ids)
        extra_cols = self.row_columns[len(ROW_COLUMNS):]
        rows: list[dict] = [{"id": i, "hole_ratio": None, **dict.fromkeys(PER_IMAGE_METRICS),
                             "pair_check": "unchecked", **dict.fromkeys(extra_cols)} for i in ids]
        if hole is not None:
            if hole.shape != (n, 1, *real.shape[2:]):
                raise ValueError(f"process_batch: hole {tuple(hole.shape)} does not match images")
            hole = hole.bool()
            ratios = hole.flatten(1).to(torch.float64).mean(dim=1).tolist()
            checks = _pair_checks(real, fake, hole, self.config.pair_tol)
            for r, hr, c in zip(rows, ratios, checks, strict=True):
                r["hole_ratio"], r["pair_check"] = hr, c
        feats: dict[str, np.ndarray] = {}  # computations' per-image arrays (ctx.features), then extractor features
        ctx = R.BatchContext(ids=ids, real=real, fake=fake, hole=hole, rows=rows, ev=self, features=feats)
        for g in self._groups:
            if g.batch is not None:
                t0 = time.perf_counter()
                g.batch(ctx)
                self._tick(g.name, t0)
        feats.update(self._batch_features(real, fake, hole))
        return BatchResult(ids=ids, rows=rows, features=feats)

    def _batch_features(self, real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor | None
                        ) -> dict[str, np.ndarray]:
        """Features of every requested extractor: one forward pass per network and view for all its outputs."""
        plan: dict[tuple[str, str], list[str]] = {}
        for e in self._extractors:
            base, output, view = R.split_extractor(e)
            plan.setdefault((base, view), []).append(output)
        feats: dict[str, np.ndarray] = {}
        n = real.shape[0]
        for (base, view), outputs in plan.items():
            t0 = time.perf_counter()
            net = self.network(base)
            keep, r, f = (None, real, fake) if not view else R.get_view(view)(real, fake, hole, net)
            fr = F.extract_cached_outputs(net, r, self.cache, outputs)
            ff = net.extract(f, outputs)
            for o in outputs:
                key = self.feature_key(R.join_extractor(base, o, view))
                for side, got in (("real", fr[o]), ("fake", ff[o])):
                    if keep is not None:  # images the view leaves out: NaN rows (metrics leave them out and count)
                        full = np.full((n, got.shape[1]), np.nan)
                        full[keep.cpu().numpy()] = got
                        got = full
                    feats[f"{key}_{side}"] = got
            self._tick(f"{self.feature_key(R.join_extractor(base, '', view))}_features", t0)
        return feats

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
        keys = [f"{self.feature_key(e)}_{side}" for e in self._extractors for side in ("real", "fake")]
        keys += [k for b in batches for k in b.features if k not in keys]  # per-image arrays of computations
        for key in dict.fromkeys(keys):
            parts = [b.features[key] for b in batches if key in b.features]
            if parts:
                feats[key] = np.concatenate(parts).astype(np.float64)
                if feats[key].shape[0] != n:
                    raise InputError(f"{key}: {feats[key].shape[0]} feature rows for {n} images (batches incomplete)")
        self.last_features = feats  # for --save-features (features.npz), rows in per_image.csv order
        df = pd.DataFrame(rows, columns=list(self.row_columns))
        hole = df["hole_ratio"].to_numpy(dtype=np.float64) if df["hole_ratio"].notna().all() else None

        metrics, state = self._dataset_metrics(df, feats, np.arange(n), whole_state=None)
        bins_out: list[dict] = []
        if hole is not None:
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
        proto = self._protocol(n, protocol or {})
        record = ResultRecord(job=dict(job), metrics=metrics, bins=bins_out, protocol=proto, provenance=prov,
                              smoke=self.config.smoke)
        return record, df

    def _dataset_metrics(self, df: pd.DataFrame, feats: dict[str, np.ndarray], idx: np.ndarray,
                         whole_state: dict | None) -> tuple[dict[str, MetricValue], dict]:
        """Metrics on the subset idx. whole_state: None for the whole set, else its state (bins reuse it)."""
        out: dict[str, MetricValue] = {}
        nb, seed = self.config.n_bootstrap, self.config.seed
        reg = R.registered()
        for m in self.per_image:
            v = df[m].to_numpy(dtype=np.float64)[idx]
            used = v[~np.isnan(v)]  # NaN: the image has no value (an empty region); left out, and counted
            extra = dict(reg[m].extra)
            if extra or used.size < v.size:
                extra["n_empty"] = int(v.size - used.size)
            lo, hi = mean_interval(used, nb, seed)
            out[m] = MetricValue(value=float(used.mean()) if used.size else float("nan"), ci_low=lo, ci_high=hi,
                                 n=int(used.size), extra=extra)
        ctx = R.DatasetContext(feats=feats, idx=idx, n_bootstrap=nb, seed=seed, ev=self,
                               in_bin=whole_state is not None, state={} if whole_state is None else whole_state)
        for g in self._groups:
            if g.dataset is not None:
                t0 = time.perf_counter()
                out.update(g.dataset(ctx))
                self._tick(g.name, t0)
        return out, ctx.state

    def _protocol(self, n: int, given: dict) -> dict:
        proto: dict[str, Any] = {k: given[k] for k in PROTOCOL_FIELDS if k in given}
        proto["fid_convention"] = self.config.fid_convention
        if self.needs_inception:
            proto["feature_extractor"] = self.inception_name
            proto["extractor_sha256"] = self.inception.weights_sha256
            proto["resize"] = getattr(self.inception, "resize_convention", "") or "legacy-tf"
        spaces = {self.feature_key(e): self.network(e) for e in self._bases if e not in _KEYS}
        if spaces:  # DINOv2 / CLIP / pytorch-fid features behind fd_dinov2, cmmd, ...: identity of each
            proto["feature_spaces"] = {k: {f: v for f, v in identity(x).items() if f != "smoke"}
                                       for k, x in spaces.items()}
        if "mask_kind" in given:
            proto["mask_kind"] = given["mask_kind"]
        proto["n_images"] = n
        proto.setdefault("resolution", given.get("resolution"))
        return proto

    def provenance(self) -> dict:
        c = self.config
        dev = self.device
        if dev.startswith("cuda") and torch.cuda.is_available():
            dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
        weights: dict[str, Any] = {}
        for e in self._bases:
            weights[self.feature_key(e)] = self.network(e).describe()
        if "lpips" in self.metrics or self._lpips is not None:  # the region metrics' LPIPS maps use it too
            try:
                weights["lpips"] = self.lpips.provenance()
            except Exception as e:  # provenance must never stop an evaluation
                weights["lpips"] = {"net": c.lpips_net, "error": str(e)}
        prov = {"versions": environment_versions(), "device": dev, "weights": weights, "smoke": c.smoke,
                "metrics_requested": list(self.metrics), "fid_convention": c.fid_convention,
                "n_bootstrap": c.n_bootstrap, "bootstrap_seed": c.seed, "pair_tol": c.pair_tol,
                "created": now_iso(), "git": git_provenance()}
        info = R.external_info(R.outputs_of(self.metrics))
        if info:  # metrics of user modules: what readers in other processes need to show them
            prov["metric_info"] = info
        return prov
