"""PSNR, SSIM and L1 per image (matbench.metrics.pixel)."""

from __future__ import annotations

from matbench.errors import InputError
from matbench.evaluate.hooks import BatchContext, MetricGlue

METRICS = ("psnr", "ssim", "l1")


def batch(ev, ctx: BatchContext) -> None:
    from matbench.evaluate.folders import _list
    from matbench.metrics.pixel import pixel_metrics_batch

    try:
        px = pixel_metrics_batch(ctx.real, ctx.fake)
    except ValueError as e:  # e.g. images too small for the SSIM window
        raise InputError(f"PSNR/SSIM/L1 on {_list(ctx.ids, 3)}: {e}") from None
    for k in set(METRICS) & set(ev.metrics):
        for r, v in zip(ctx.rows, px[k], strict=True):
            r[k] = float(v)


GLUE = MetricGlue(name="pixel", metrics=METRICS, per_image=True, batch=batch)
