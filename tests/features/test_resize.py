"""Resize conventions against the packages that define them: clean-fid's resizers (PIL bicubic on float;
torch bilinear), pytorch-fid's in-network resize, and TensorFlow 1.x bilinear written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbench.features.resize import resize


def _imgs(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("size,hw", [(299, (64, 48)), (29, (90, 90))])
def test_clean_equals_cleanfid(size, hw):
    from cleanfid.resize import make_resizer

    x = _imgs(2, *hw)
    ref_fn = make_resizer("PIL", False, "bicubic", (size, size))
    ours = resize(x, size, "clean").numpy()
    for i in range(2):
        ref = ref_fn(x[i].permute(1, 2, 0).numpy()).transpose(2, 0, 1)
        np.testing.assert_array_equal(ours[i], ref.astype(np.float32))


def test_legacy_pytorch_equals_cleanfid_and_pytorch_fid(monkeypatch):
    from cleanfid.resize import make_resizer

    x = _imgs(2, 40, 56, seed=1)
    ours = resize(x, 299, "legacy-pytorch")
    ref_fn = make_resizer("PyTorch", False, "bilinear", (299, 299))
    for i in range(2):
        ref = ref_fn(x[i].permute(1, 2, 0).numpy()).transpose(2, 0, 1)
        np.testing.assert_array_equal(ours[i].numpy(), ref)
    # pytorch-fid resizes 0..1 input inside InceptionV3.forward: capture what its first block receives
    import pytorch_fid.inception as pfi
    import torchvision

    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(torchvision.models.Inception3, "load_state_dict", lambda self, *a, **k: None)
    net = pfi.InceptionV3([0], resize_input=True, normalize_input=False).eval()
    seen = {}
    net.blocks[0].register_forward_pre_hook(lambda m, inp: seen.setdefault("x", inp[0].clone()))
    with torch.no_grad():
        net(x.float() / 255.0)
    np.testing.assert_allclose(seen["x"].numpy() * 255.0, ours.numpy(), rtol=0, atol=2e-4)


def _tf1_bilinear(a: np.ndarray, out: int) -> np.ndarray:
    """TensorFlow 1.x resize_bilinear, align_corners=False, half_pixel_centers=False, on one HxW plane."""
    h, w = a.shape
    res = np.empty((out, out))
    for i in range(out):
        y = i * h / out
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(out):
            x = j * w / out
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, w - 1), x - x0
            top = a[y0, x0] + (a[y0, x1] - a[y0, x0]) * fx
            bot = a[y1, x0] + (a[y1, x1] - a[y1, x0]) * fx
            res[i, j] = top + (bot - top) * fy
    return res


@pytest.mark.parametrize("hw,size", [((12, 12), 7), ((9, 15), 20)])
def test_legacy_tf_equals_tf1_bilinear_by_hand(hw, size):
    x = _imgs(1, *hw, seed=2)
    ours = resize(x, size, "legacy-tf")[0].numpy()
    for c in range(3):
        np.testing.assert_allclose(ours[c], _tf1_bilinear(x[0, c].numpy().astype(np.float64), size), atol=1e-3)


def test_same_size_is_identity_and_conventions_differ():
    x = _imgs(1, 32, 32, seed=3)
    for conv in ("legacy-tf", "legacy-pytorch", "clean"):
        np.testing.assert_array_equal(resize(x, 32, conv).numpy(), x.float().numpy())
    a, b, c = (resize(x, 21, conv) for conv in ("legacy-tf", "legacy-pytorch", "clean"))
    assert (a - b).abs().max() > 1 and (b - c).abs().max() > 1
    with pytest.raises(ValueError, match="resize convention"):
        resize(x, 21, "bicubic")
