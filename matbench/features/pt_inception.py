"""pytorch-fid's Inception-v3 (``pt_inception-2015-12-05``): LaMa's FID protocol.

Network: pytorch-fid's ``InceptionV3`` (FID blocks, 2048-d pool3), weights handed over from our resolved path
instead of pytorch-fid's own download. Input as pytorch-fid: torch bilinear resize to 299 (``legacy-pytorch``),
then 0..1 scaled to -1..1 inside the network. For the native convention the uint8 image goes to the network
unresized (scaled to 0..1) so that pytorch-fid's own resize runs, bit for bit.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from matbench import weights as W
from matbench.features.base import ExtractorSpec, load_state_dict_file, require, seeded
from matbench.features.inception_tf import spatial_output

URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"


class PtInceptionNet(torch.nn.Module):
    """float 0..255 [N,3,H,W] -> pool3 [N, 2048]; pytorch-fid resizes to 299 inside."""

    def __init__(self, inception: torch.nn.Module) -> None:
        super().__init__()
        self.inception = inception

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inception(x / 255.0)[0].flatten(1)


@contextlib.contextmanager
def _weights_source(sd: dict | None):
    """pytorch-fid downloads inside fid_inception_v3(); give it our tensors (or none, for smoke) instead."""
    import pytorch_fid.inception as pfi
    import torchvision

    old_url = pfi.load_state_dict_from_url
    old_load = torchvision.models.Inception3.load_state_dict
    pfi.load_state_dict_from_url = lambda *a, **k: sd if sd is not None else {}
    if sd is None:
        torchvision.models.Inception3.load_state_dict = lambda self, *a, **k: None
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = old_url
        torchvision.models.Inception3.load_state_dict = old_load


def build(path: Path | None) -> torch.nn.Module:
    require("pytorch_fid", "pt-inception")
    from pytorch_fid.inception import InceptionV3

    if path is None:
        def make() -> torch.nn.Module:
            with _weights_source(None):
                m = InceptionV3([3], resize_input=True, normalize_input=True)
            # torchvision skips init for pytorch-fid (init_weights=False); He init keeps smoke features alive
            for mod in m.modules():
                if isinstance(mod, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            return m

        return PtInceptionNet(seeded(make))
    sd = load_state_dict_file(path)
    with _weights_source(sd):
        m = InceptionV3([3], resize_input=True, normalize_input=True)
    return PtInceptionNet(m)


W.register_weights(W.WeightsFile(
    name="pt-inception",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url=URL,
    hash_prefix="6726825d",
    used_by="pt-inception: pytorch-fid's FID Inception (LaMa's evaluation)",
))
SPECS = (ExtractorSpec(
    name="pt-inception", weights="pt-inception", dim=2048, input_size=299, native_resize="legacy-pytorch",
    input="0..1 then 2x-1 inside the network, pool3 after the FID blocks",
    build=build, source="pytorch-fid 0.3.0 InceptionV3", resizes_inside=True,
    # pytorch-fid's block 2 is Mixed_5b, 5c, 5d, 6a, 6b, 6c, 6d, 6e: index 6 is Mixed_6d
    outputs=(spatial_output("inception.blocks.2.6.branch1x1"),),
),)
