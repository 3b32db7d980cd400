"""Fused CPU kernels for PSNR / SSIM / L1 on uint8 batches, float64 throughout (MAT's arithmetic).

One pass per image plane (image x channel, planes in parallel): the squared and absolute differences are
summed as integers are (exactly, in float64), and SSIM is computed row by row: the vertical Gaussian pass
of a, b, a²+b² and a·b for one output row (symmetric taps: pair sums first), then the horizontal pass, then
the SSIM expression, accumulated at once. Nothing larger than a few rows is written to memory, which is
what makes it several times faster than filtering whole float64 maps (MAT's cv2.filter2D calls, or torch's
depthwise conv2d). The crop of 5 pixels equals the window radius, so this 'valid' filtering is exactly the
cropped map whatever the border mode.

Only the order of float64 additions differs from cv2.filter2D with the 11x11 outer-product window; the
result agrees with the official formula to ~1e-12 relative (tests/test_metric_pixel.py checks 1e-9).
numba is optional (extra `fast`); without it matbench.metrics.pixel uses an OpenCV separable-filter path.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # optional dependency: callers check AVAILABLE
    numba = None

AVAILABLE = numba is not None


def _kernel(a: np.ndarray, b: np.ndarray, taps: np.ndarray, c1: float, c2: float,
            sse: np.ndarray, sae: np.ndarray, ssim_sum: np.ndarray) -> None:  # pragma: no cover - compiled
    n_img, n_ch, h, w = a.shape
    ho, wo = h - 10, w - 10
    for p in numba.prange(n_img * n_ch):
        pa = a[p // n_ch, p % n_ch]
        pb = b[p // n_ch, p % n_ch]
        s_sq = 0.0
        s_abs = 0.0
        for i in range(h):
            for j in range(w):
                d = float(pa[i, j]) - float(pb[i, j])
                s_sq += d * d
                s_abs += abs(d)
        v1 = np.empty(w)
        v2 = np.empty(w)
        v3 = np.empty(w)
        v4 = np.empty(w)
        acc = 0.0
        t5 = taps[5]
        for r in range(ho):
            for j in range(w):
                x = float(pa[r + 5, j])
                y = float(pb[r + 5, j])
                v1[j] = t5 * x
                v2[j] = t5 * y
                v3[j] = t5 * (x * x + y * y)
                v4[j] = t5 * (x * y)
            for k in range(5):
                t = taps[k]
                for j in range(w):
                    xa = float(pa[r + k, j])
                    xb = float(pa[r + 10 - k, j])
                    ya = float(pb[r + k, j])
                    yb = float(pb[r + 10 - k, j])
                    v1[j] += t * (xa + xb)
                    v2[j] += t * (ya + yb)
                    v3[j] += t * (xa * xa + ya * ya + xb * xb + yb * yb)
                    v4[j] += t * (xa * ya + xb * yb)
            for j in range(wo):
                m1 = t5 * v1[j + 5]
                m2 = t5 * v2[j + 5]
                sq = t5 * v3[j + 5]
                ab = t5 * v4[j + 5]
                for k in range(5):
                    t = taps[k]
                    m1 += t * (v1[j + k] + v1[j + 10 - k])
                    m2 += t * (v2[j + k] + v2[j + 10 - k])
                    sq += t * (v3[j + k] + v3[j + 10 - k])
                    ab += t * (v4[j + k] + v4[j + 10 - k])
                m12 = m1 * m2
                m11 = m1 * m1 + m2 * m2
                acc += ((2.0 * m12 + c1) * (2.0 * (ab - m12) + c2)) / ((m11 + c1) * (sq - m11 + c2))
        sse[p] = s_sq
        sae[p] = s_abs
        ssim_sum[p] = acc


_compiled = None


def pixel_sums(a: np.ndarray, b: np.ndarray, taps: np.ndarray, c1: float, c2: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per plane (N*C): sum of squared differences, sum of absolute differences, sum of the SSIM map."""
    global _compiled
    if _compiled is None:
        # compiled on first use and cached on disk (numba's cache), so `import matbench` stays light
        _compiled = numba.njit(parallel=True, cache=True, nogil=True)(_kernel)
    p = a.shape[0] * a.shape[1]
    sse, sae, ssim_sum = np.empty(p), np.empty(p), np.empty(p)
    _compiled(np.ascontiguousarray(a), np.ascontiguousarray(b), taps, c1, c2, sse, sae, ssim_sum)
    return sse, sae, ssim_sum
