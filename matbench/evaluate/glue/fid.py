"""FID with a bias-corrected bootstrap interval."""

from __future__ import annotations

import numpy as np

from matbench.evaluate.hooks import DatasetContext, MetricGlue
from matbench.evaluate.stats import _bootstrap, _fid_statistic
from matbench.results import MetricValue


def dataset(ev, ctx: DatasetContext) -> dict[str, MetricValue]:
    from matbench.metrics import fid as fidm

    real, fake = ctx.feats["inception_real"][ctx.idx], ctx.feats["inception_fake"][ctx.idx]
    conv, n = ev.fid_convention, ctx.n
    stat = _fid_statistic(real, fake, conv, ev.device)
    # metric module for N >= D; for N < D (bins, small sets) the equivalent N x N formula
    value = fidm.fid(real, fake, conv) if n >= real.shape[1] else stat(np.arange(n))
    # Resamples repeat images, which inflates FID: percentile intervals can miss the
    # point estimate entirely, so shift them back by the bootstrap bias estimate.
    lo, hi = _bootstrap(stat, n, ctx.n_bootstrap, ctx.seed, method="bias-corrected")
    lo = None if lo is None else max(lo, 0.0)  # the shift can cross 0; FID cannot
    return {"fid": MetricValue(value, lo, hi, n, convention=conv,
                               extra={"extractor": ev.inception_name, "ci_method": "bias-corrected"})}


GLUE = MetricGlue(name="fid", metrics=("fid",), extractor="inception", dataset=dataset)
