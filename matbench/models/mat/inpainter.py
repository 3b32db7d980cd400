"""MAT as a matbench Inpainter, plus the registry entries for the released checkpoints.

Conventions (MAT's): image in [-1, 1] (uint8 / 127.5 - 1), mask 1 = known / 0 = hole. Any H x W works: the input is
padded to a multiple of the network resolution (image by reflection, mask = hole in the padding, as MAT's README
recommends) and cropped back. Outputs are rounded as the official generate_image.py does,
(x * 127.5 + 127.5).round().clamp(0, 255), and known pixels are the input's exactly.

Randomness: z and both dropout maps of image i come from matbench.seeding with (seed, id, purpose, sample), never
from the batch position or the global RNG; each image runs its own forward by default, so uint8 results do not
depend on batch size or order. Noise is 'const' at the trained resolution; for padded sizes other than the
trained one the constant noise does not fit, and per-image seeded 'random' noise is used (the official script
switches to random there too).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from matbench import seeding
from matbench import weights as wreg
from matbench.errors import SpecError, WeightsError
from matbench.io import sha256_file
from matbench.models.base import Inpainter, Requirements, register_model
from matbench.models.mat.network import NOISE_MODES, Generator, Noise, build_generator
from matbench.models.options import Option
from matbench.weights import WeightsFile, register_weights

PRECISIONS = ("fp32", "tf32", "bf16")
SMOKE_TORGB_SCALE = 0.05

_MANUAL = (
    "the official host is a browser share link (no direct download): open {link} (linked from "
    "https://github.com/fenglinglwb/MAT README, 'Pretrained Models'), download {file}; no sha256 is published"
)
# OneDrive folder linked from the official README (commit d273d89), "Quick Test" and news of 2022-06-21.
_ONEDRIVE = ("https://mycuhk-my.sharepoint.com/:f:/g/personal/1155137927_link_cuhk_edu_hk/"
             "EuY30ziF-G5BvwziuHNFzDkBVC6KBPRg69kCeHIu-BXORA?e=7OwJyE")
_FFHQ_LINK = ("https://mycuhk-my.sharepoint.com/:u:/g/personal/1155137927_link_cuhk_edu_hk/"
              "ESwt5gvPs4JOvC76WAEDfb4BSJZNy-qsfJSUZz2kTxYyWw?e=71nHCJ")

RELEASED = {
    # registry name: (file, resolution, training data)
    "mat-places512-fulldata": ("Places_512_FullData.pkl", 512, "Places365-Challenge, full data"),
    "mat-places512": ("Places_512.pkl", 512, "Places365-Standard subset"),
    "mat-celebahq512": ("CelebA-HQ_512.pkl", 512, "CelebA-HQ"),
    "mat-celebahq256": ("CelebA-HQ_256.pkl", 256, "CelebA-HQ"),
    "mat-ffhq512": ("FFHQ_512.pkl", 512, "FFHQ"),
}
DEFAULT_WEIGHTS = {512: "mat-places512-fulldata", 256: "mat-celebahq256"}
# Hugging Face mirrors users point to when the OneDrive links fail (fenglinglwb/MAT#132); the file name
# inside the mirror is assumed to be the release's own (not checked here: no network).
HF_MIRRORS = {"mat-places512-fulldata": ("Icar/mat_places512_full", "Places_512_FullData.pkl")}

for _name, (_file, _res, _data) in RELEASED.items():
    register_weights(WeightsFile(
        name=_name,
        filename=_file,
        url=None,
        sha256=None,  # not published by the authors; record the file's sha256 in results instead
        manual=_MANUAL.format(link=_FFHQ_LINK if _file.startswith("FFHQ") else _ONEDRIVE, file=_file),
        used_by="mat",
        extra={"resolution": _res, "mapping_layers": 8, "trained_on": _data, "format": "torch_utils.persistence pkl"},
        hf_repo=HF_MIRRORS.get(_name, (None, None))[0],
        hf_filename=HF_MIRRORS.get(_name, (None, None))[1],
    ))


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32: plain float32 (TF32 off); tf32: TF32 matmul/conv on CUDA; bf16: autocast to bfloat16."""
    if precision not in PRECISIONS:
        raise SpecError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad bottom/right by any amount (repeated reflection when the pad exceeds the size)."""
    while pad_h > 0 or pad_w > 0:
        ph = min(pad_h, x.shape[2] - 1)
        pw = min(pad_w, x.shape[3] - 1)
        if ph <= 0 and pw <= 0:  # 1-pixel dimension: nothing to reflect, repeat it
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, max(pw, 0), 0, max(ph, 0)), mode="reflect")
        pad_h -= max(ph, 0)
        pad_w -= max(pw, 0)
    return x


def smoke_generator(resolution: int, mapping_layers: int = 8, seed: int = 0) -> Generator:
    """Deterministic random weights (official-style init from a fixed seed), without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = build_generator(resolution, mapping_layers)
    # The untrained init gives outputs with std ~40 (in [-1, 1] units), i.e. saturated images; damp the ToRGB
    # layers so smoke outputs stay in range and visibly depend on z / the dropout maps.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("toRGB.conv.weight"):
                p.mul_(SMOKE_TORGB_SCALE)
    return G


