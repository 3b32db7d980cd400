"""Named resize conventions of feature extractors: the step that alone moves FID (Parmar et al., clean-fid).

Every convention takes uint8 RGB [N, 3, H, W] and returns float32 [N, 3, S, S] on the 0..255 scale, without
quantisation, ready for the network's own normalisation:

- ``legacy-tf``: bilinear like TensorFlow 1.x ``resize_bilinear`` (align_corners=False, no half-pixel offset:
  source x = dst x * in/out), computed by torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``. This is
  what NVIDIA's TorchScript Inception and torch-fidelity do inside the network (MAT's and CoModGAN's protocol).
- ``legacy-pytorch``: ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` (half-pixel
  centres, no antialiasing), as pytorch-fid's InceptionV3 does inside the network (LaMa's protocol).
- ``clean``: PIL bicubic on float32 per channel (antialiased, no quantisation to uint8), as clean-fid's
  ``"clean"`` mode.

At an unchanged size every convention returns the image itself (as float), which lets an extractor resize
first and then call the package network whose own internal resize becomes the identity.
"""

from __future__ import annotations

import numpy as np
import torch

RESIZE_CONVENTIONS = ("legacy-tf", "legacy-pytorch", "clean")


def check_convention(name: str) -> str:
    if name not in RESIZE_CONVENTIONS:
        raise ValueError(f"unknown resize convention {name!r}; expected one of {', '.join(RESIZE_CONVENTIONS)}")
    return name


def _legacy_tf(x: torch.Tensor, size: int) -> torch.Tensor:
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    return interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size), align_corners=False)


def _legacy_pytorch(x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _clean(x: torch.Tensor, size: int) -> torch.Tensor:
    from PIL import Image

    a = x.detach().cpu().numpy()
    out = np.empty((a.shape[0], 3, size, size), dtype=np.float32)
    for n in range(a.shape[0]):
        for c in range(3):
            # mode "F" keeps the float result of the bicubic filter: no rounding back to 8 bits
            im = Image.fromarray(a[n, c].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC)
            out[n, c] = np.asarray(im, dtype=np.float32)
    return torch.from_numpy(np.clip(out, 0.0, 255.0)).to(x.device)


def resize(images: torch.Tensor, size: int, convention: str) -> torch.Tensor:
    """uint8 [N,3,H,W] -> float32 [N,3,size,size] on 0..255 under the named convention."""
    check_convention(convention)
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise TypeError("resize expects uint8 [N,3,H,W] images")
    x = images.to(torch.float32)
    if tuple(images.shape[2:]) == (size, size):
        return x
    if convention == "legacy-tf":
        return _legacy_tf(x, size)
    if convention == "legacy-pytorch":
        return _legacy_pytorch(x, size)
    return _clean(images, size)
