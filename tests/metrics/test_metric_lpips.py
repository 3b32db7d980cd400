"""LPIPS wrapper against the lpips package called directly on the same inputs and the same backbone."""

from __future__ import annotations

import lpips
import pytest
import torch
import torchvision

from matbench import weights
from matbench.errors import WeightsError
from matbench.metrics.lpips import LPIPS

# lpips asks torchvision for `pretrained=False`, which torchvision reports as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torchvision")


def images(seed: int, n: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    noise = torch.randint(-40, 41, a.shape, generator=g)
    b = (a.to(torch.int64) + noise).clamp(0, 255).to(torch.uint8)
    return a, b


def package_lpips(net: str) -> lpips.LPIPS:
    return lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_smoke_matches_lpips_package(net: str) -> None:
    ours = LPIPS(net=net, smoke=True)
    ref = package_lpips(net)
    ref.net.load_state_dict(ours.model.net.state_dict())
    a, b = images(0)
    with torch.no_grad():
        expected = ref(a.float() / 127.5 - 1, b.float() / 127.5 - 1).flatten()
    got = ours(a, b)
    assert got.shape == (2,)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert torch.all(got > 0)
    assert torch.all(ours(a, a) == 0)


def test_smoke_is_deterministic_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    x, y = LPIPS(smoke=True), LPIPS(smoke=True)
    assert torch.equal(torch.get_rng_state(), state)
    a, b = images(1)
    assert torch.equal(x(a, b), y(a, b))
    assert x.provenance()["smoke"] is True


def test_torchvision_checkpoint_is_loaded_into_the_trunk(tmp_path) -> None:
    torch.manual_seed(123)
    tv = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(tv.state_dict(), path)

    ours = LPIPS(net="alex", backbone_path=str(path), check_hash=False)
    ref = package_lpips("alex")
    with torch.no_grad():  # copy layer by layer, by torchvision module index
        for sl in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5):
            for idx, mod in sl.named_children():
                if isinstance(mod, torch.nn.Conv2d):
                    mod.weight.copy_(tv.features[int(idx)].weight)
                    mod.bias.copy_(tv.features[int(idx)].bias)
    a, b = images(2)
    with torch.no_grad():
        expected = ref(a.float() / 127.5 - 1, b.float() / 127.5 - 1).flatten()
    torch.testing.assert_close(ours(a, b), expected, rtol=1e-6, atol=1e-7)
    prov = ours.provenance()
    assert prov["smoke"] is False and prov["backbone_file"] == str(path) and len(prov["backbone_sha256"]) == 64


def test_hash_prefix_is_checked(tmp_path) -> None:
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="7be5be79"):
        LPIPS(net="alex", backbone_path=str(path))


def test_wrong_checkpoint_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "x.pth"
    torch.save({"foo": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="features.0.weight"):
        LPIPS(net="alex", backbone_path=str(path), check_hash=False)


def test_missing_weights_offline_names_file_and_url(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MATBENCH_OFFLINE", "1")
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match=r"vgg16-397923af\.pth.*download\.pytorch\.org"):
        LPIPS(net="vgg")


def test_registered_entries() -> None:
    for name, fname, prefix in (("torchvision-alexnet", "alexnet-owt-7be5be79.pth", "7be5be79"),
                                ("torchvision-vgg16", "vgg16-397923af.pth", "397923af")):
        e = weights.get(name)
        assert e.filename == fname and e.hash_prefix == prefix and e.url.endswith(fname)


def test_bad_inputs() -> None:
    m = LPIPS(smoke=True)
    a, b = images(3)
    with pytest.raises(ValueError, match="uint8"):
        m(a.float(), b.float())
    with pytest.raises(ValueError, match="shape"):
        m(a, b[:1])
    with pytest.raises(ValueError, match="net"):
        LPIPS(net="squeezenet", smoke=True)
