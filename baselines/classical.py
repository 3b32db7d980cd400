"""Weight-free baselines: OpenCV Telea / Navier-Stokes inpainting and a mean-colour fill.

They need no downloads, so the demo and the tests produce real numbers anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from matbench.models.base import Inpainter, Requirements, register_model
from matbench.models.options import Option


class OpenCVInpainter(Inpainter):
    """cv2.inpaint with the Telea (fast marching) or Navier-Stokes method."""

    requires = Requirements()

    def __init__(self, method: str = "telea", radius: float = 3.0) -> None:
        super().__init__()
        flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
        if method not in flags:
            raise ValueError(f"method must be one of {sorted(flags)}, got {method!r}")
        if radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        self.name = f"opencv-{method}"
        self.method = method
        self.radius = float(radius)
        self._flag = flags[method]

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        imgs = images.cpu().numpy().transpose(0, 2, 3, 1)  # N,H,W,3 RGB
        holes = hole.cpu().numpy()[:, 0].astype(np.uint8) * 255
        out = np.empty_like(imgs)
        for i in range(imgs.shape[0]):
            # cv2.inpaint works on any 3-channel 8-bit image; channel order does not matter to it.
            out[i] = cv2.inpaint(np.ascontiguousarray(imgs[i]), holes[i], self.radius, self._flag)
        return torch.from_numpy(out.transpose(0, 3, 1, 2).copy())

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "method": self.method, "radius": self.radius,
                "opencv": cv2.__version__}


class MeanFillInpainter(Inpainter):
    """Fill every hole pixel with the mean colour of the image's known pixels (grey if none)."""

    name = "mean-fill"
    requires = Requirements()

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        x = images.double()
        known = (~hole).double()
        count = known.sum(dim=(2, 3))  # N,1
        mean = (x * known).sum(dim=(2, 3)) / count.clamp(min=1)
        mean = torch.where(count > 0, mean, torch.full_like(mean, 127.5))
        fill = mean.round().clamp(0, 255).to(torch.uint8)[:, :, None, None].expand_as(images)
        return torch.where(hole.expand_as(images), fill, images)


RADIUS = Option("radius", "float", 3.0, "neighbourhood radius in pixels (cv2.inpaint's inpaintRadius), > 0")


@register_model("opencv-telea", description="OpenCV Telea (fast marching) inpainting; no weights", options=(RADIUS,))
def opencv_telea(radius: float = 3.0, **_: Any) -> Inpainter:
    return OpenCVInpainter("telea", radius)


@register_model("opencv-ns", description="OpenCV Navier-Stokes inpainting; no weights", options=(RADIUS,))
def opencv_ns(radius: float = 3.0, **_: Any) -> Inpainter:
    return OpenCVInpainter("ns", radius)


@register_model("mean-fill", description="Mean colour of the known pixels; no weights", options=())
def mean_fill(**_: Any) -> Inpainter:
    return MeanFillInpainter()
