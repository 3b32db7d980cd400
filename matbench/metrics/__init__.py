"""Metric math and the one metric registry.

One file per metric family (fid.py and the one Fréchet distance fd.py, ids.py, kid.py, prc.py, pixel.py, lpips.py,
featspace.py for any feature space; cmmd.py and density_coverage.py hold math used there), each declaring its
metrics with `register_metric` next to the code that computes them; bins.py and bootstrap.py add per-bin values
and confidence intervals. registry.py holds the registry and everything derived from it (METRIC_INFO, the default
set, the names `--metrics` accepts). A metric of your own, in your own module (docs/metrics.md):

    from matbench.metrics import register_metric

    @register_metric("hole_mse", per_image=True, higher_is_better=False, label="Hole MSE")
    def hole_mse(real, fake, hole):            # uint8 N×3×H×W, uint8 N×3×H×W, bool N×1×H×W -> float array [N]
        ...

and `matbench eval --metrics fid,mymod:hole_mse`.
"""

from matbench.metrics.registry import (
    ENTRY_POINT_GROUP,
    INCEPTION,
    INTERVALS,
    METRIC_INFO,
    BatchContext,
    DatasetContext,
    Group,
    Metric,
    default_metrics,
    external_info,
    extractors_for,
    get_metric,
    groups_for,
    known_metrics,
    load_metric,
    metric_info,
    outputs_of,
    parse_metrics,
    per_image_metrics,
    register_group,
    register_metric,
    registered,
    unregister_metric,
)

__all__ = [
    "ENTRY_POINT_GROUP", "INCEPTION", "INTERVALS", "METRIC_INFO", "BatchContext", "DatasetContext", "Group",
    "Metric", "default_metrics", "external_info", "extractors_for", "get_metric", "groups_for", "known_metrics",
    "load_metric", "metric_info", "outputs_of", "parse_metrics", "per_image_metrics", "register_group",
    "register_metric", "registered", "unregister_metric",
]
