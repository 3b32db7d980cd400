"""KID with a normal-approximation interval from the spread of its subset estimates."""

from __future__ import annotations

import math

from matbench.evaluate.hooks import DatasetContext, MetricGlue
from matbench.results import MetricValue


def dataset(ev, ctx: DatasetContext) -> dict[str, MetricValue]:
    from matbench.metrics import kid as kidm

    real, fake = ctx.feats["inception_real"][ctx.idx], ctx.feats["inception_fake"][ctx.idx]
    k = kidm.kid(real, fake, subsets=ev.kid_subsets, subset_size=ev.kid_subset_size, seed=ctx.seed)
    half = 1.96 * k["kid_std"] / math.sqrt(ev.kid_subsets)  # documented in docs/metrics.md
    return {"kid": MetricValue(k["kid_mean"], k["kid_mean"] - half, k["kid_mean"] + half, ctx.n,
                               extra={"kid_std": k["kid_std"], "subset_size": k.get("subset_size"),
                                      "subsets": ev.kid_subsets, "ci_method": "subset-normal"})}


GLUE = MetricGlue(name="kid", metrics=("kid",), extractor="inception", dataset=dataset)
