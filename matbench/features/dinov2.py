"""DINOv2 ViT-{S,B,L,g}/14 CLS embeddings (Stein et al. 2023 report FD on ``dinov2-vitl14``).

Network: timm's DINOv2 ViTs (``vit_*_patch14_dinov2``), loading Meta's released ``dinov2_vit*14_pretrain.pth``
through timm's own DINOv2 key conversion. torch-fidelity 0.4's DINOv2 extractor fetches Meta's code from the
torch hub at run time (impossible offline, and it refuses a weights path), so we follow its input convention
instead: TF1-style bilinear resize to 224 (``legacy-tf``), ImageNet mean/std on 0..255, the final-norm CLS token.

Meta's checkpoints carry position embeddings for 518 px (37x37 patches). At 224 px Meta's forward resamples
them bicubically with a scale factor of (16 + 0.1) / 37 and no antialiasing; we resample the same way once at
load time (timm's default would antialias and give different features).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from matbench import weights as W
from matbench.features.base import ExtractorSpec, load_state_dict_file, require, seeded
from matbench.models.statecheck import check_state_dict

INPUT = 224
PATCH = 14
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# name -> (timm architecture, Meta's hub name, dimension)
MODELS = {
    "dinov2-vits14": ("vit_small_patch14_dinov2", "dinov2_vits14", 384),
    "dinov2-vitb14": ("vit_base_patch14_dinov2", "dinov2_vitb14", 768),
    "dinov2-vitl14": ("vit_large_patch14_dinov2", "dinov2_vitl14", 1024),
    "dinov2-vitg14": ("vit_giant_patch14_dinov2", "dinov2_vitg14", 1536),
}


def resample_pos_embed(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """[1, 1 + M*M, D] position embeddings -> [1, 1 + grid*grid, D], as Meta's interpolate_pos_encoding."""
    n = pos.shape[1] - 1
    m = int(math.isqrt(n))
    if m * m != n:
        raise ValueError(f"position embedding of {n} patches is not square")
    if m == grid:
        return pos
    cls, patches = pos[:, :1], pos[:, 1:].float()
    scale = (grid + 0.1) / m  # Meta adds 0.1 to avoid a floor() landing one short
    p = patches.reshape(1, m, m, -1).permute(0, 3, 1, 2)
    p = torch.nn.functional.interpolate(p, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if p.shape[-1] != grid:
        raise ValueError(f"resampled position grid is {p.shape[-1]}, expected {grid}")
    p = p.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos.dtype)
    return torch.cat([cls, p], dim=1)


class DinoV2Net(torch.nn.Module):
    """float 0..255 [N,3,224,224] -> CLS token after the final norm [N, D]."""

    def __init__(self, vit: torch.nn.Module) -> None:
        super().__init__()
        self.vit = vit
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit((x - self.mean) / self.std)


def _timm_vit(arch: str) -> torch.nn.Module:
    require("timm", arch)
    import timm

    # num_classes=0, token pooling: forward returns the normed CLS token, as Meta's forward (head = Identity)
    return timm.create_model(arch, pretrained=False, img_size=INPUT, num_classes=0, global_pool="token")


def builder(name: str):
    arch = MODELS[name][0]

    def build(path: Path | None) -> torch.nn.Module:
        if path is None:
            vit = seeded(lambda: _timm_vit(arch))
            # layer scale starts at 1e-5: random blocks would barely touch the tokens and every image would
            # give the same smoke feature; scale 1 keeps smoke features image-dependent
            for n, p in vit.named_parameters():
                if n.endswith(".gamma"):
                    p.data.fill_(1.0)
            return DinoV2Net(vit)
        from timm.models.vision_transformer import _convert_dinov2

        vit = _timm_vit(arch)
        sd = load_state_dict_file(path)
        if "pos_embed" not in sd or "cls_token" not in sd:
            raise ValueError("no pos_embed/cls_token: not a DINOv2 checkpoint")
        sd = _convert_dinov2(dict(sd), vit)  # Meta's names -> timm's (drops mask_token, SwiGLU w12/w3 -> fc1/fc2)
        sd["pos_embed"] = resample_pos_embed(sd["pos_embed"], INPUT // PATCH)
        check_state_dict(sd, vit.state_dict(), f"timm {arch}", str(path))
        vit.load_state_dict(sd, strict=True)
        return DinoV2Net(vit)

    return build


for _name, (_arch, _hub, _dim) in MODELS.items():
    W.register_weights(W.WeightsFile(
        name=_name,
        filename=f"{_hub}_pretrain.pth",
        url=f"https://dl.fbaipublicfiles.com/dinov2/{_hub}/{_hub}_pretrain.pth",
        used_by=f"{_name}: DINOv2 CLS features (FD_DINOv2, Stein et al. 2023); Meta publishes no hash",
    ))

SPECS = tuple(ExtractorSpec(
    name=name, weights=name, dim=dim, input_size=INPUT, native_resize="legacy-tf",
    input="ImageNet mean/std on 0..255, CLS token after the final LayerNorm",
    build=builder(name), source=f"timm {arch} (Meta dinov2 checkpoint)",
) for name, (arch, _, dim) in MODELS.items())
