"""New feature spaces: each loads a weights file through the weights registry (tiny or seeded weights made
here, in the official tensor layout), runs offline, records its conventions, and equals the forward of the
package that defines it (torch-fidelity's CLIP/DINOv2 preprocessing, pytorch-fid's InceptionV3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbench import features as F
from matbench.errors import InputError, WeightsError
from matbench.io import sha256_file


def _imgs(n: int, size: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_registry_lists_every_extractor_and_weights_entry():
    from matbench import weights as W

    for name in ("dinov2-vits14", "dinov2-vitb14", "dinov2-vitl14", "dinov2-vitg14", "clip-vitl14-336",
                 "clip-vitb32", "pt-inception"):
        spec = F.get_spec(name)
        entry = W.get(spec.weights)
        assert entry.url and entry.url.startswith("https://")
    assert W.get("clip-vitl14-336").sha256 == W.get("clip-vitl14-336").url.split("/")[-2]
    with pytest.raises(InputError, match="unknown feature extractor 'nope'.*dinov2-vitl14"):
        F.get_extractor("nope", smoke=True)


def test_clip_tiny_checkpoint_via_registry_equals_torch_fidelity_forward(tmp_path, monkeypatch):
    from torch_fidelity.feature_extractor_clip import CLIPVisual, FeatureExtractorCLIP

    torch.manual_seed(0)
    visual = CLIPVisual(512, 224, 1, 64, 32)  # tiny ViT with the ViT-B/32 input size and embedding width
    # OpenAI's files hold fp16 values (torch-fidelity's build_model rounds through fp16): use such values
    visual.load_state_dict({k: v.half().float() for k, v in visual.state_dict().items()})
    sd = dict(visual.state_dict())
    sd["text_projection"] = torch.randn(64, 512)
    torch.save(sd, tmp_path / "ViT-B-32.pt")
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setattr("matbench.weights.verify", lambda entry, path: sha256_file(path))  # tiny file: no hash
    ex = F.get_extractor("clip-vitb32", allow_download=False)
    assert not ex.smoke and ex.weights_sha256 == sha256_file(tmp_path / "ViT-B-32.pt")
    d = ex.describe()
    assert d["resize"] == "legacy-tf" and "224x224" in d["input"] and "no crop" in d["input"]
    x = _imgs(2, 50)
    ours = ex(x)
    # torch-fidelity's own forward (uint8 in) on the same vision tower
    ref_mod = FeatureExtractorCLIP.__new__(FeatureExtractorCLIP)
    torch.nn.Module.__init__(ref_mod)
    ref_mod.model, ref_mod.resolution, ref_mod.features_list = visual.eval(), 224, ["clip"]
    ref_mod.feature_extractor_internal_dtype = torch.float32
    with torch.no_grad():
        ref = ref_mod(x)[0].numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    # another resize convention is recorded and cached apart
    clean = F.get_extractor("clip-vitb32", resize_convention="clean", allow_download=False)
    assert clean.key != ex.key and "+clean@" in clean.key
    assert np.abs(clean(x) - ours).max() > 1e-4


def test_clip_wrong_checkpoint_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "ViT-L-14-336px.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="ViT-L-14-336px.pt"):
        F.get_extractor("clip-vitl14-336", path=bad, allow_download=False)


@pytest.fixture(scope="module")
def dinov2_file(tmp_path_factory):
    """A ViT-S/14 checkpoint in Meta's layout (518 px position grid, mask_token), seeded random values."""
    import timm

    torch.manual_seed(1)
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=518, num_classes=0)
    sd = dict(vit.state_dict())
    sd["mask_token"] = torch.zeros(1, 384)
    for k in sd:
        if k.endswith(".gamma"):
            sd[k] = torch.full_like(sd[k], 0.5)  # visible blocks, so a loading mistake changes the features
    d = tmp_path_factory.mktemp("w")
    torch.save(sd, d / "dinov2_vits14_pretrain.pth")
    return d / "dinov2_vits14_pretrain.pth", sd


def test_dinov2_checkpoint_via_registry_equals_torch_fidelity_forward(dinov2_file, monkeypatch):
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    path, sd = dinov2_file
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(path.parent))
    ex = F.get_extractor("dinov2-vits14", allow_download=False)
    assert ex.weights_sha256 == sha256_file(path) and ex.dim == 384 and ex.describe()["resize"] == "legacy-tf"
    x = _imgs(2, 64, seed=4)
    ours = ex(x)
    net = F.get_spec("dinov2-vits14").build(path)
    ref_mod = FeatureExtractorDinoV2.__new__(FeatureExtractorDinoV2)
    torch.nn.Module.__init__(ref_mod)
    ref_mod.model, ref_mod.features_list = net.vit.eval(), ["dinov2"]
    ref_mod.feature_extractor_internal_dtype = torch.float32
    with torch.no_grad():
        ref = ref_mod(x)[0].numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    # Meta's position resampling: 37x37 -> 16x16 bicubic with scale (16 + 0.1) / 37, no antialiasing
    pe = sd["pos_embed"][:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    exp = torch.nn.functional.interpolate(pe, scale_factor=(16.1 / 37, 16.1 / 37), mode="bicubic")
    got = net.vit.pos_embed[:, 1:].reshape(1, 16, 16, 384).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, exp, rtol=0, atol=1e-6)


@pytest.mark.slow  # three full Inception-v3 builds at 299 px: ~10 s on a quiet 2-core machine, 40 s under load
def test_pt_inception_checkpoint_equals_pytorch_fid(tmp_path, monkeypatch):
    import pytorch_fid.inception as pfi

    from matbench.features import pt_inception

    with pt_inception._weights_source(None):
        torch.manual_seed(2)
        inc = pfi.fid_inception_v3()
        for m in inc.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    sd = inc.state_dict()
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(sd, path)
    monkeypatch.setattr("matbench.weights.verify", lambda entry, p: sha256_file(p))  # our file lacks the prefix
    ex = F.get_extractor("pt-inception", path=path, allow_download=False)
    assert ex.describe()["resize"] == "legacy-pytorch" and ex.weights_sha256 == sha256_file(path)
    x = _imgs(2, 48, seed=5)
    ours = ex(x)
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: sd)
    ref_net = pfi.InceptionV3([3]).eval()
    with torch.no_grad():
        ref = ref_net(x.float() / 255.0)[0].flatten(1).numpy()
    np.testing.assert_array_equal(ours, ref.astype(np.float64))


@pytest.mark.parametrize("name,dim", [("dinov2-vits14", 384), ("clip-vitb32", 512), ("pt-inception", 2048)])
def test_smoke_variants_are_labelled_deterministic_and_image_dependent(name, dim):
    a = F.get_extractor(name, smoke=True)
    x = _imgs(2, 32, seed=6)
    f = a(x)
    assert f.shape == (2, dim) and a.smoke and a.weights_sha256.startswith("smoke-")
    if name == "clip-vitb32":  # the cheapest rebuild: seeded smoke weights are reproducible
        np.testing.assert_array_equal(f, F.get_extractor(name, smoke=True)(x))
    assert np.abs(f[0] - f[1]).max() > 1e-3
