"""LaMa (Big LaMa) behind matbench's Inpainter interface, following the official predict path.

Official path (advimman/lama bin/predict.py with configs/prediction/default.yaml):
  image float32 in [0,1]; mask 1 = hole (any nonzero pixel); pad bottom/right to a multiple of 8
  with numpy 'symmetric' mode (edge sample repeated); generator input = [image·(1−mask), mask];
  sigmoid output; inpainted = mask·predicted + (1−mask)·image; crop back; uint8 by
  np.clip(x·255, 0, 255).astype(uint8), i.e. truncation. `rounding="round"` rounds instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from matbench import weights as weights_registry
from matbench.errors import SpecError, WeightsError
from matbench.models.base import Inpainter, Requirements, register_model
from matbench.models.options import Option
from matbench.weights import WeightsFile, register_weights

from .checkpoint import LamaCheckpoint, build_generator, load_lama
from .network import BIG_LAMA, FFCResNetGenerator, count_parameters

PAD_MODULO = 8
ROUNDING = ("official", "round")

# Third parties report this for big-lama/models/best.ckpt (410,046,389 bytes); only the ends are published.
REPORTED_BEST_CKPT_SHA256 = ("fccb7adf", "5d423")

BIG_LAMA_WEIGHTS = register_weights(WeightsFile(
    name="big-lama",
    filename="big-lama.zip",
    url="https://huggingface.co/smartywu/big-lama/resolve/main/big-lama.zip",
    sha256=None,  # no official hash is published for the zip
    manual=("download big-lama.zip (LaMa README: `curl -LJO https://huggingface.co/smartywu/big-lama/resolve/main/"
            "big-lama.zip`, or the authors' Yandex Disk link https://disk.yandex.ru/d/ouP6l8VJ0HpMZg via "
            "yadisk-direct); use the zip as is or `unzip big-lama.zip` (-> big-lama/config.yaml, "
            "big-lama/models/best.ckpt) and pass the folder"),
    used_by="lama",
    dirname="big-lama",
    hf_repo="smartywu/big-lama",  # the same file the official URL serves, fetched through huggingface_hub
    hf_filename="big-lama.zip",
    extra={"unpack": "zip: big-lama/config.yaml + big-lama/models/best.ckpt (read directly from the zip)",
           "best_ckpt_bytes": 410046389,
           "best_ckpt_sha256_reported": "fccb7adf…5d423 (third-party report; full hash unknown)"},
))

REQUIREMENTS = Requirements(weights=("big-lama",), size_multiple=PAD_MODULO, samples=False, native_resolution=256)


# --------------------------------------------------------------------------- the official predict path


def symmetric_pad_index(n: int, pad: int, device: torch.device | None = None) -> torch.Tensor:
    """Indices of np.pad(mode='symmetric') on the high side: n, n+1, … map to n-1, n-2, … (mirror incl. edge)."""
    i = torch.arange(n + pad, device=device)
    period = 2 * n
    j = i % period
    return torch.where(j < n, j, period - 1 - j)


def pad_to_modulo(x: torch.Tensor, mod: int = PAD_MODULO) -> torch.Tensor:
    """Pad [N,C,H,W] on the bottom/right to multiples of `mod` like LaMa's pad_img_to_modulo."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % mod, (-w) % mod
    if ph:
        x = x.index_select(-2, symmetric_pad_index(h, ph, x.device))
    if pw:
        x = x.index_select(-1, symmetric_pad_index(w, pw, x.device))
    return x


@torch.no_grad()
def lama_forward(generator: nn.Module, image: torch.Tensor, mask: torch.Tensor, mod: int = PAD_MODULO
                 ) -> dict[str, torch.Tensor]:
    """The official path on float input: image [N,3,H,W] in [0,1], mask [N,1,H,W], nonzero = hole.

    Returns the padded `image`, binarised `mask`, `gen_input`, `predicted` (padded size) and
    `inpainted` (cropped back to H×W), all float32.
    """
    h, w = image.shape[-2:]
    image = pad_to_modulo(image.float(), mod)
    mask = (pad_to_modulo(mask.float(), mod) > 0).float()
    gen_input = torch.cat([image * (1 - mask), mask], dim=1)
    predicted = generator(gen_input)
    inpainted = mask * predicted + (1 - mask) * image
    return {"image": image, "mask": mask, "gen_input": gen_input, "predicted": predicted,
            "inpainted": inpainted[..., :h, :w]}


def to_uint8(x: torch.Tensor, rounding: str = "official") -> torch.Tensor:
    """[0,1] float → uint8. 'official': clip(x·255, 0, 255) truncated like predict.py; 'round': nearest."""
    y = x * 255
    if rounding == "round":
        y = torch.round(y)
    elif rounding != "official":
        raise ValueError(f"rounding must be one of {ROUNDING}, got {rounding!r}")
    return y.clamp(0, 255).to(torch.uint8)  # values are >= 0 after clamp: the cast truncates


# --------------------------------------------------------------------------- smoke weights


