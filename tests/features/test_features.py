"""Feature extractors (smoke weights, explicit files, NVIDIA TorchScript backend) and the feature cache."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from golden_helpers import NvidiaStandIn

from matbench import features as F
from matbench import weights as W
from matbench.errors import WeightsError
from matbench.features.inception_tf import build_tf_inception


def _images(n: int, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def smoke_inception() -> F.FeatureExtractor:
    return F.get_extractor("inception-v3-compat", smoke=True)


def test_smoke_inception_shape_determinism_and_identity(smoke_inception):
    x = _images(2)
    a = smoke_inception(x)
    assert a.shape == (2, 2048) and a.dtype == np.float64
    assert smoke_inception.smoke and smoke_inception.dim == 2048
    assert smoke_inception.weights_sha256.startswith("smoke-")
    # a second, independently built smoke extractor gives bit-identical features
    b = F.get_extractor("inception-v3-compat", smoke=True)(x)
    np.testing.assert_array_equal(a, b)
    # features depend on the image (random weights must not collapse every input to one vector)
    assert np.abs(a[0] - a[1]).max() > 1e-4


def test_smoke_vgg16_fc2_shape():
    v = F.get_extractor("vgg16", smoke=True)
    f = v(_images(2, 16))
    assert f.shape == (2, 4096) and v.smoke and v.weights_sha256 != F.smoke_weights_sha256("inception-v3-compat")
    assert np.abs(f[0] - f[1]).max() > 0


def test_extractor_rejects_non_uint8(smoke_inception):
    with pytest.raises(TypeError, match="uint8"):
        smoke_inception(torch.zeros(1, 3, 8, 8))


def _counting_extractor(sha: str = "a" * 64) -> tuple[F.FeatureExtractor, list[int]]:
    seen: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return x.float().mean(dim=(2, 3)) / 7.0 + 0.1  # [N, 3], not float32-exact after /7 -> tests dtype path

    return F.FeatureExtractor("count", forward, 3, sha, smoke=False), seen


def test_cache_hit_returns_identical_values_without_recomputation(tmp_path):
    cache = F.FeatureCache(tmp_path / "c")
    ext, seen = _counting_extractor()
    x = _images(4)
    first = F.extract_cached(ext, x, cache)
    assert sum(seen) == 4 and cache.count(ext.key) == 4
    again = F.extract_cached(ext, x, F.FeatureCache(tmp_path / "c"))  # a new handle on the same file
    assert sum(seen) == 4  # nothing recomputed
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, ext(x))
    # two new images and two cached ones: only the new ones go through the network
    y = torch.cat([x[:2], _images(2, seed=1)])
    seen.clear()
    out = F.extract_cached(ext, y, cache)
    assert seen == [2]
    np.testing.assert_array_equal(out[:2], first[:2])
    # another weights hash is another key: recomputed
    ext2, seen2 = _counting_extractor("b" * 64)
    F.extract_cached(ext2, x, cache)
    assert sum(seen2) == 4


def test_cache_with_smoke_inception_is_exact(tmp_path, smoke_inception):
    cache = F.FeatureCache(tmp_path)
    x = _images(1)
    before = smoke_inception.calls
    a = F.extract_cached(smoke_inception, x, cache)
    b = F.extract_cached(smoke_inception, x, cache)
    assert smoke_inception.calls == before + 1
    np.testing.assert_array_equal(a, b)


def test_image_hash_covers_shape_and_content():
    a = np.zeros((2, 6, 3), np.uint8)
    assert F.image_sha256(a) != F.image_sha256(a.reshape(3, 4, 3))
    b = a.copy()
    b[0, 0, 0] = 1
    assert F.image_sha256(a) != F.image_sha256(b)
    h = hashlib.sha256(b"u8(2, 6, 3)" + a.tobytes()).hexdigest()
    assert F.image_sha256(a) == h


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path))
    assert F.default_cache_dir() == tmp_path / "features"


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")




def test_nvidia_torchscript_backend_from_explicit_file(tmp_path):
    torch.manual_seed(0)
    det = torch.jit.script(NvidiaStandIn())
    path = tmp_path / "inception-2015-12-05.pt"
    det.save(str(path))
    ext = F.get_extractor("inception-nvidia", path=path)
    x = _images(3)
    got = ext(x)
    want = det(x, return_features=True).detach().double().numpy()
    np.testing.assert_array_equal(got, want)
    assert ext.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and not ext.smoke


def test_nvidia_backend_found_in_weights_dir(tmp_path, monkeypatch):
    det = torch.jit.script(NvidiaStandIn())
    det.save(str(tmp_path / "inception-2015-12-05.pt"))
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    ext = F.get_extractor("inception-nvidia")
    assert ext.path == tmp_path / "inception-2015-12-05.pt"


def test_torch_fidelity_inception_loads_from_our_path(tmp_path, monkeypatch, smoke_inception):
    # a state dict in torch-fidelity's format (the smoke module's), loaded through feature_extractor_weights_path
    module = build_tf_inception(None)
    path = tmp_path / "my-inception.pth"
    torch.save(module.state_dict(), path)
    W.register_weights(W.WeightsFile(name="test-tf-inception", filename="my-inception.pth"))
    spec = dataclasses.replace(F.get_spec("inception-v3-compat"), weights="test-tf-inception")
    monkeypatch.setitem(F._SPECS, "inception-v3-compat", spec)
    ext = F.get_extractor("inception-v3-compat", path=path)
    x = _images(1)
    np.testing.assert_array_equal(ext(x), smoke_inception(x))
    assert not ext.smoke and ext.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_official_inception_entry_rejects_a_file_with_the_wrong_hash(tmp_path):
    bad = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    bad.write_bytes(b"not the torch-fidelity weights")
    with pytest.raises(WeightsError, match="6726825d"):
        F.get_extractor("inception-v3-compat", path=bad)


def test_missing_official_weights_message(monkeypatch, tmp_path):
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("MATBENCH_OFFLINE", "1")
    monkeypatch.setattr(W, "hub_checkpoints_dir", lambda: tmp_path / "hub")
    with pytest.raises(WeightsError) as e:
        F.get_extractor("inception-v3-compat")
    msg = str(e.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and F.URL_TORCH_FIDELITY_INCEPTION in msg
    assert str(tmp_path) in msg and "\n" not in msg


def test_extract_folder_sorted_ids_mixed_sizes(tmp_path):
    from matbench.io import save_png

    imgs = {"b": np.full((8, 8, 3), 10, np.uint8), "a": np.full((8, 8, 3), 200, np.uint8),
            "sub/c": np.full((6, 10, 3), 50, np.uint8)}
    for k, v in imgs.items():
        save_png(tmp_path / "imgs" / f"{k}.png", v)
    ext, seen = _counting_extractor()
    ids, feats = F.extract_folder(ext, tmp_path / "imgs", cache=F.FeatureCache(tmp_path / "c"), batch_size=8,
                                  progress=False)
    assert ids == ["a", "b", "sub/c"]
    np.testing.assert_allclose(feats[:, 0], [200 / 7 + 0.1, 10 / 7 + 0.1, 50 / 7 + 0.1])
    assert sorted(seen) == [1, 2]  # two same-size runs
