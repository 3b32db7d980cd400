"""The shared StyleGAN layers against explicit references written here (loops / scipy / formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from matbench.models.layers import (
    ConvOptions,
    FullyConnectedLayer,
    bias_act,
    conv2d_resample,
    downsample2d,
    make_filter,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)


def _ref_upfirdn(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    h, w = x.shape
    u = np.zeros((h * up, w * up))
    u[::up, ::up] = x
    px0, px1, py0, py1 = pad
    u = np.pad(u, ((max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[max(-py0, 0): u.shape[0] - max(-py1, 0), max(-px0, 0): u.shape[1] - max(-px1, 0)]
    return scipy.signal.convolve2d(u, f, mode="valid")[::down, ::down]


def test_make_filter_values_and_gain():
    ref = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    np.testing.assert_array_equal(make_filter().numpy(), ref.astype(np.float32))
    np.testing.assert_array_equal(make_filter(gain=4.0).numpy(), (ref * 4).astype(np.float32))


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2, 2, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (3, 2, (0, 1, -1, 2))])
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn2d_matches_scipy(up, down, pad, flip):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 9))
    f = rng.random((4, 4))  # asymmetric: a wrong flip is caught
    y = upfirdn2d(torch.from_numpy(x), torch.from_numpy(f), up=up, down=down, padding=pad, gain=2.0, flip_filter=flip)
    for n in range(2):
        for c in range(3):
            ref = _ref_upfirdn(x[n, c], 2.0 * (f[::-1, ::-1] if flip else f), up, down, pad)
            np.testing.assert_allclose(y[n, c].numpy(), ref, rtol=1e-12, atol=1e-12)


def test_per_channel_filter_equals_one_filter_per_channel():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1, 2, 6, 6)))
    fs = torch.from_numpy(rng.random((2, 1, 3, 3)))
    y = upfirdn2d(x, fs, padding=1)
    for c in range(2):
        torch.testing.assert_close(y[:, c:c + 1], upfirdn2d(x[:, c:c + 1], fs[c, 0], padding=1))


def test_up_and_downsample_sizes_and_dc_gain():
    x = torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64)
    f = make_filter().double()
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    assert up.shape[-2:] == (16, 16) and down.shape[-2:] == (4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full((1, 1, 12, 12), 3.0, dtype=torch.float64))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full((1, 1, 2, 2), 3.0, dtype=torch.float64))


def test_bias_act_formula():
    x = torch.tensor([[-2.0, 0.5], [1.0, -0.25]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    pre = x + b
    ref = torch.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(bias_act(x, b, act="lrelu"), ref)
    torch.testing.assert_close(bias_act(x, b, act="lrelu", clamp=0.5), ref.clamp(-0.5, 0.5))
    torch.testing.assert_close(bias_act(x, b, act="relu", gain=3.0), pre.clamp(min=0) * 3.0)
    torch.testing.assert_close(bias_act(x.T, b, dim=0), x.T + b[:, None])


def test_fully_connected_layer_formula():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(5, 3, activation="lrelu", lr_multiplier=0.01, bias_init=0.5).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    pre = x @ (fc.weight * 0.01 / math.sqrt(5)).T + fc.bias * 0.01
    torch.testing.assert_close(fc(x), F.leaky_relu(pre, 0.2) * math.sqrt(2))


def _ref_modconv(x, weight, styles, demodulate, up, f, flip_weight):
    """Per-sample: scale the weight, demodulate, plain (transposed) convolution, then the blur for up=2."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i][None, :, None, None]
        if demodulate:
            w = w / torch.sqrt((w ** 2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        xi = x[i:i + 1]
        if up == 1:
            outs.append(F.conv2d(xi, w, padding=w.shape[-1] // 2))
        else:
            wt = w.transpose(0, 1)
            y = F.conv_transpose2d(xi, wt.flip([2, 3]) if flip_weight else wt, stride=2)
            outs.append(upfirdn2d(y, f, padding=1, gain=4.0))
    return torch.cat(outs)


@pytest.mark.parametrize("up,flip_weight", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_equals_per_sample_conv(up, flip_weight, demodulate):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    weight = torch.randn(1, 6, 4, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 4, dtype=torch.float64)
    f = make_filter().double()
    y = modulated_conv2d(x, weight, styles, demodulate=demodulate, resample_filter=f,
                         opts=ConvOptions(up=up, padding=1, flip_weight=flip_weight))
    ref = _ref_modconv(x, weight[0], styles, demodulate, up, f, flip_weight)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref)


def test_conv2d_resample_down_is_blur_then_strided_correlation():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((1, 2, 8, 8)))
    w = torch.from_numpy(rng.standard_normal((3, 2, 3, 3)))
    f = make_filter().double()
    ref = F.conv2d(upfirdn2d(x, f, padding=2), w, stride=2)
    torch.testing.assert_close(conv2d_resample(x, w, f=f, opts=ConvOptions(down=2, padding=1)), ref)
    conv = conv2d_resample(x, w, opts=ConvOptions(padding=1, flip_weight=False))
    torch.testing.assert_close(conv, F.conv2d(x, w.flip([2, 3]), padding=1))
