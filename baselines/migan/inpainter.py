"""MI-GAN behind the matbench Inpainter interface, and its weights registry entries.

Official convention (scripts/demo.py of Picsart-AI-Research/MI-GAN):
- image uint8 -> x * 2/255 - 1; mask 1 = known (255 = known in files), i.e. our `hole` inverted;
- generator input [known - 0.5, image * known] at the model's fixed resolution (256 or 512);
- output uint8 = ((y * 0.5 + 0.5).clamp(0, 1) * 255) truncated, then image * known + result * (1 - known).
Deterministic: the noise maps are fixed buffers of the released files, so there are no samples.
Other sizes, option `fit`: "pad" (default) pads an image up to the resolution bottom/right with mirrored
content counted as known (no resampling; larger images are refused), which is what a benchmark at
256/512 needs; "resize" is the demo's path: PIL bicubic stretch to resolution x resolution (mask
nearest), generator, truncation, cv2 bicubic back to the image's size, composite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from matbench import weights as wreg
from matbench.errors import InputError, SpecError, WeightsError
from matbench.io import sha256_file
from matbench.models.base import Inpainter, Requirements, register_model

from .checkpoint import load_generator, smoke_generator
from .network import MIGANGenerator, generator_input

# README, "Pretrained models": a Google Drive folder (browser only). No hashes are published.
_DRIVE = "https://drive.google.com/drive/folders/1xNtvN2lto0p5yFKOEEg9RioMjGrYM74w?usp=share_link"
_MANUAL = ("open {drive} (linked from https://github.com/Picsart-AI-Research/MI-GAN README) in a browser and "
           "download {file} (MIT-licensed; no sha256 is published)")
RELEASED = {
    "migan-512-places2": ("migan_512_places2.pt", 512, "Places365"),
    "migan-256-places2": ("migan_256_places2.pt", 256, "Places365"),
    "migan-256-ffhq": ("migan_256_ffhq.pt", 256, "FFHQ"),
}
for _name, (_file, _res, _data) in RELEASED.items():
    wreg.register_weights(wreg.WeightsFile(
        name=_name, filename=_file, url=None, sha256=None,
        manual=_MANUAL.format(drive=_DRIVE, file=_file), used_by="migan",
        extra={"resolution": _res, "trained_on": _data, "format": "plain state_dict of the inference Generator",
               "license": "MIT"},
    ))
DEFAULT_WEIGHTS = "migan-512-places2"
QUANTIZE = ("trunc", "round")
FITS = ("pad", "resize")
# Only the default file is required (the runner checks every listed file before a run).
REQUIRES = Requirements(weights=(DEFAULT_WEIGHTS,), size_multiple=1, samples=False, native_resolution=512)

# Declared options, as module data (matbench.models.options): unknown or ill-typed options are refused.
OPTIONS: dict[str, dict[str, Any]] = {
    "weights": {"type": "str", "default": DEFAULT_WEIGHTS, "help": "registry name or a .pt/.safetensors path"},
    "quantize": {"type": "str", "default": "trunc", "choices": list(QUANTIZE),
                 "help": "trunc = the official demo's cast; round = nearest"},
    "resolution": {"type": "int", "default": 512, "choices": [256, 512], "help": "smoke weights only"},
    "fit": {"type": "str", "default": "pad", "choices": list(FITS),
            "help": "pad: up to the resolution, mirrored, as known; resize: the official demo's bicubic stretch"},
    "smoke": {"type": "bool", "default": False, "help": "random weights (results labelled smoke)"},
}


def to_uint8(y: torch.Tensor, quantize: str = "trunc") -> torch.Tensor:
    """Generator output (about [-1, 1]) -> uint8, truncating like the official demo or rounding."""
    v = (y * 0.5 + 0.5).clamp(0, 1) * 255
    return (torch.round(v) if quantize == "round" else v).to(torch.uint8)


class MIGANInpainter(Inpainter):
    """MI-GAN: a small depthwise-separable encoder-decoder GAN; deterministic."""

    name = "migan"
    requires = REQUIRES

    def __init__(self, generator: MIGANGenerator, quantize: str = "trunc", weights: dict[str, Any] | None = None,
                 smoke: bool = False, fit: str = "pad") -> None:
        super().__init__()
        if quantize not in QUANTIZE:
            raise SpecError(f"migan option quantize must be one of {QUANTIZE}, got {quantize!r}")
        if fit not in FITS:
            raise SpecError(f"migan option fit must be one of {FITS}, got {fit!r}")
        self.fit = fit
        self.generator = generator.eval().requires_grad_(False)
        self.quantize = quantize
        self.weights = weights or {}
        self.smoke = smoke

    def to(self, device: str | torch.device) -> MIGANInpainter:
        super().to(device)
        self.generator.to(self.device)
        return self

    def prepare(self, img: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """uint8 [1,3,H,W] + hole -> the generator input at its resolution (smaller images padded, as known)."""
        r = self.generator.resolution
        h, w = img.shape[-2:]
        if h > r or w > r:
            raise InputError(f"migan: images must be at most {r}x{r} (the generator's fixed resolution), got "
                             f"{h}x{w}; resize or crop the dataset (matbench data prepare --res {r})")
        x = img.to(self.device, torch.float32) * 2 / 255 - 1  # this order of operations, as the demo
        known = (~hole).to(self.device, torch.float32)
        if (h, w) != (r, r):
            pad = (0, r - w, 0, r - h)
            mode = "reflect" if r - w < w and r - h < h else "replicate"
            x = F.pad(x, pad, mode=mode)
            known = F.pad(known, pad, value=1.0)
        return generator_input(x, known)

    @torch.no_grad()
    def inpaint_resized(self, img: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The official demo's path for one image of any size (uint8 [1,3,H,W] -> uint8 [1,3,H,W])."""
        import cv2
        from PIL import Image

        r = self.generator.resolution
        h, w = img.shape[-2:]
        rgb = Image.fromarray(img[0].permute(1, 2, 0).cpu().numpy()).resize((r, r), Image.BICUBIC)
        known = Image.fromarray(np.where(hole[0, 0].cpu().numpy(), 0, 255).astype(np.uint8)).resize((r, r),
                                                                                                 Image.NEAREST)
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].to(self.device, torch.float32) * 2 / 255 - 1
        k = torch.from_numpy(np.array(known) // 255)[None, None].to(self.device, torch.float32)
        y = self.generator(generator_input(x, k))
        res = to_uint8(y, self.quantize)[0].permute(1, 2, 0).cpu().numpy()
        res = cv2.resize(res, dsize=(w, h), interpolation=cv2.INTER_CUBIC)
        return torch.from_numpy(res).permute(2, 0, 1)[None]  # the base class composites the known pixels

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        h, w = images.shape[-2:]
        if self.fit == "resize":
            return torch.cat([self.inpaint_resized(images[i:i + 1], hole[i:i + 1]) for i in range(images.shape[0])])
        outs = []
        for i in range(images.shape[0]):  # one at a time: batched convolutions may round differently
            y = self.generator(self.prepare(images[i:i + 1], hole[i:i + 1]))
            outs.append(to_uint8(y[:, :, :h, :w], self.quantize).cpu())
        return torch.cat(outs, 0)  # the base class composites the known pixels back (as the demo does)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "resolution": self.generator.resolution, "quantize": self.quantize,
                "mask_convention": "generator mask 1 = known (official); our hole inverted",
                "fit": self.fit + (": images up to the resolution, padded bottom/right (mirrored, counted as known)"
                                   if self.fit == "pad" else ": official demo (PIL bicubic to the resolution, "
                                   "cv2 bicubic back)"),
                "weights": self.weights}


