"""Metrics on any feature space: the names users request, which extractor each needs, and their values with
bootstrap intervals. One table (FEATURE_METRICS) maps a requested name to (kind, extractor):

  fd_dinov2   Fréchet distance on DINOv2 ViT-L/14 (Stein et al. 2023)      -> result key fd_dinov2
  cmmd        CMMD on CLIP ViT-L/14-336 (Jayasumana et al. 2024), ×1000     -> cmmd
  clip_fid    Fréchet distance on CLIP ViT-B/32 (clean-fid's CLIP-FID)      -> clip_fid
  fid_pt      FID on pytorch-fid's Inception (LaMa's protocol)               -> fid_pt
  kid_X, pr_X (precision_X, recall_X), dc_X (density_X, coverage_X), ids_X (pids_X, uids_X) on X in
  EXTRACTOR_ALIASES (dinov2, dinov2s/b/g, clip, clipb32, pt); dc alone is density/coverage on VGG16 fc2 like pr.

Adding a metric on a feature space is one line here; adding a feature space is one file in matbench/extractors/.
Every value carries the extractor name, weights sha256 and resize convention in `extra` (see `identity`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def output_keys() -> list[str]:
    return list(dict.fromkeys(k for m in FEATURE_METRICS.values() for k in m.outputs))


def metric_infos(info_cls: type) -> list[Any]:
    """Display information (results.MetricInfo) for every result key written here."""
    out = []
    for m in FEATURE_METRICS.values():
        for key in m.outputs:
            base = key.split("_")[0] if m.kind not in ("fd", "cmmd") else m.kind
            suffix = "" if m.name in ("cmmd", "dc") else f" [{m.extractor}]"
            label, higher, scale, digits = {
                "fd": ("FD", False, 1.0, 2), "cmmd": ("CMMD", False, 1.0, 3), "kid": ("KID (×10³)", False, 1e3, 2),
                "precision": ("Precision", True, 1.0, 4), "recall": ("Recall", True, 1.0, 4),
                "density": ("Density", True, 1.0, 4), "coverage": ("Coverage", True, 1.0, 4),
                "pids": ("P-IDS (%)", True, 100.0, 2), "uids": ("U-IDS (%)", True, 100.0, 2)}[base]
            if key == "fd_dinov2":
                label, suffix = "FD_DINOv2", ""
            elif key == "clip_fid":
                label, suffix = "CLIP-FID", ""
            elif key == "fid_pt":
                label, suffix = "FID (pytorch-fid)", ""
            out.append(info_cls(key, label + suffix, higher, scale, digits))
    return out


def parse(names: list[str]) -> list[FeatureMetric]:
    return [FEATURE_METRICS[n] for n in names if n in FEATURE_METRICS]


def identity(extractor: Any) -> dict[str, Any]:
    """What is recorded beside every value computed on an extractor's features."""
    return {"extractor": extractor.name, "weights_sha256": extractor.weights_sha256,
            "resize": getattr(extractor, "resize_convention", "") or "legacy-tf", "smoke": bool(extractor.smoke)}


# --------------------------------------------------------------------------------------------- statistics

def fd_statistic(real: np.ndarray, fake: np.ndarray, convention: str, device: str = "cpu"
                 ) -> Callable[[np.ndarray], float]:
    """Fréchet distance of a paired resample idx: the N x N cross-product form when N < D, else FIDResampler."""
    from matbench.metrics.fid import FIDResampler

    n, d = real.shape
    if n >= d:
        return FIDResampler(real, fake, convention, device=device)

    def stat(idx: np.ndarray) -> float:
        r, f = real[idx], fake[idx]
        m = r.shape[0]
        c = 1.0 / (m if convention == "mat" else m - 1)
        a, b = r - r.mean(0), f - f.mean(0)
        diff = r.mean(0) - f.mean(0)
        # tr sqrt(S1 S2) = c * nuclear norm of A B^T (A, B centred features): no D x D matrix
        tr = c * float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
        return float(diff @ diff + c * (a * a).sum() + c * (b * b).sum() - 2.0 * tr)

    return stat


def cmmd_statistic(real: np.ndarray, fake: np.ndarray, estimator: str = "unbiased"
                   ) -> Callable[[np.ndarray], float]:
    """CMMD of a paired resample from kernel matrices computed once (multiplicity weights w):
    Σ_{p≠q} k over resampled positions = wᵀKw - Σ w_i (k(x, x) = 1)."""
    from matbench.metrics.cmmd import SCALE, SIGMA, l2_normalise

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
            seed: int, convention: str = "mat", device: str = "cpu", kid_subsets: int = 100,
            kid_subset_size: int = 1000, ids_state: dict | None = None, quiet: bool = False) -> dict[str, Any]:
    """{result key: MetricValue} of one feature metric on paired features (rows = images)."""
    from matbench.metrics import bootstrap
    from matbench.results import MetricValue

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
        stat = fd_statistic(real, fake, convention, device)
        value = stat(np.arange(n))
        lo, hi = ci(stat, "bias-corrected")
        lo = None if lo is None else max(lo, 0.0)
        out[fm.outputs[0]] = MetricValue(value, lo, hi, n, convention=convention,
                                         extra={**extra, "ci_method": "bias-corrected"})
    elif fm.kind == "cmmd":
        from matbench.metrics.cmmd import cmmd

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
        from matbench.metrics.kid import kid

        k = kid(real, fake, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        half = 1.96 * k["kid_std"] / math.sqrt(kid_subsets)
        out[fm.outputs[0]] = MetricValue(k["kid_mean"], k["kid_mean"] - half, k["kid_mean"] + half, n,
                                         extra={**extra, "kid_std": k["kid_std"], "subset_size": k["subset_size"],
                                                "ci_method": "subset-normal"})
    elif fm.kind == "pr":
        from matbench.metrics.prc import manifold_membership

        if n <= 3:
            return out
        ind = manifold_membership(real, fake, k=3, device=device)
        for key, part in zip(fm.outputs, ("precision", "recall"), strict=True):
            v = ind[part].astype(np.float64)
            out[key] = MetricValue(float(v.mean()), *mean_ci(v), n, extra={**extra, "k": 3})
    elif fm.kind == "dc":
        from matbench.metrics.density_coverage import per_sample

        k = 5
        if n <= k:
            return out
        s = per_sample(real, fake, k=k, device=device)
        dens, cov = s["density"] / k, s["coverage"].astype(np.float64)
        out[fm.outputs[0]] = MetricValue(float(dens.mean()), *mean_ci(dens), n, extra={**extra, "k": k})
        out[fm.outputs[1]] = MetricValue(float(cov.mean()), *mean_ci(cov), n, extra={**extra, "k": k})
    elif fm.kind == "ids":
        from matbench.metrics import ids as idsm

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
