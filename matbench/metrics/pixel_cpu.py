"""Fused CPU kernels for PSNR / SSIM / L1 on uint8 batches, float64 throughout (MAT's arithmetic).

One pass per image plane (image x channel, planes in parallel): each input row is read once into a ring of
the last 11 rows as float64 maps a, b, a²+b², a·b (the squared and absolute differences are summed on the
way; integer-valued, so exactly); every output row is then the vertical Gaussian pass over the ring
(symmetric taps: pair sums first), the horizontal pass and the SSIM expression. Nothing larger than a few
rows is written to memory, which is what makes it several times faster than filtering whole float64 maps
(MAT's cv2.filter2D calls, or torch's depthwise conv2d). The crop of 5 pixels equals the window radius,
so this 'valid' filtering is exactly the cropped map whatever the border mode.

Only the order of float64 additions differs from cv2.filter2D with the 11x11 outer-product window; the
result agrees with the official formula to ~1e-12 relative (tests/metrics/test_metric_pixel.py checks 1e-9).
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
    wo = w - 10
    for p in numba.prange(n_img * n_ch):
        pa = a[p // n_ch, p % n_ch]
        pb = b[p // n_ch, p % n_ch]
        # ring of the last 11 input rows as float64 maps a, b, a²+b², a·b (each row converted once)
        ring = np.empty((11, 4, w))
        v = np.empty((4, w))
        row = np.empty(wo)
        s_sq = 0.0
        s_abs = 0.0
        acc = 0.0
        t5 = taps[5]
        for i in range(h):
            q = ring[i % 11]
            for j in range(w):
                x = float(pa[i, j])
                y = float(pb[i, j])
                d = x - y
                s_sq += d * d
                s_abs += abs(d)
                q[0, j] = x
                q[1, j] = y
                q[2, j] = x * x + y * y
                q[3, j] = x * y
            if i < 10:
                continue
            r = i - 10  # output row: input rows r .. r+10 are in the ring
            c = ring[(r + 5) % 11]
            for m in range(4):
                for j in range(w):
                    v[m, j] = t5 * c[m, j]
            for k in range(5):
                lo = ring[(r + k) % 11]
                hi = ring[(r + 10 - k) % 11]
                t = taps[k]
                for m in range(4):
                    for j in range(w):
                        v[m, j] += t * (lo[m, j] + hi[m, j])
            for j in range(wo):
                m1 = t5 * v[0, j + 5]
                m2 = t5 * v[1, j + 5]
                sq = t5 * v[2, j + 5]
                ab = t5 * v[3, j + 5]
                for k in range(5):
                    t = taps[k]
                    m1 += t * (v[0, j + k] + v[0, j + 10 - k])
                    m2 += t * (v[1, j + k] + v[1, j + 10 - k])
                    sq += t * (v[2, j + k] + v[2, j + 10 - k])
                    ab += t * (v[3, j + k] + v[3, j + 10 - k])
                m12 = m1 * m2
                m11 = m1 * m1 + m2 * m2
                row[j] = ((2.0 * m12 + c1) * (2.0 * (ab - m12) + c2)) / ((m11 + c1) * (sq - m11 + c2))
            for j in range(wo):  # the sum apart, so the loop above has no reduction and can vectorise
                acc += row[j]
        sse[p] = s_sq
        sae[p] = s_abs
        ssim_sum[p] = acc


_compiled = None


def pixel_sums(a: np.ndarray, b: np.ndarray, taps: np.ndarray, c1: float, c2: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per plane (N*C): sum of squared differences, sum of absolute differences, sum of the SSIM map."""
    global _compiled
    if _compiled is None:
        from matbench.threads import start_numba_keeping_torch

        start_numba_keeping_torch()  # else the kernel's first launch resets torch's thread count
        # compiled on first use and cached on disk (numba's cache), so `import matbench` stays light
        # reassoc/contract: lets the row loops vectorise and use FMA; every cancellation-prone difference
        # (E[x²] - mu²) stays in float64 either way, so results move by ~1e-14 relative (tests check 1e-9)
        _compiled = numba.njit(parallel=True, cache=True, nogil=True,
                               fastmath={"reassoc", "contract", "nsz"})(_kernel)
    p = a.shape[0] * a.shape[1]
    sse, sae, ssim_sum = np.empty(p), np.empty(p), np.empty(p)
    _compiled(np.ascontiguousarray(a), np.ascontiguousarray(b), taps, c1, c2, sse, sae, ssim_sum)
    return sse, sae, ssim_sum
