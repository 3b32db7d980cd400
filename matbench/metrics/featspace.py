"""Metrics on any feature space: the names users request, which extractor each needs, and their values with
bootstrap intervals. One table (FEATURE_METRICS) maps a requested name to (kind, extractor):

  fd_dinov2   Fréchet distance on DINOv2 ViT-L/14 (Stein et al. 2023)      -> result key fd_dinov2
  cmmd        CMMD on CLIP ViT-L/14-336 (Jayasumana et al. 2024), ×1000     -> cmmd
  clip_fid    Fréchet distance on CLIP ViT-B/32 (clean-fid's CLIP-FID)      -> clip_fid
  fid_pt      FID on pytorch-fid's Inception (LaMa's protocol)               -> fid_pt
  kid_X, pr_X (precision_X, recall_X), dc_X (density_X, coverage_X), ids_X (pids_X, uids_X) on X in
  EXTRACTOR_ALIASES (dinov2, dinov2s/b/g, clip, clipb32, pt); dc alone is density/coverage on VGG16 fc2 like pr.

Adding a metric on a feature space is one line here; adding a feature space is one file in matbench/features/.
Every value carries the extractor name, weights sha256 and resize convention in `extra` (see `identity`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from matbench.metrics import bootstrap
from matbench.metrics import ids as idsm
from matbench.metrics.cmmd import SCALE, SIGMA, cmmd, l2_normalise
from matbench.metrics.density_coverage import per_sample
from matbench.metrics.fd import fd_interval
from matbench.metrics.kid import kid
from matbench.metrics.prc import manifold_membership
from matbench.metrics.registry import DatasetContext, register_group, register_metric
from matbench.results import MetricValue

EXTRACTOR_ALIASES = {
    "dinov2": "dinov2-vitl14", "dinov2s": "dinov2-vits14", "dinov2b": "dinov2-vitb14", "dinov2g": "dinov2-vitg14",
    "clip": "clip-vitl14-336", "clipb32": "clip-vitb32", "pt": "pt-inception",
}
KINDS = ("fd", "cmmd", "kid", "pr", "dc", "ids")
# result keys each kind writes (suffix appended for the generic forms)
_OUTPUTS = {"fd": ("fd",), "cmmd": ("cmmd",), "kid": ("kid",), "pr": ("precision", "recall"),
            "dc": ("density", "coverage"), "ids": ("pids", "uids")}
CMMD_MAX_BOOTSTRAP_N = 4096  # kernel matrices for the resampled CMMD are kept in memory up to this N


@dataclass(frozen=True)
class FeatureMetric:
    name: str  # what the user requests
    kind: str
    extractor: str
    outputs: tuple[str, ...]  # result keys in metrics.json


def _table() -> dict[str, FeatureMetric]:
    t = {
        "fd_dinov2": FeatureMetric("fd_dinov2", "fd", "dinov2-vitl14", ("fd_dinov2",)),
        "cmmd": FeatureMetric("cmmd", "cmmd", "clip-vitl14-336", ("cmmd",)),
        "clip_fid": FeatureMetric("clip_fid", "fd", "clip-vitb32", ("clip_fid",)),
        "fid_pt": FeatureMetric("fid_pt", "fd", "pt-inception", ("fid_pt",)),
        "dc": FeatureMetric("dc", "dc", "vgg16", ("density", "coverage")),
    }
    for alias, ext in EXTRACTOR_ALIASES.items():
        for kind in ("fd", "kid", "pr", "dc", "ids", "cmmd"):
            name = f"{kind}_{alias}"
            if name not in t:
                t[name] = FeatureMetric(name, kind, ext, tuple(f"{o}_{alias}" for o in _OUTPUTS[kind]))
    return t


FEATURE_METRICS: dict[str, FeatureMetric] = _table()


def _info(m: FeatureMetric, key: str) -> tuple[str, bool, float, int]:
    """(label, higher_is_better, scale, digits) of one output key."""
    base = key.split("_")[0] if m.kind not in ("fd", "cmmd") else m.kind
    suffix = "" if m.name in ("cmmd", "dc") else f" [{m.extractor}]"
    label, higher, scale, digits = {
        "fd": ("FD", False, 1.0, 2), "cmmd": ("CMMD", False, 1.0, 3), "kid": ("KID (×10³)", False, 1e3, 2),
        "precision": ("Precision", True, 1.0, 4), "recall": ("Recall", True, 1.0, 4),
        "density": ("Density", True, 1.0, 4), "coverage": ("Coverage", True, 1.0, 4),
        "pids": ("P-IDS (%)", True, 100.0, 2), "uids": ("U-IDS (%)", True, 100.0, 2)}[base]
    label = {"fd_dinov2": "FD_DINOv2", "clip_fid": "CLIP-FID", "fid_pt": "FID (pytorch-fid)"}.get(key, label + suffix)
    return label, higher, scale, digits


def parse(names: list[str]) -> list[FeatureMetric]:
    return [FEATURE_METRICS[n] for n in names if n in FEATURE_METRICS]


def identity(extractor: Any) -> dict[str, Any]:
    """What is recorded beside every value computed on an extractor's features."""
    return {"extractor": extractor.name, "weights_sha256": extractor.weights_sha256,
            "resize": getattr(extractor, "resize_convention", "") or "legacy-tf", "smoke": bool(extractor.smoke)}


