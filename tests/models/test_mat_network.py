"""MAT port structure: names, shapes, constants and parameter counts equal the official generator's; the ops
agree with independent formulas (scipy upfirdn-style convolution, StyleGAN2 bias_act definition)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import scipy.signal
import torch

from matbench.models import layers as ops
from matbench.models.mat.network import build_generator, shifted_window_mask


def _sha(t: torch.Tensor) -> str:  # same rule as golden/fill.py tensor_sha256
    return hashlib.sha256(np.ascontiguousarray(t.detach().cpu().float().numpy()).tobytes()).hexdigest()


@pytest.fixture(scope="module", params=[512, 256])
def built(request, golden):
    res = request.param
    manifest = json.loads((golden / "mat" / f"manifest_{res}.json").read_text())["tensors"]
    return res, build_generator(res), manifest


def test_names_shapes_order_match_manifest(built):
    _, G, manifest = built
    ours = [(n, "param", list(p.shape)) for n, p in G.named_parameters()]
    ours += [(n, "buffer", list(b.shape)) for n, b in G.named_buffers()]
    assert ours == [(t["name"], t["kind"], t["shape"]) for t in manifest]
    assert set(G.state_dict()) == {t["name"] for t in manifest}


def test_constants_sha256_match_manifest(built):
    _, G, manifest = built
    buffers = dict(G.named_buffers())
    constants = [t for t in manifest if not t["fill"]]
    assert constants  # resample filters and shifted-window attention masks
    for t in constants:
        assert _sha(buffers[t["name"]]) == t["sha256"], t["name"]


def test_parameter_and_buffer_counts(built):
    res, G, _ = built
    n_params = sum(p.numel() for p in G.parameters())
    n_buffers = sum(b.numel() for b in G.buffers())
    assert (n_params, n_buffers) == {512: (61_562_518, 1_748_800), 256: (59_779_834, 1_224_336)}[res]
    assert G.mapping.num_ws == {512: 12, 256: 10}[res]


def test_two_layer_mapping_is_the_papers_count():
    G = build_generator(512, mapping_layers=2)
    assert sum(p.numel() for p in G.parameters()) == 59_986_582
    assert [n for n, _ in G.mapping.named_parameters()] == ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"]


def test_resample_filter_is_normalised_binomial():
    f = ops.make_filter()
    ref = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    np.testing.assert_array_equal(f.numpy(), ref.astype(np.float32))


def test_shifted_window_mask_regions():
    m = shifted_window_mask(4, 4, 2, 1)  # 4 windows of 2x2 tokens
    assert m.shape == (4, 4, 4)
    assert set(m.unique().tolist()) == {0.0, -100.0}
    assert (m[0] == 0).all()  # top-left window lies in one region
    # bottom-right window mixes 4 regions: each token may attend only to itself
    assert torch.equal(m[3] == 0, torch.eye(4, dtype=torch.bool))


def _upfirdn_reference(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int],
                       gain: float) -> np.ndarray:
    """scipy formulation: zero-insert, pad, full 2-D convolution restricted to 'valid', decimate."""
    h, w = x.shape
    u = np.zeros((h * up, w * up))
    u[::up, ::up] = x
    px0, px1, py0, py1 = pad
    u = np.pad(u, ((max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[max(-py0, 0): u.shape[0] - max(-py1, 0), max(-px0, 0): u.shape[1] - max(-px1, 0)]
    y = scipy.signal.convolve2d(u, f * gain, mode="valid")
    return y[::down, ::down]


@pytest.mark.parametrize("up,down,pad,gain", [(1, 1, (1, 2, 2, 1), 1.0), (2, 1, (2, 1, 2, 1), 4.0),
                                              (1, 2, (1, 1, 1, 1), 1.0), (1, 1, (-1, 2, 0, -1), 1.0)])
def test_upfirdn2d_matches_scipy(up, down, pad, gain):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 9))
    f = rng.random((4, 4))  # asymmetric, so a flipped filter would be caught
    y = ops.upfirdn2d(torch.from_numpy(x), torch.from_numpy(f).float(), up=up, down=down, padding=pad, gain=gain)
    for n in range(2):
        for c in range(3):
            ref = _upfirdn_reference(x[n, c], f.astype(np.float32).astype(np.float64), up, down, pad, gain)
            np.testing.assert_allclose(y[n, c].numpy(), ref, rtol=1e-6, atol=1e-6)


def test_conv2d_resample_down_equals_blur_then_strided_conv():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1, 2, 8, 8)))
    w = torch.from_numpy(rng.standard_normal((3, 2, 3, 3)))
    f = ops.make_filter()
    y = ops.conv2d_resample(x, w, f=f, opts=ops.ConvOptions(down=2, padding=1))
    # blur with the binomial filter padded by 2 (keeps 8 -> 7+...), then 3x3 stride-2 correlation
    blurred = ops.upfirdn2d(x, f, padding=(2, 2, 2, 2))
    ref = torch.nn.functional.conv2d(blurred, w, stride=2)
    assert y.shape == (1, 3, 4, 4)
    torch.testing.assert_close(y, ref)


def test_conv2d_resample_up_preserves_constant_interior():
    # a constant image through (1x1 identity weight, up=2) stays constant away from the border
    x = torch.full((1, 1, 6, 6), 2.0, dtype=torch.float64)
    w = torch.zeros((1, 1, 3, 3), dtype=torch.float64)
    w[0, 0, 1, 1] = 1.0
    y = ops.conv2d_resample(x, w, f=ops.make_filter().double(), opts=ops.ConvOptions(up=2, padding=1))
    assert y.shape == (1, 1, 12, 12)
    torch.testing.assert_close(y[..., 3:-3, 3:-3], torch.full((1, 1, 6, 6), 2.0, dtype=torch.float64))


def test_bias_act_definition():
    x = torch.tensor([[-2.0, 0.5], [1.0, -0.25]])
    b = torch.tensor([1.0, -1.0])
    y = ops.bias_act(x, b, dim=1, act="lrelu", clamp=0.5)
    pre = x + b
    ref = torch.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(y, ref.clamp(-0.5, 0.5))
    torch.testing.assert_close(ops.bias_act(x, b), x + b)


@pytest.mark.slow
def test_flop_count_matches_official_256():
    from benchmarks.mat import GFLOP_PER_IMAGE, count_flops

    # golden README: the official generator at 256 counts 280.23 GFLOP (FlopCounterMode, B=1)
    assert count_flops(256) == pytest.approx(GFLOP_PER_IMAGE[256], abs=0.01)
