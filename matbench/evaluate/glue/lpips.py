"""LPIPS per image (matbench.metrics.lpips), in sub-batches of the evaluator's net_batch."""

from __future__ import annotations

from matbench.evaluate.hooks import BatchContext, MetricGlue


def batch(ev, ctx: BatchContext) -> None:
    vals: list[float] = []
    bs = ev.net_batch
    for i in range(0, len(ctx.ids), bs):
        vals.extend(ev.lpips(ctx.real[i:i + bs], ctx.fake[i:i + bs], ctx.ids[i:i + bs]).tolist())
    for r, v in zip(ctx.rows, vals, strict=True):
        r["lpips"] = float(v)


GLUE = MetricGlue(name="lpips", metrics=("lpips",), per_image=True, batch=batch)