# --------------------------------------------------------------------------------------------- statistics

def cmmd_statistic(real: np.ndarray, fake: np.ndarray, estimator: str = "unbiased"
                   ) -> Callable[[np.ndarray], float]:
    """CMMD of a paired resample from kernel matrices computed once (multiplicity weights w):
    Σ_{p≠q} k over resampled positions = wᵀKw - Σ w_i (k(x, x) = 1)."""
    x, y = l2_normalise(real), l2_normalise(fake)
    g = 1.0 / (2.0 * SIGMA * SIGMA)

    def kern(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.exp(-g * np.clip(d, 0.0, None))

    kxx, kyy, kxy = kern(x, x), kern(y, y), kern(x, y)
    n = x.shape[0]

    def stat(idx: np.ndarray) -> float:
        w = np.bincount(np.asarray(idx), minlength=n).astype(np.float64)
        m = w.sum()
        sxx, syy, sxy = w @ kxx @ w, w @ kyy @ w, w @ kxy @ w
        if estimator == "unbiased":
            return float(SCALE * ((sxx - m) / (m * (m - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (m * m)))
        return float(SCALE * (sxx / (m * m) + syy / (m * m) - 2.0 * sxy / (m * m)))

    return stat


def compute(fm: FeatureMetric, real: np.ndarray, fake: np.ndarray, ident: dict[str, Any], *, n_bootstrap: int,
            seed: int, **options: Any) -> dict[str, Any]:
    """{result key: MetricValue} of one feature metric on paired features (rows = images).

    options: convention ("mat"), device ("cpu"), kid_subsets (100), kid_subset_size (1000), ids_state (None: the
    whole set's SVM scores by metric name, filled on the first call and reused by the hole-ratio bins)."""
    convention = options.get("convention", "mat")
    device = options.get("device", "cpu")
    kid_subsets = int(options.get("kid_subsets", 100))
    kid_subset_size = int(options.get("kid_subset_size", 1000))
    ids_state = options.get("ids_state")
    n = real.shape[0]
    nb = n_bootstrap if n >= 2 else 0
    extra = dict(ident)
    out: dict[str, Any] = {}

    def ci(stat: Callable[[np.ndarray], float], method: str = "percentile") -> tuple[float | None, float | None]:
        if nb <= 0:
            return None, None
        lo, hi = bootstrap.bootstrap_ci(stat, n, nb, seed, method=method)
        return float(lo), float(hi)

    def mean_ci(v: np.ndarray) -> tuple[float | None, float | None]:
        if nb <= 0 or v.size < 2:
            return None, None
        lo, hi = bootstrap.mean_ci(np.asarray(v, dtype=np.float64), n_resamples=nb, seed=seed)
        return float(lo), float(hi)

    if fm.kind == "fd":
        value, lo, hi, method = fd_interval(real, fake, convention, nb, seed, device)
        out[fm.outputs[0]] = MetricValue(value, lo, hi, n, convention=convention, extra={**extra, "ci_method": method})
    elif fm.kind == "cmmd":
        value = cmmd(real, fake)
        lo = hi = None
        method = "bias-corrected"
        if n <= CMMD_MAX_BOOTSTRAP_N:
            lo, hi = ci(cmmd_statistic(real, fake), "bias-corrected")
        else:
            method = f"none (N > {CMMD_MAX_BOOTSTRAP_N}: kernel matrices too large to resample)"
        out[fm.outputs[0]] = MetricValue(value, lo, hi, n, extra={**extra, "sigma": 10.0, "scale": 1000.0,
                                                                  "estimator": "unbiased", "ci_method": method})
    elif fm.kind == "kid":
        k = kid(real, fake, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        half = 1.96 * k["kid_std"] / math.sqrt(kid_subsets)
        out[fm.outputs[0]] = MetricValue(k["kid_mean"], k["kid_mean"] - half, k["kid_mean"] + half, n,
                                         extra={**extra, "kid_std": k["kid_std"], "subset_size": k["subset_size"],
                                                "ci_method": "subset-normal"})
    elif fm.kind == "pr":
        if n <= 3:
            return out
        ind = manifold_membership(real, fake, k=3, device=device)
        for key, part in zip(fm.outputs, ("precision", "recall"), strict=True):
            v = ind[part].astype(np.float64)
            out[key] = MetricValue(float(v.mean()), *mean_ci(v), n, extra={**extra, "k": 3})
    elif fm.kind == "dc":
        k = 5
        if n <= k:
            return out
        s = per_sample(real, fake, k=k, device=device)
        dens, cov = s["density"] / k, s["coverage"].astype(np.float64)
        out[fm.outputs[0]] = MetricValue(float(dens.mean()), *mean_ci(dens), n, extra={**extra, "k": k})
        out[fm.outputs[1]] = MetricValue(float(cov.mean()), *mean_ci(cov), n, extra={**extra, "k": k})
    elif fm.kind == "ids":
        if ids_state is not None and fm.name in ids_state:
            rs, fs = ids_state[fm.name]
        else:
            r = idsm.pids_uids(real, fake)
            rs, fs = np.asarray(r["real_scores"]), np.asarray(r["fake_scores"])
            if ids_state is not None:  # the caller reuses these SVM scores for the hole-ratio bins
                ids_state[fm.name] = (rs, fs)
        for key, fn in zip(fm.outputs, (idsm.pids_from_scores, idsm.uids_from_scores), strict=True):
            lo, hi = ci(lambda j, fn=fn: fn(rs[j], fs[j]))
            out[key] = MetricValue(fn(rs, fs), lo, hi, n, extra=dict(extra))
    return out


def identity_of(ctx: DatasetContext, extractor: str) -> dict[str, Any]:
    return identity(ctx.ev.network(extractor))


def _step(fm: FeatureMetric) -> Any:
    def dataset(ctx: DatasetContext) -> dict[str, MetricValue]:
        ev, idx = ctx.ev, ctx.idx
        real, fake = ctx.features(fm.extractor)
        scores = ctx.state.setdefault("featspace_ids", {})
        state = {fm.name: tuple(s[idx] for s in scores[fm.name])} if ctx.in_bin and fm.kind == "ids" else scores
        return compute(fm, real, fake, identity_of(ctx, fm.extractor), n_bootstrap=ctx.n_bootstrap, seed=ctx.seed,
                       convention=ev.fid_convention, device=ev.device, kid_subsets=ev.kid_subsets,
                       kid_subset_size=ev.kid_subset_size, ids_state=state)

    dataset.__name__ = f"featspace_{fm.name}"
    return dataset


_INTERVAL = {"fd": "bias-corrected", "cmmd": "bias-corrected", "kid": "subset-normal", "pr": "membership",
             "dc": "bootstrap-mean", "ids": "percentile"}
for _i, _fm in enumerate(FEATURE_METRICS.values()):
    register_group(_fm.name, extractor=_fm.extractor, dataset=_step(_fm))
    for _j, _key in enumerate(_fm.outputs):
        _label, _higher, _scale, _digits = _info(_fm, _key)
        register_metric(_key, higher_is_better=_higher, label=_label, extractor=_fm.extractor, group=_fm.name,
                        request=_fm.name, scale=_scale, digits=_digits, interval=_INTERVAL[_fm.kind],
                        order=200 + _i + _j / 10, doc=f"{_fm.kind} on {_fm.extractor} features")(None)
