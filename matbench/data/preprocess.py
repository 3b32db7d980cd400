"""Evaluation preprocessing policies: decoded uint8 HxWx3 RGB image -> uint8 RxRx3.

"mat-val" is what MAT's ``datasets/dataset_512_val.py`` (``_load_raw_image``) does to a validation image:
if a side is shorter than R, pad the bottom and/or right with OpenCV ``BORDER_REFLECT`` (edge pixel repeated:
``fedcba|abcdefgh|hgfedcb``) until both sides are >= R, then take the centre RxR crop with top-left corner
``((H - R) // 2, (W - R) // 2)``.  No resampling, so 512-sized data evaluated at 1024 is mostly reflection.

"resize-crop" scales the shorter side to R first (Pillow ``Image.resize`` with ``Resampling.BICUBIC``, which
antialiases when downscaling; the longer side becomes ``round(long * R / short)``), then takes the same centre crop.
Use it for studies at a resolution different from the data's native size (e.g. 1024 on 512-sized images).

Both policies invent pixels for an image smaller than R on a side (reflection, or upsampling): 512-px data at 1024
becomes a 2x2 reflection mosaic under "mat-val".  :func:`enlargement` says so, and runs and ``stats make`` refuse
such images unless asked (``allow_upscale``).  On an image already RxR both policies are the identity.
"""

from __future__ import annotations

import numpy as np

from matbench.errors import SpecError

POLICIES: dict[str, str] = {
    "mat-val": "MAT dataset_512_val.py: reflect-pad (cv2.BORDER_REFLECT) bottom/right up to R, then centre RxR crop",
    "resize-crop": "resize shorter side to R (Pillow BICUBIC, antialiased), then centre RxR crop",
}
DEFAULT_POLICY = "mat-val"


def enlargement(h: int, w: int, resolution: int, policy: str = DEFAULT_POLICY) -> str | None:
    """How `prepare` would enlarge an HxW image to `resolution` ("reflect-padded"/"upscaled"), None if it does not.

    Both policies only crop (and resize-crop downscales) when both sides are >= R; anything smaller is enlarged."""
    r = int(resolution)
    if h >= r and w >= r:
        return None
    if policy == "mat-val":
        # a pad at least as large as the image repeats the whole image: a mosaic, not a border
        return "reflect-padded" + (" into a mosaic" if 2 * min(h, w) <= r else "")
    return "upscaled"


def _centre_crop(img: np.ndarray, r: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - r) // 2, (w - r) // 2
    return img[top:top + r, left:left + r]


def reflect_pad_bottom_right(img: np.ndarray, r: int) -> np.ndarray:
    """Pad bottom/right with cv2.BORDER_REFLECT so both sides are >= r (no-op if already large enough)."""
    import cv2

    h, w = img.shape[:2]
    bottom, right = max(0, r - h), max(0, r - w)
    if bottom == 0 and right == 0:
        return img
    return cv2.copyMakeBorder(np.ascontiguousarray(img), 0, bottom, 0, right, cv2.BORDER_REFLECT)


def prepare(img: np.ndarray, resolution: int = 512, policy: str = DEFAULT_POLICY) -> np.ndarray:
    """Prepare a decoded uint8 HxWx3 RGB image for evaluation at `resolution` with the named policy."""
    if policy not in POLICIES:
        raise SpecError(f"preprocessing policy {policy!r} is unknown (choose from {', '.join(POLICIES)})")
    r = int(resolution)
    if r <= 0 or r != resolution:
        raise SpecError(f"resolution {resolution!r} must be a positive integer")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"prepare expects uint8 HxWx3, got {img.dtype} {img.shape}")
    if policy == "mat-val":
        out = _centre_crop(reflect_pad_bottom_right(img, r), r)
    else:
        from PIL import Image

        h, w = img.shape[:2]
        if min(h, w) != r:
            scale = r / min(h, w)
            nh, nw = (r, max(r, round(w * scale))) if h <= w else (max(r, round(h * scale)), r)
            img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BICUBIC))
        out = _centre_crop(img, r)
    return np.ascontiguousarray(out)
