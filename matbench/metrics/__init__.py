"""Metric math: pure functions on features or images, and a registry of the metrics `matbench eval` knows.

Each metric lives in its own module (fid, ids, prc, kid, pixel, lpips); bins and bootstrap add per-bin values and
confidence intervals. Direction, label and display scale of a metric are in matbench.results.METRIC_INFO; the
registry here only says what a metric needs and how to compute it (torch-fidelity style: plain dicts, a
register function that validates its arguments).

Calling conventions of MetricSpec.fn:
  kind "dataset":   fn(real_feats [N, D], fake_feats [N, D], **options) -> float
  kind "per_image": fn(real uint8 [N, 3, H, W], fake uint8 [N, 3, H, W], **options) -> np.ndarray [N]
Metrics with the same `group` come from one computation (e.g. pids and uids share one SVM fit); callers that
want several of them should call the group's function once (ids.pids_uids, prc.precision_recall,
pixel.pixel_metrics_batch).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from matbench.results import METRIC_INFO, MetricInfo

KINDS = ("dataset", "per_image")
NEEDS = ("inception", "vgg", "pixels", "lpips")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "dataset" | "per_image"
    needs: str  # "inception" | "vgg" | "pixels" | "lpips"
    fn: Callable[..., Any]
    group: str | None = None  # metrics computed together
    doc: str = ""

    @property
    def info(self) -> MetricInfo:
        return METRIC_INFO[self.name]


METRICS: dict[str, MetricSpec] = {}

# Names accepted by `--metrics` that stand for several metrics.
ALIASES: dict[str, tuple[str, ...]] = {"pr": ("precision", "recall"), "prc": ("precision", "recall"),
                                       "ids": ("pids", "uids"), "pixel": ("psnr", "ssim", "l1")}


def register_metric(name: str, kind: str, needs: str, fn: Callable[..., Any], group: str | None = None,
                    doc: str = "") -> MetricSpec:
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"metric name must be lower-case letters, digits, underscores; got {name!r}")
    if name in ALIASES:
        raise ValueError(f"metric name {name!r} is reserved as an alias")
    if name not in METRIC_INFO:
        raise ValueError(f"metric {name!r} has no entry in matbench.results.METRIC_INFO (label, direction); add one")
    if kind not in KINDS:
        raise ValueError(f"metric {name!r}: kind must be one of {KINDS}, got {kind!r}")
    if needs not in NEEDS:
        raise ValueError(f"metric {name!r}: needs must be one of {NEEDS}, got {needs!r}")
    if not callable(fn):
        raise ValueError(f"metric {name!r}: fn must be callable")
    spec = MetricSpec(name, kind, needs, fn, group, doc)
    existing = METRICS.get(name)
    if existing is not None and existing != spec:
        raise ValueError(f"metric {name!r} already registered differently")
    METRICS[name] = spec
    return spec


def get_metric(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


def list_metrics() -> list[str]:
    return list(METRICS)


def expand_metric_names(names: Iterable[str]) -> list[str]:
    """Resolve aliases ("pr" -> precision, recall) and validate; keeps order, drops duplicates."""
    out: list[str] = []
    for raw in names:
        n = raw.strip().lower()
        if not n:
            continue
        for m in ALIASES.get(n, (n,)):
            get_metric(m)
            if m not in out:
                out.append(m)
    return out


# ---- built-in metrics (imports are lazy so that `import matbench.metrics` stays cheap) ----

def _fid(real: np.ndarray, fake: np.ndarray, convention: str = "mat") -> float:
    from matbench.metrics.fid import fid

    return fid(real, fake, convention=convention)


def _kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    from matbench.metrics.kid import kid

    return kid(real, fake, subsets=subsets, subset_size=subset_size, seed=seed)["kid_mean"]


def _ids(key: str) -> Callable[..., float]:
    def fn(real: np.ndarray, fake: np.ndarray, max_iter: int = 1000) -> float:
        from matbench.metrics.ids import pids_uids

        return pids_uids(real, fake, max_iter=max_iter)[key]

    fn.__name__ = key
    return fn


def _prc(key: str) -> Callable[..., float]:
    def fn(real: np.ndarray, fake: np.ndarray, k: int = 3, batch: int = 1024) -> float:
        from matbench.metrics.prc import precision_recall

        return precision_recall(real, fake, k=k, batch=batch)[key]

    fn.__name__ = key
    return fn


def _pixel(key: str) -> Callable[..., np.ndarray]:
    def fn(real: Any, fake: Any) -> np.ndarray:
        from matbench.metrics.pixel import pixel_metrics_batch

        return pixel_metrics_batch(real, fake)[key]

    fn.__name__ = key
    return fn


def _lpips(real: Any, fake: Any, model: Any = None, net: str = "alex", device: str = "cpu",
           smoke: bool = False) -> np.ndarray:
    from matbench.metrics.lpips import LPIPS

    model = model or LPIPS(net=net, device=device, smoke=smoke)
    return model(real, fake).numpy().astype(np.float64)


register_metric("fid", "dataset", "inception", _fid, doc="Fréchet distance, conventions mat (1/N) / torch-fidelity")
register_metric("kid", "dataset", "inception", _kid, doc="KID (torch-fidelity), unbiased MMD^2, cubic kernel")
register_metric("pids", "dataset", "inception", _ids("pids"), group="ids", doc="paired IDS (CoModGAN)")
register_metric("uids", "dataset", "inception", _ids("uids"), group="ids", doc="unpaired IDS (CoModGAN)")
register_metric("precision", "dataset", "vgg", _prc("precision"), group="prc", doc="improved precision, k=3")
register_metric("recall", "dataset", "vgg", _prc("recall"), group="prc", doc="improved recall, k=3")
register_metric("lpips", "per_image", "lpips", _lpips, doc="LPIPS (lpips package), alex or vgg")
register_metric("psnr", "per_image", "pixels", _pixel("psnr"), group="pixel", doc="PSNR on uint8 RGB (MAT)")
register_metric("ssim", "per_image", "pixels", _pixel("ssim"), group="pixel", doc="SSIM 11x11 σ1.5, 5-px crop (MAT)")
register_metric("l1", "per_image", "pixels", _pixel("l1"), group="pixel", doc="mean |a-b|/255 (MAT)")
