"""The one list of metric and extractor glue the Evaluator runs.

Adding a metric: a file in matbench/evaluate/glue/ defining GLUE, one line in METRIC_GLUE and its name in
ALL_METRICS (the canonical order of tables and `--metrics`). Adding an extractor: a file defining
EXTRACTOR and one line in EXTRACTORS.
"""

from __future__ import annotations

from collections.abc import Sequence

from matbench.errors import InputError
from matbench.evaluate.glue import featspace, fid, ids, inception, kid, lpips, pixel, pr, vgg
from matbench.evaluate.hooks import ExtractorGlue, MetricGlue

# per-batch steps run in this order; dataset steps too, after the per-image means
METRIC_GLUE: tuple[MetricGlue, ...] = (pixel.GLUE, lpips.GLUE, fid.GLUE, ids.GLUE, kid.GLUE, pr.GLUE,
                                       *featspace.GLUES)
EXTRACTORS: dict[str, ExtractorGlue] = {e.name: e for e in (inception.EXTRACTOR, vgg.EXTRACTOR,
                                                            *featspace.EXTRACTOR_GLUES)}

ALL_METRICS = ("fid", "pids", "uids", "lpips", "pr", "kid", "psnr", "ssim", "l1")
# every name --metrics accepts: ALL_METRICS (the default set) and the feature-space metrics (fd_dinov2, cmmd, ...)
KNOWN_METRICS = (*ALL_METRICS, *featspace.METRICS)
PER_IMAGE_METRICS = ("lpips", "psnr", "ssim", "l1")  # per_image.csv columns, in this order
ROW_COLUMNS = ("id", "hole_ratio", *PER_IMAGE_METRICS, "pair_check")
INCEPTION_METRICS = frozenset(m for g in METRIC_GLUE if g.extractor == "inception" for m in g.metrics)
PIXEL_METRICS = frozenset(pixel.METRICS)

assert set(KNOWN_METRICS) == {m for g in METRIC_GLUE for m in g.metrics}, "registry: KNOWN_METRICS out of date"
assert set(PER_IMAGE_METRICS) == {m for g in METRIC_GLUE if g.per_image for m in g.metrics}


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    bad = [m for m in names if m not in KNOWN_METRICS]
    if bad:
        raise InputError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(ALL_METRICS)}, and on other "
                         "feature spaces fd_dinov2, cmmd, clip_fid, fid_pt, dc, {fd,kid,pr,dc,ids,cmmd}_X with X in "
                         "dinov2, dinov2s, dinov2b, dinov2g, clip, clipb32, pt (docs/metrics.md)")
    if not names:
        raise InputError("no metrics requested")
    return [m for m in KNOWN_METRICS if m in names]  # canonical order, no duplicates


def glue_for(metrics: Sequence[str]) -> list[MetricGlue]:
    """The glue whose metrics are requested, in registry order."""
    want = set(metrics)
    return [g for g in METRIC_GLUE if want & set(g.metrics)]


def extractors_for(metrics: Sequence[str]) -> list[ExtractorGlue]:
    """Extractors the requested metrics need, in EXTRACTORS order."""
    names = {g.extractor for g in glue_for(metrics) if g.extractor}
    return [e for n, e in EXTRACTORS.items() if n in names]