def _resolve(weights: str) -> Path:
    if weights in RELEASED:
        return wreg.resolve(weights, check_hash=False)
    p = Path(weights).expanduser()
    if p.is_file():
        return p
    raise WeightsError(f"{weights}: neither an MI-GAN weights file nor a registered name ({', '.join(RELEASED)})")


@register_model("migan", description="MI-GAN (Picsart, ICCV 2023): light mobile inpainting GAN, our port",
                requires=REQUIRES, options=OPTIONS)
def migan(weights: str = DEFAULT_WEIGHTS, smoke: bool = False, device: str = "cpu", quantize: str = "trunc",
          resolution: int = 512, fit: str = "pad") -> Inpainter:
    """MI-GAN at 512 (Places2) by default; `smoke=True` uses deterministic random weights (labelled smoke).

    weights: migan-512-places2 | migan-256-places2 | migan-256-ffhq, or a .pt/.safetensors path;
    quantize: "trunc" (official demo) or "round"; resolution: 256 or 512, smoke weights only;
    fit: "pad" (images up to the resolution) or "resize" (the official demo's stretch, any size).
    """
    if fit not in FITS:
        raise SpecError(f"migan option fit must be one of {FITS}, got {fit!r}")
    if quantize not in QUANTIZE:
        raise SpecError(f"migan option quantize must be one of {QUANTIZE}, got {quantize!r}")
    if smoke:
        if int(resolution) not in (256, 512):
            raise SpecError(f"migan option resolution must be 256 or 512, got {resolution}")
        gen = smoke_generator(int(resolution))
        info: dict[str, Any] = {"name": "smoke (random init, torch seed 0)", "path": None, "sha256": None}
    else:
        path = _resolve(str(weights))
        gen = load_generator(path)
        info = {"name": weights if weights in RELEASED else path.name, "path": str(path),
                "sha256": sha256_file(path)}
    return MIGANInpainter(gen, quantize=quantize, weights=info, smoke=bool(smoke), fit=fit).to(device)

