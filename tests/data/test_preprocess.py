"""Preprocessing policies against hand-built references (no OpenCV in the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from matbench.data.preprocess import POLICIES, prepare
from matbench.errors import SpecError


def _reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    """OpenCV BORDER_REFLECT for indices >= 0: ...|abcd|dcba|abcd|... (edge repeated), period 2n."""
    j = i % (2 * n)
    return np.where(j < n, j, 2 * n - 1 - j)


def hand_mat_val(img: np.ndarray, r: int) -> np.ndarray:
    """MAT dataset_512_val.py by hand: pad bottom/right by reflection to >= r, then centre crop with floor offsets."""
    h, w = img.shape[:2]
    hp, wp = max(h, r), max(w, r)
    rows = _reflect_index(np.arange(hp), h)
    cols = _reflect_index(np.arange(wp), w)
    padded = img[rows][:, cols]
    top, left = (hp - r) // 2, (wp - r) // 2
    return padded[top:top + r, left:left + r]


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


CASES = [
    # (H, W, R): smaller, larger, mixed, equal, odd offsets, padding longer than the image (repeated reflection)
    (200, 150, 256), (300, 451, 512), (500, 700, 1024), (100, 90, 512),
    (300, 300, 256), (600, 800, 512), (1100, 1301, 1024), (513, 515, 512),
    (200, 700, 512), (900, 400, 512), (512, 512, 512), (256, 256, 256), (1024, 1024, 1024),
]


@pytest.mark.parametrize("h,w,r", CASES)
def test_mat_val_equals_hand_built_reflect_pad_and_crop(h, w, r):
    img = _img(h, w, seed=h * 7 + w)
    out = prepare(img, r, "mat-val")
    assert out.shape == (r, r, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, hand_mat_val(img, r))


def test_reflect_is_edge_repeating_not_edge_excluding():
    # 1-row image strip: BORDER_REFLECT repeats the last row (fedcba|abc...), unlike BORDER_REFLECT_101.
    img = np.arange(4 * 3, dtype=np.uint8).reshape(4, 1, 3).repeat(8, axis=1)
    out = prepare(img, 8, "mat-val")
    rows = out[:, 0, 0] // 3
    assert rows.tolist() == [0, 1, 2, 3, 3, 2, 1, 0]


def test_large_image_centre_crop_offsets():
    img = _img(515, 700)
    out = prepare(img, 512, "mat-val")
    np.testing.assert_array_equal(out, img[1:513, 94:606])  # (515-512)//2 = 1, (700-512)//2 = 94


@pytest.mark.parametrize("h,w,r", [(300, 451, 512), (600, 800, 512), (512, 700, 1024), (256, 256, 256)])
def test_resize_crop(h, w, r):
    img = _img(h, w, seed=3)
    out = prepare(img, r, "resize-crop")
    assert out.shape == (r, r, 3)
    s = r / min(h, w)
    nh, nw = max(r, round(h * s)), max(r, round(w * s))
    ref = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BICUBIC)) if (h, w) != (nh, nw) else img
    top, left = (nh - r) // 2, (nw - r) // 2
    np.testing.assert_array_equal(out, ref[top:top + r, left:left + r])


def test_resize_crop_differs_from_mat_val_on_small_images():
    img = _img(300, 400)
    assert not np.array_equal(prepare(img, 512, "resize-crop"), prepare(img, 512, "mat-val"))


def test_policy_errors():
    assert set(POLICIES) == {"mat-val", "resize-crop"}
    with pytest.raises(SpecError, match="unknown"):
        prepare(_img(10, 10), 8, "stretch")
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10), np.uint8), 8)