class MATInpainter(Inpainter):
    """MAT (Li et al., CVPR 2022) on our port of the official generator."""

    name = "mat"
    requires = Requirements(weights=(DEFAULT_WEIGHTS[512],), size_multiple=512, samples=True, native_resolution=512)

    def __init__(self, generator: Generator, truncation_psi: float = 1.0, noise_mode: str = "const",
                 precision: str = "fp32", device: str | torch.device = "cpu", smoke: bool = False,
                 weights: dict[str, Any] | None = None, batch_forward: bool = False) -> None:
        super().__init__()
        if noise_mode not in NOISE_MODES:
            raise SpecError(f"mat: noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        if precision not in PRECISIONS:
            raise SpecError(f"mat: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.G = generator.eval().requires_grad_(False)
        self.resolution = int(generator.img_resolution)
        self.truncation_psi = float(truncation_psi)
        self.noise_mode = noise_mode
        self.precision = precision
        self.smoke = bool(smoke)
        self.weights = weights or {}
        self.batch_forward = bool(batch_forward)
        self.requires = Requirements(weights=MATInpainter.requires.weights, size_multiple=self.resolution,
                                     samples=True, native_resolution=self.resolution)
        self.to(device)

    def to(self, device: str | torch.device) -> MATInpainter:
        self.device = torch.device(device)
        self.G.to(self.device)
        return self

    # ------------------------------------------------------------------ per-image randomness
    def latent(self, seed: int, image_id: str, sample: int) -> torch.Tensor:
        return seeding.randn((self.G.z_dim,), seed, image_id, "mat-z", sample)

    def dropout_maps(self, seed: int, image_id: str, sample: int, height: int,
                     width: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = seeding.generator(seed, image_id, "mat-dropout", sample)
        return self.G.draw_dropout_maps(1, height, width, g)

    def _noise_mode_for(self, height: int, width: int) -> str:
        if self.noise_mode == "const" and (height, width) != (self.resolution, self.resolution):
            return "random"
        return self.noise_mode

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        n, _, h, w = images.shape
        r = self.resolution
        hp, wp = math.ceil(h / r) * r, math.ceil(w / r) * r
        x = images.to(self.device, torch.float32) / 127.5 - 1
        known = (~hole).to(self.device, torch.float32)
        x = reflect_pad(x, hp - h, wp - w)
        known = F.pad(known, (0, wp - w, 0, hp - h), value=0.0)  # padding counts as hole
        mode = self._noise_mode_for(hp, wp)
        zs = torch.stack([self.latent(seed, i, sample) for i in ids]).to(self.device)
        maps = [self.dropout_maps(seed, i, sample, hp, wp) for i in ids]
        noise_gens = [seeding.generator(seed, i, "mat-noise", sample) for i in ids]
        chunks = [list(range(n))] if self.batch_forward else [[i] for i in range(n)]
        outs = []
        with precision_context(self.precision, self.device):
            for idx in chunks:
                m1 = torch.cat([maps[i][0] for i in idx]).to(self.device)
                m2 = torch.cat([maps[i][1] for i in idx]).to(self.device)
                noise = Noise(mode, [noise_gens[i] for i in idx], (m1, m2))
                y = self.G(x[idx], known[idx], zs[idx], truncation_psi=self.truncation_psi, noise=noise)
                outs.append(y.float())
        y = torch.cat(outs)[:, :, :h, :w]
        out = (y * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8).cpu()
        return torch.where(hole.cpu().expand_as(out), out, images.cpu())

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "resolution": self.resolution,
                "mapping_layers": self.G.mapping.num_layers, "truncation_psi": self.truncation_psi,
                "noise_mode": self.noise_mode, "precision": self.precision, "device": str(self.device),
                "batch_forward": self.batch_forward, "weights": self.weights}


def _resolve_weights(weights: str | Path | None, resolution: int | None) -> tuple[Path, dict[str, Any]]:

    if weights is not None and Path(weights).is_file():
        path = Path(weights)
        return path, {"path": str(path), "sha256": sha256_file(path)}
    name = str(weights) if weights is not None else DEFAULT_WEIGHTS[int(resolution or 512)]
    if name not in RELEASED:
        if weights is not None and any(s in str(weights) for s in ("/", "\\", ".")):
            raise WeightsError(f"{weights}: MAT weights file does not exist (and is not a registered name; known: "
                               f"{', '.join(RELEASED)})")
        raise WeightsError(f"unknown MAT weights {name!r}; known: {', '.join(RELEASED)} (or give a file path)")
    path = wreg.resolve(name)
    entry = wreg.get(name)
    if resolution is not None and int(resolution) != entry.extra["resolution"]:
        raise SpecError(f"mat: weights {name} are {entry.extra['resolution']}px, resolution={resolution} asked")
    return path, {"name": name, "path": str(path), "sha256": sha256_file(path)}


@register_model("mat", description="MAT: Mask-Aware Transformer (CVPR 2022), our port of the official generator",
                requires=Requirements(weights=(DEFAULT_WEIGHTS[512],), size_multiple=512, samples=True,
                                      native_resolution=512),
                options=(
                    Option("weights", "path", None, "checkpoint (.pkl / .pth / .safetensors) or registered name "
                           "(mat-places512-fulldata, ...); default by resolution"),
                    Option("resolution", "int", None, "network resolution (default: from the weights, else 512)",
                           choices=(256, 512)),
                    Option("truncation_psi", "float", 1.0, "truncation of the style vector (1 = none, as the paper)"),
                    Option("noise_mode", "str", "const", "synthesis noise", choices=NOISE_MODES),
                    Option("smoke", "bool", False, "deterministic random weights (outputs are meaningless)"),
                    Option("device", "str", "cpu", "cpu, cuda, cuda:N"),
                    Option("precision", "str", "fp32", "matmul/conv precision", choices=PRECISIONS),
                    Option("batch_forward", "bool", False, "one forward per batch (faster; per-image randomness "
                           "still from (seed, id))"),
                ))
def mat(weights: str | Path | None = None, resolution: int | None = None, truncation_psi: float = 1.0,
        noise_mode: str = "const", smoke: bool = False, device: str = "cpu", precision: str = "fp32",
        batch_forward: bool = False) -> MATInpainter:
    """Build the MAT inpainter.

    weights: a checkpoint path (.pkl / .pth / .safetensors) or a registry name (mat-places512-fulldata, ...);
    resolution: 512 or 256 (default: from the weights, else 512); smoke=True: deterministic random weights.
    """
    if resolution is not None and int(resolution) not in (256, 512):
        raise SpecError(f"mat: resolution must be 512 or 256, got {resolution}")
    if precision not in PRECISIONS:  # checked before any (slow) network build
        raise SpecError(f"mat: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if noise_mode not in NOISE_MODES:
        raise SpecError(f"mat: noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
    if smoke:
        res = int(resolution or 512)
        G = smoke_generator(res)
        info: dict[str, Any] = {"smoke": f"random weights: torch.manual_seed(0) init, ToRGB x{SMOKE_TORGB_SCALE}"}
    else:
        from matbench.models.mat.checkpoint import load_generator

        path, info = _resolve_weights(weights, resolution)
        G = load_generator(path, resolution=int(resolution) if resolution else None)
    return MATInpainter(G, truncation_psi=truncation_psi, noise_mode=noise_mode, precision=precision, device=device,
                        smoke=smoke, weights=info, batch_forward=batch_forward)
