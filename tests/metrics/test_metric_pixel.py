"""PSNR / SSIM / L1 (MAT's definitions) against hand-built images and direct OpenCV computations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from matbench.metrics.pixel import gaussian_taps, l1, pixel_metrics_batch, psnr, ssim


def cv2_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM from cv2.GaussianBlur (11x11, sigma 1.5) per channel, 5-pixel border crop, mean over all channels."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT_101)[5:-5, 5:-5]

    mu1, mu2 = blur(a), blur(b)
    s11, s22, s12 = blur(a * a) - mu1**2, blur(b * b) - mu2**2, blur(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def pair(seed: int, h: int = 37, w: int = 45, noise: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int64) + rng.integers(-noise, noise + 1, a.shape), 0, 255).astype(np.uint8)
    return a, b


def to_batch(*imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def test_constant_images_known_values() -> None:
    a = np.full((20, 20, 3), 100, np.uint8)
    b = np.full((20, 20, 3), 110, np.uint8)  # MSE 100
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    assert l1(a, b) == pytest.approx(10 / 255, abs=1e-15)
    # constant images: sigma terms vanish, SSIM = (2*100*110 + C1) / (100^2 + 110^2 + C1)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert l1(a, a) == 0.0


def test_psnr_matches_cv2() -> None:
    a, b = pair(0)
    assert psnr(a, b) == pytest.approx(cv2.PSNR(a, b), abs=1e-10)


def test_ssim_matches_cv2_gaussianblur() -> None:
    for seed in range(3):
        a, b = pair(seed, noise=10 + 30 * seed)
        assert ssim(a, b) == pytest.approx(cv2_ssim(a, b), abs=1e-10)


def test_taps_equal_cv2_kernel() -> None:
    np.testing.assert_allclose(gaussian_taps(), cv2.getGaussianKernel(11, 1.5).ravel(), atol=1e-15)


def test_border_mode_is_irrelevant_after_the_crop() -> None:
    # The 5-pixel crop equals the window radius, so MAT's cv2.filter2D (BORDER_REFLECT_101) and a zero-padded
    # filter agree on the cropped map; ours is the 'valid' filter, which needs no border at all.
    a, b = pair(4, 30, 30)
    b[:2] = 255 - b[:2]  # edit the outer rows: they still enter the windows of the first kept rows
    k = cv2.getGaussianKernel(11, 1.5)
    w = k @ k.T
    for border in (cv2.BORDER_REFLECT_101, cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE):
        x = a.astype(np.float64)
        full = cv2.filter2D(x, -1, w, borderType=border)[5:-5, 5:-5]
        ref = cv2.filter2D(x, -1, w)[5:-5, 5:-5]
        np.testing.assert_allclose(full, ref, atol=1e-9)
    assert ssim(a, b) == pytest.approx(cv2_ssim(a, b), abs=1e-10)
    assert ssim(a, b) < ssim(a, a)


def test_batch_matches_per_image() -> None:
    pairs = [pair(s, 33, 41, 15 * (s + 1)) for s in range(4)]
    real = to_batch(*[p[0] for p in pairs])
    fake = to_batch(*[p[1] for p in pairs])
    out = pixel_metrics_batch(real, fake)
    for i, (a, b) in enumerate(pairs):
        assert out["psnr"][i] == pytest.approx(psnr(a, b), abs=1e-6)
        assert out["ssim"][i] == pytest.approx(ssim(a, b), abs=1e-6)
        assert out["l1"][i] == pytest.approx(l1(a, b), abs=1e-6)


def test_batch_identical_gives_inf_psnr() -> None:
    a, _ = pair(5)
    out = pixel_metrics_batch(to_batch(a), to_batch(a))
    assert math.isinf(out["psnr"][0]) and out["ssim"][0] == pytest.approx(1.0) and out["l1"][0] == 0.0


def test_bad_inputs() -> None:
    a, b = pair(6)
    with pytest.raises(ValueError, match="differ"):
        ssim(a, b[:-1])
    with pytest.raises(ValueError, match="larger than 10x10"):
        ssim(a[:8, :8], b[:8, :8])
    with pytest.raises(ValueError, match="differ"):
        pixel_metrics_batch(to_batch(a), to_batch(b[:, :-1]))


# --- every backend against MAT's formula, restated here on its own (cv2.filter2D with the 2-D window) -------

def official_psnr_ssim_l1(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """MAT's cal_psnr_ssim_l1.py arithmetic, written out independently: HxWx3 float64, 2-D 11x11 window."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    mse = np.mean((x - y) ** 2)
    p = math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))
    g = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(g, g.transpose())

    def f(z: np.ndarray) -> np.ndarray:
        return cv2.filter2D(z, -1, win)[5:-5, 5:-5]

    mu1, mu2 = f(x), f(y)
    s11, s22, s12 = f(x**2) - mu1**2, f(y**2) - mu2**2, f(x * y) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return p, float(s.mean()), float(np.mean(np.abs(x / 255.0 - y / 255.0)))


def _hard_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = [pair(s, h, w, noise) for s, (h, w, noise) in enumerate([(37, 45, 40), (64, 100, 5), (11, 11, 255)])]
    # near-saturated flat areas with +-1 noise: E[x^2] - mu^2 cancels almost entirely (the float32 trap)
    flat = np.full((48, 40, 3), 250, np.uint8)
    out.append((flat, (flat.astype(np.int64) + rng.integers(-1, 2, flat.shape)).astype(np.uint8)))
    out.append((flat, np.full_like(flat, 3)))  # constant vs constant
    sm = cv2.GaussianBlur(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8), (0, 0), 4)
    hole = sm.copy()
    hole[20:70, 10:60] = cv2.GaussianBlur(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8), (0, 0), 2)
    out += [(sm, hole), (sm, sm.copy())]  # an inpainting-like pair; identical images (PSNR inf, SSIM 1)
    return out


@pytest.mark.parametrize("backend", ["numba", "opencv", "torch"])
def test_every_backend_equals_the_official_formula(backend) -> None:
    if backend == "numba":
        pytest.importorskip("numba")
    for a, b in _hard_pairs():
        got = pixel_metrics_batch(to_batch(a, b), to_batch(b, a), backend=backend)
        want = official_psnr_ssim_l1(a, b)
        for i in range(2):  # both orders of the same pair, in one batch
            for k, v in zip(("psnr", "ssim", "l1"), want, strict=True):
                if math.isinf(v):
                    assert math.isinf(got[k][i]), (backend, k)
                else:
                    assert got[k][i] == pytest.approx(v, rel=1e-9, abs=1e-12), (backend, k, a.shape)


def test_backends_agree_on_a_full_size_batch() -> None:
    rng = np.random.default_rng(3)
    a = cv2.GaussianBlur(rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8).reshape(-1, 256, 3), (0, 0), 2)
    a = a.reshape(3, 256, 256, 3)
    b = np.clip(a.astype(np.int64) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    real, fake = to_batch(*a), to_batch(*b)
    ref = [official_psnr_ssim_l1(x, y) for x, y in zip(a, b, strict=True)]
    for backend in ("auto", "opencv"):
        got = pixel_metrics_batch(real, fake, backend=backend)
        for i, want in enumerate(ref):
            assert (got["psnr"][i], got["ssim"][i], got["l1"][i]) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="backend"):
        pixel_metrics_batch(real, fake, backend="fast")
