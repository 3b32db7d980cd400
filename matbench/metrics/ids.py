"""Paired / Unpaired Inception Discriminative Scores (CoModGAN, ICLR 2021; computed the same way by MAT).

A linear SVM (sklearn LinearSVC(dual=False), all other defaults: squared hinge, L2, C=1, tol=1e-4) is fit on
the 2N Inception features, real = label 1, inpainted ("fake") = label 0, features not standardised.
  U-IDS = 1 - accuracy of that SVM on its own training set (misclassification rate).
  P-IDS = fraction of pairs i (real image i, its completion) with f(fake_i) > f(real_i), strict,
          f = decision_function.
Both are fractions in [0, 1]; tables show them x100 (results.METRIC_INFO).
A completion that fools the SVM perfectly gives U-IDS 0.5 and P-IDS about 0.5; mis-paired features
(results matched with the wrong ground truths) still give a valid-looking U-IDS, so pairing is checked upstream.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from matbench.metrics.bootstrap import bootstrap_interval
from matbench.metrics.registry import DatasetContext, register_group, register_metric
from matbench.results import MetricValue


def _check_pairs(real_feats: np.ndarray, fake_feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(real_feats)
    fake = np.asarray(fake_feats)
    if real.ndim != 2 or fake.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D]; got real {real.shape}, fake {fake.shape}")
    if real.shape != fake.shape:
        raise ValueError(f"P-IDS needs paired features of equal shape; got real {real.shape}, fake {fake.shape}")
    if real.shape[0] < 2:
        raise ValueError(f"need at least 2 pairs, got {real.shape[0]}")
    return real, fake


def pids_from_scores(real_scores: np.ndarray, fake_scores: np.ndarray) -> float:
    """Fraction of pairs whose completion scores strictly above its real image."""
    r = np.asarray(real_scores, dtype=np.float64).ravel()
    f = np.asarray(fake_scores, dtype=np.float64).ravel()
    if r.shape != f.shape or r.size == 0:
        raise ValueError(f"paired scores needed; got {r.shape} and {f.shape}")
    return float(np.mean(f > r))


def uids_from_scores(real_scores: np.ndarray, fake_scores: np.ndarray) -> float:
    """Misclassification rate of the SVM: real counts as correct when f > 0 (sklearn predicts class 1 exactly
    when decision_function > 0), fake when f <= 0."""
    r = np.asarray(real_scores, dtype=np.float64).ravel()
    f = np.asarray(fake_scores, dtype=np.float64).ravel()
    if r.size + f.size == 0:
        raise ValueError("no scores")
    wrong = np.count_nonzero(r <= 0) + np.count_nonzero(f > 0)
    return float(wrong / (r.size + f.size))


def pids_uids(real_feats: np.ndarray, fake_feats: np.ndarray, max_iter: int = 1000) -> dict[str, Any]:
    """Fit the SVM on real (1) and fake (0) features and return P-IDS, U-IDS and the fitted SVM.

    Keys: pids, uids, svm, real_scores, fake_scores (decision values, for bootstrap over pairs),
    converged (False if liblinear hit max_iter), n_iter.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    real, fake = _check_pairs(real_feats, fake_feats)
    n = real.shape[0]
    x = np.concatenate([real, fake], axis=0)
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    svm = LinearSVC(dual=False, max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    real_scores = svm.decision_function(real)
    fake_scores = svm.decision_function(fake)
    return {
        "pids": pids_from_scores(real_scores, fake_scores),
        "uids": uids_from_scores(real_scores, fake_scores),
        "svm": svm,
        "real_scores": real_scores,
        "fake_scores": fake_scores,
        "converged": converged,
        "n_iter": int(np.max(svm.n_iter_)),
    }


def _evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
    """P-IDS and U-IDS: one linear SVM on all images; hole-ratio bins reuse its scores."""
    idx, n = ctx.idx, ctx.n
    if not ctx.in_bin:
        real, fake = ctx.features("inception")
        r = pids_uids(real, fake)
        rs, fs = np.asarray(r["real_scores"]), np.asarray(r["fake_scores"])
        ctx.state["ids"] = {"real_scores": rs, "fake_scores": fs, "converged": r.get("converged")}
        extra = {"svm": "sklearn LinearSVC(dual=False)", "converged": r.get("converged")}
    else:
        whole = ctx.state["ids"]
        rs, fs = whole["real_scores"][idx], whole["fake_scores"][idx]
        extra = {"svm": "fitted on all images"}
    out: dict[str, MetricValue] = {}
    for m, fn in (("pids", pids_from_scores), ("uids", uids_from_scores)):
        if m in ctx.ev.metrics:
            lo, hi = bootstrap_interval(lambda j, fn=fn: fn(rs[j], fs[j]), n, ctx.n_bootstrap, ctx.seed)
            out[m] = MetricValue(fn(rs, fs), lo, hi, n, extra=dict(extra))
    return out


register_group("ids", extractor="inception", dataset=_evaluate)
register_metric("pids", higher_is_better=True, label="P-IDS (%)", extractor="inception", group="ids", scale=100.0,
                default=2, order=30, doc="paired inception discriminative score (CoModGAN)")(None)
register_metric("uids", higher_is_better=True, label="U-IDS (%)", extractor="inception", group="ids", scale=100.0,
                default=3, order=40, doc="unpaired inception discriminative score (CoModGAN)")(None)
