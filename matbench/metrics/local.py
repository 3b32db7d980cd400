"""Local FID (`fid_local`): FID on a square crop around each image's hole, real crops against result crops.

Whole-image FID mostly sees the known pixels every model copies; the crop keeps the hole and its surroundings.
Crop of one image (H×W, bool hole):
  box    the hole's bounding box, rows y0..y1-1 and columns x0..x1-1;
  side   s = min(max(y1 - y0, x1 - x0, MIN_SIDE), H, W): the box's bounding square, at least MIN_SIDE = 128 px,
         at most the image's short side (a square that does not fit is cut to it; the hole may then stick out);
  place  centred on the box: top = y0 - floor((s - (y1 - y0)) / 2), left = x0 - floor((s - (x1 - x0)) / 2),
         then shifted to stay inside the image: top = clip(top, 0, H - s), left = clip(left, 0, W - s).
The real and the result image are cropped at the same square, each crop resized to the extractor's input size
(299 for the Inceptions) with the extractor's resize convention (legacy-tf for the MAT-protocol Inceptions,
legacy-pytorch for pt-inception: the protocol's), rounded to uint8 as a saved crop would be, and given to the
configured Inception (pool3, 2048-d). The distance, covariance convention and interval are FID's
(metrics.fd.fd_interval with the evaluation's fid_convention). Images without a hole have no crop: they are
left out (NaN feature rows) and counted in the value's extra["n_empty"]; fewer than 2 crops give no value.
"""

from __future__ import annotations

import numpy as np
import torch

from matbench import features as F
from matbench.errors import Hint, InputError
from matbench.metrics.fd import fd_interval
from matbench.metrics.registry import INCEPTION, DatasetContext, register_group, register_metric, register_view
from matbench.results import MetricValue

MIN_SIDE = 128
LOCAL = f"{INCEPTION}@local"


def crop_boxes(hole: torch.Tensor, min_side: int = MIN_SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """(has_hole [N] bool, boxes [N, 3] int64 as (top, left, side)) of bool holes [N, 1, H, W] (module doc);
    rows of images without a hole are zeros."""
    h, w = hole.shape[-2:]
    rows = hole[:, 0].any(2)  # [N, H]: row y has a hole pixel
    cols = hole[:, 0].any(1)  # [N, W]
    has = rows.any(1)

    def span(m: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        mi = m.to(torch.int8)
        first = mi.argmax(1)  # argmax returns the first maximum
        last = size - mi.flip(1).argmax(1)  # exclusive end
        return first.long(), last.long()

    y0, y1 = span(rows, h)
    x0, x1 = span(cols, w)
    side = torch.maximum(torch.maximum(y1 - y0, x1 - x0), torch.full_like(y0, min_side)).clamp(max=min(h, w))
    # floor division of a negative gap (a box longer than the square) still centres the square on the box
    top = (y0 - torch.div(side - (y1 - y0), 2, rounding_mode="floor")).clamp(min=0)
    left = (x0 - torch.div(side - (x1 - x0), 2, rounding_mode="floor")).clamp(min=0)
    top = torch.minimum(top, h - side)
    left = torch.minimum(left, w - side)
    boxes = torch.stack([top, left, side], 1) * has[:, None]
    return has, boxes


def crop_images(images: torch.Tensor, boxes: torch.Tensor, size: int, convention: str) -> torch.Tensor:
    """uint8 [K, 3, size, size]: each image's square (top, left, side) resized to size under `convention` and
    rounded; crops of one side length are cut and resized together (one call per distinct side, not per image)."""
    out = torch.empty((images.shape[0], 3, size, size), dtype=torch.uint8, device=images.device)
    sides = boxes[:, 2]
    for s in torch.unique(sides).tolist():
        idx = torch.nonzero(sides == s).flatten()
        ar = torch.arange(s, device=images.device)
        ys = (boxes[idx, 0].to(images.device)[:, None] + ar)[:, :, None]  # [k, s, 1]
        xs = (boxes[idx, 1].to(images.device)[:, None] + ar)[:, None, :]  # [k, 1, s]
        k = torch.arange(idx.numel(), device=images.device)[:, None, None]
        crops = images.index_select(0, idx.to(images.device))[k, :, ys, xs].permute(0, 3, 1, 2)  # [k, 3, s, s]
        out[idx.to(images.device)] = F.resize(crops.contiguous(), size, convention).round().clamp(0, 255).to(
            torch.uint8)
    return out


def _input_geometry(extractor: F.FeatureExtractor) -> tuple[int, str]:
    spec = F.get_spec(extractor.name)
    return spec.input_size, extractor.resize_convention or spec.native_resize


def local_view(real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor | None, extractor: F.FeatureExtractor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The view "local": (indices of images with a hole, their real crops, their result crops)."""
    if hole is None:
        raise InputError("fid_local: needs masks (a mask set in the spec)", hints=[Hint("--masks", "give --masks")])
    has, boxes = crop_boxes(hole)
    keep = torch.nonzero(has.cpu()).flatten()
    size, conv = _input_geometry(extractor)
    b = boxes.cpu()[keep]
    return keep, crop_images(real[keep], b, size, conv), crop_images(fake[keep], b, size, conv)


def _evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
    ev = ctx.ev
    real, fake = ctx.features(LOCAL)
    used = ~np.isnan(real).any(1)
    n_used = int(used.sum())
    extra = {"extractor": ev.extractor_name(LOCAL), "n_empty": int(real.shape[0] - n_used), "min_side": MIN_SIDE}
    if n_used < 2:
        return {"fid_local": MetricValue(float("nan"), None, None, n_used, convention=ev.fid_convention,
                                         extra=extra)}
    value, lo, hi, method = fd_interval(real[used], fake[used], ev.fid_convention, ctx.n_bootstrap, ctx.seed,
                                        ev.device)
    return {"fid_local": MetricValue(value, lo, hi, n_used, convention=ev.fid_convention,
                                     extra={**extra, "ci_method": method})}


register_view("local", local_view)
register_group("fid_local", extractor=LOCAL, dataset=_evaluate)
register_metric("fid_local", higher_is_better=False, label="FID (local)", extractor=LOCAL, group="fid_local",
                interval="bias-corrected", order=142,
                doc="FID on square crops (at least 128 px) around each hole, real against result crops")(None)
