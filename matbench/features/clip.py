"""OpenAI CLIP image embeddings: ``clip-vitl14-336`` (CMMD, Jayasumana et al. 2024) and ``clip-vitb32``
(clean-fid's CLIP-FID).

Network: torch-fidelity 0.4's CLIP vision tower (``feature_extractor_clip.build_model``, which reads OpenAI's
released TorchScript ``.pt`` files, or a plain state dict with the same tensor names). Input as torch-fidelity:
resize of the whole (uncropped) image to the model's square input, CLIP's mean/std on 0..255, the projected
image embedding (not L2-normalised here; CMMD normalises it).

Conventions of the reference implementations, recorded so that a mismatch is visible: the CMMD code resizes
bicubically to 336 with a centre crop (Hugging Face CLIPImageProcessor); clean-fid's CLIP-FID resizes the short
side to 224 (PIL bicubic on uint8) and centre-crops. Square inpainting crops make the crop a no-op; the filter
is chosen with ``--resize`` (``clean`` is the PIL bicubic filter, without clean-fid's uint8 rounding).
"""

from __future__ import annotations

from pathlib import Path

import torch

from matbench import weights as W
from matbench.features.base import ExtractorSpec, load_state_dict_file, seeded

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
BASE_URL = "https://openaipublic.azureedge.net/clip/models"
# name -> (OpenAI file stem, sha256 (OpenAI publishes it in the URL and clip.py checks it), embed dim,
#          input size, layers, width, patch)
MODELS = {
    "clip-vitl14-336": ("ViT-L-14-336px", "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                        768, 336, 24, 1024, 14),
    "clip-vitb32": ("ViT-B-32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
                    512, 224, 12, 768, 32),
}


class ClipNet(torch.nn.Module):
    """float 0..255 [N,3,S,S] -> projected CLIP image embedding [N, D] (float32)."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual((x - self.mean) / self.std).to(torch.float32)


def builder(name: str):
    _, _, dim, size, layers, width, patch = MODELS[name]

    def build(path: Path | None) -> torch.nn.Module:
        from torch_fidelity.feature_extractor_clip import CLIPVisual, build_model

        if path is None:
            model = seeded(lambda: CLIPVisual(dim, size, layers, width, patch))
        else:
            sd = load_state_dict_file(path)
            if "visual.proj" not in sd or "text_projection" not in sd:
                raise ValueError("no visual.proj/text_projection: not an OpenAI CLIP ViT checkpoint")
            model = build_model(dict(sd), torch.float32)
            res = model.visual.input_resolution
            if res != size or model.visual.output_dim != dim:
                raise ValueError(f"checkpoint is a {res}px, {model.visual.output_dim}-d CLIP; {name} is {size}px, "
                                 f"{dim}-d")
        return ClipNet(model.visual.float())

    return build


for _name, (_stem, _sha, _dim, _size, *_rest) in MODELS.items():
    W.register_weights(W.WeightsFile(
        name=_name,
        filename=f"{_stem}.pt",
        url=f"{BASE_URL}/{_sha}/{_stem}.pt",
        sha256=_sha,
        used_by=f"{_name}: OpenAI CLIP image embeddings ({'CMMD' if _size == 336 else 'CLIP-FID, clean-fid'})",
    ))

SPECS = tuple(ExtractorSpec(
    name=name, weights=name, dim=dim, input_size=size, native_resize="legacy-tf",
    input="CLIP mean/std on 0..255, whole image (no crop), projected embedding",
    build=builder(name), source="torch-fidelity 0.4 CLIP vision tower (OpenAI weights)",
) for name, (_, _, dim, size, *_) in MODELS.items())
