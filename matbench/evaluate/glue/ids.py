"""P-IDS and U-IDS: one linear SVM on all images; hole-ratio bins reuse its scores."""

from __future__ import annotations

import numpy as np

from matbench.evaluate.hooks import DatasetContext, MetricGlue
from matbench.evaluate.stats import _bootstrap
from matbench.results import MetricValue


def dataset(ev, ctx: DatasetContext) -> dict[str, MetricValue]:
    from matbench.metrics import ids as idsm

    idx, n = ctx.idx, ctx.n
    if not ctx.in_bin:
        real, fake = ctx.feats["inception_real"][idx], ctx.feats["inception_fake"][idx]
        r = idsm.pids_uids(real, fake)
        rs, fs = np.asarray(r["real_scores"]), np.asarray(r["fake_scores"])
        ctx.state["ids"] = {"real_scores": rs, "fake_scores": fs, "converged": r.get("converged")}
        extra = {"svm": "sklearn LinearSVC(dual=False)", "converged": r.get("converged")}
    else:
        whole = ctx.state["ids"]
        rs, fs = whole["real_scores"][idx], whole["fake_scores"][idx]
        extra = {"svm": "fitted on all images"}
    out: dict[str, MetricValue] = {}
    for m, fn in (("pids", idsm.pids_from_scores), ("uids", idsm.uids_from_scores)):
        if m in ev.metrics:
            lo, hi = _bootstrap(lambda j, fn=fn: fn(rs[j], fs[j]), n, ctx.n_bootstrap, ctx.seed)
            out[m] = MetricValue(fn(rs, fs), lo, hi, n, extra=dict(extra))
    return out


GLUE = MetricGlue(name="ids", metrics=("pids", "uids"), extractor="inception", dataset=dataset)