def smoke_generator(seed: int = 0) -> FFCResNetGenerator:
    """Deterministic random Big LaMa weights (PyTorch default init from `seed`), with sane BN statistics.

    With running stats left at mean 0 / var 1 the activations explode and every output saturates,
    so the statistics are calibrated with one train-mode pass over a fixed synthetic batch.
    The global RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FFCResNetGenerator(BIG_LAMA)
    g = torch.Generator().manual_seed(seed + 1)
    n, s = 2, 64
    img = torch.nn.functional.interpolate(torch.rand(n, 3, s // 8, s // 8, generator=g), size=(s, s),
                                          mode="bilinear", align_corners=False)
    mask = torch.zeros(n, 1, s, s)
    mask[:, :, s // 4: 3 * s // 4, s // 8: s // 2] = 1
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one pass, running stats = batch stats
    model.train()
    with torch.no_grad():
        model(torch.cat([img * (1 - mask), mask], dim=1))
    for bn in bns:
        bn.momentum = 0.1
        bn.num_batches_tracked.zero_()
    return model.eval()


# --------------------------------------------------------------------------- weights lookup


def _registry_candidates() -> list[Path]:
    """big-lama.zip and an unpacked big-lama/ folder in $MATBENCH_WEIGHTS and the torch hub cache."""
    out: list[Path] = []
    for base in (weights_registry.weights_dir(), weights_registry.hub_checkpoints_dir()):
        if base is not None:
            out += [base / "big-lama", base / BIG_LAMA_WEIGHTS.filename]
    return out


def find_big_lama() -> Path | None:
    for p in _registry_candidates():
        if (p.is_dir() and (p / "models" / "best.ckpt").is_file()) or p.is_file():
            return p
    return None


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    """A path given as is; None or 'big-lama' → the registry (local copies first, then download if allowed)."""
    if weights is not None and str(weights) != BIG_LAMA_WEIGHTS.name:
        p = Path(weights).expanduser()
        if not p.exists():
            raise WeightsError(f"{p}: LaMa weights not found (give the big-lama folder, big-lama.zip or best.ckpt)")
        return p
    found = find_big_lama()
    if found is not None:
        return found
    return weights_registry.resolve(BIG_LAMA_WEIGHTS.name)  # downloads, or raises a WeightsError saying how


# --------------------------------------------------------------------------- the adapter


class LamaInpainter(Inpainter):
    """Big LaMa (FFC ResNet generator) with the official predict-path conventions."""

    name = "lama"
    requires = REQUIREMENTS

    def __init__(self, generator: FFCResNetGenerator, rounding: str = "official", smoke: bool = False,
                 checkpoint: LamaCheckpoint | None = None, batch_size: int = 8) -> None:
        super().__init__()
        if rounding not in ROUNDING:
            raise SpecError(f"lama: rounding must be one of {', '.join(ROUNDING)}, got {rounding!r}")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise SpecError(f"lama: batch_size must be >= 1, got {batch_size}")
        self.generator = generator.eval()
        self.rounding = rounding
        self.smoke = smoke
        self.checkpoint = checkpoint
        self.batch_size = batch_size

    def to(self, device: str | torch.device) -> LamaInpainter:
        super().to(device)
        self.generator.to(self.device)
        return self

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        outs = []
        for i in range(0, images.shape[0], self.batch_size):  # BN is in eval mode: per-image results
            img = images[i: i + self.batch_size].to(self.device).float() / 255
            m = hole[i: i + self.batch_size].to(self.device).float()
            res = lama_forward(self.generator, img, m)
            outs.append(to_uint8(res["inpainted"], self.rounding).cpu())
        return torch.cat(outs)

    def provenance(self) -> dict[str, Any]:
        info: dict[str, Any] = {**super().provenance(), "rounding": self.rounding, "pad_modulo": PAD_MODULO,
                                "parameters": count_parameters(self.generator),
                                "generator": self.generator.config.to_dict()}
        if self.smoke:
            info["weights"] = "smoke: deterministic random init (seed 0), BN stats calibrated on a synthetic batch"
        elif self.checkpoint is not None:
            c = self.checkpoint
            info["weights"] = {"source": c.source, "config": c.config_source, "sha256": c.sha256, **c.meta}
            if c.sha256:
                head, tail = REPORTED_BEST_CKPT_SHA256
                info["weights"]["matches_reported_best_ckpt"] = c.sha256.startswith(head) and c.sha256.endswith(tail)
        return info


def load_lama_inpainter(weights: str | os.PathLike | None = None, smoke: bool = False, device: str = "cpu",
                        rounding: str = "official", batch_size: int = 8) -> LamaInpainter:
    """Build the LaMa adapter from released weights (folder, zip, .ckpt or registry name) or smoke weights."""
    if rounding not in ROUNDING:
        raise SpecError(f"lama: rounding must be one of {', '.join(ROUNDING)}, got {rounding!r}")
    if smoke:
        if weights is not None:
            raise SpecError("lama: give either weights or smoke=True, not both")
        model = LamaInpainter(smoke_generator(0), rounding=rounding, smoke=True, batch_size=batch_size)
    else:
        ckpt = load_lama(resolve_weights(weights))
        model = LamaInpainter(build_generator(ckpt), rounding=rounding, checkpoint=ckpt, batch_size=batch_size)
    return model.to(device)


@register_model("lama", description="Big LaMa (FFC ResNet, Suvorov et al. 2022); official predict-path conventions",
                requires=REQUIREMENTS,
                options=(
                    Option("weights", "path", None, "big-lama folder, big-lama.zip, best.ckpt or 'big-lama'"),
                    Option("smoke", "bool", False, "deterministic random weights (outputs are meaningless)"),
                    Option("device", "str", "cpu", "cpu, cuda, cuda:N"),
                    Option("rounding", "str", "official", "float -> uint8 conversion", choices=ROUNDING),
                    Option("batch_size", "int", 8, "images per forward pass"),
                ))
def lama(weights: str | os.PathLike | None = None, smoke: bool = False, device: str = "cpu",
         rounding: str = "official", batch_size: int = 8) -> Inpainter:
    """Big LaMa. Options: weights (big-lama folder/zip/best.ckpt or 'big-lama'), smoke, device, rounding."""
    return load_lama_inpainter(weights=weights, smoke=smoke, device=device, rounding=rounding, batch_size=batch_size)
