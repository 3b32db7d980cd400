"""CoModGAN behind the matbench Inpainter interface, and its weights registry entries.

Conventions (official TF code and the port's `master` branch):
- image uint8 -> x * 2/255 - 1 in [-1, 1]; mask 1 = known (our `hole` inverted);
- z ~ N(0, I) [512], noise N(0, 1) per styled conv, dropout keep mask of the global code:
  all drawn from matbench.seeding per (seed, image id, sample), so a result does not depend on the
  batch (the original draws them from an unseeded RNG on every call);
- dropout: "official" keeps the TF graph's dropout(0.5) on the global code at inference (default),
  "off" is the port's eval() behaviour; the mode is recorded in the provenance;
- no truncation (the official evaluation passes psi = None; the converted weights carry no dlatent_avg);
- output composited raw * (1 - m) + x * m, quantised like the official metrics
  (floor(x * 127.5 + 128), saturated) or, with quantize="trunc", like run_generator.py / the port's test.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matbench.baselines.comodgan.network import CoModGenerator

from matbench import seeding
from matbench import weights as wreg
from matbench.errors import InputError, SpecError, WeightsError
from matbench.io import sha256_file
from matbench.models.base import Inpainter, Requirements, register_model
from matbench.models.options import Option
from matbench.models.statecheck import check_state_dict, read_plain_state_dict

_MANUAL = ("open {url} in a browser (or wget it, as download/{script} of zengxianyu/co-mod-gan-pytorch does; "
           "weights converted from the official TF release) and save it as {filename} (no sha256 is published, "
           "so the file cannot be verified)")
_LINKS = {
    "places2-512": ("co-mod-gan-places2-050000.pth", "places512.sh",
                    "https://maildluteducn-my.sharepoint.com/:u:/g/personal/zengyu_mail_dlut_edu_cn/"
                    "EQG9jJzkFLJDsOWmVJJSoqQB2jRDkXlYt3wnt9Fb9dJDsQ?download=1", 512),
    "ffhq-512": ("co-mod-gan-ffhq-9-025000.pth", "ffhq512.sh",
                 "https://maildluteducn-my.sharepoint.com/:u:/g/personal/zengyu_mail_dlut_edu_cn/"
                 "Ee1YPJG2Y7NDnUjJBf-SipoBBSlbv8QfFy6K7lsiiiiFHg?download=1", 512),
    "ffhq-1024": ("co-mod-gan-ffhq-10-025000.pth", "ffhq1024.sh",
                  "https://maildluteducn-my.sharepoint.com/:u:/g/personal/zengyu_mail_dlut_edu_cn/"
                  "EXcZ9OHEFQFAqhe1GQVFZ_4BwWoTvWyDM429gP5XrPAdaQ?download=1", 1024),
}
WEIGHTS: dict[str, wreg.WeightsFile] = {}
for _key, (_fn, _script, _url, _res) in _LINKS.items():
    WEIGHTS[_key] = wreg.register_weights(wreg.WeightsFile(
        name=f"comodgan-{_key}",
        filename=_fn,
        # A SharePoint share link (the port's download script wgets it); no published hash.
        url=None,
        sha256=None,
        manual=_MANUAL.format(script=_script, url=_url, filename=_fn),
        used_by="comodgan",
        extra={"resolution": _res, "source": "zengxianyu/co-mod-gan-pytorch", "share_url": _url,
               "format": "plain state_dict of co_mod_gan.Generator (180 entries at 512)"},
    ))
DEFAULT_WEIGHTS = "comodgan-places2-512"

REQUIRES = Requirements(weights=tuple(w.name for w in WEIGHTS.values()), size_multiple=512, samples=True,
                        native_resolution=512)
DROPOUT_MODES = ("official", "off")
QUANTIZE_MODES = ("round", "trunc")


# --------------------------------------------------------------------------- loading


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a `.pth` (torch.load weights_only, no code executed) or `.safetensors` file."""
    return read_plain_state_dict(path, "CoModGAN state_dict")


def infer_config(sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Generator constructor arguments implied by a state_dict (resolution from the G_RxR keys)."""
    res = [int(m.group(1)) for k in sd if (m := re.match(r"G_synthesis\.G_(\d+)x\1\.", k))]
    cfg = {"resolution": max(res) if res else 512}
    dense = sd.get("G_synthesis.G_4x4.Dense.bias")
    if dense is not None and dense.ndim == 1 and dense.numel() % 16 == 0 and dense.numel() // 16 < 512:
        cfg["fmap_max"] = dense.numel() // 16
    return cfg


def load_into(model: CoModGenerator, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict load: every key present, none extra, same shapes, constant FIR kernels as expected."""
    expected = model.state_dict()
    check_state_dict(sd, expected, f"the CoModGAN {model.resolution} generator", source)
    for k, v in expected.items():
        if k.endswith(".kernel") and not torch.allclose(sd[k].float(), v, rtol=0, atol=1e-6):
            raise WeightsError(f"{source}: FIR buffer {k} differs from the [1,3,3,1] filter this port expects")
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)


def load_generator(path: str | Path) -> CoModGenerator:
    """Build the generator at the checkpoint's resolution and load it strictly."""
    sd = read_state_dict(path)
    model = CoModGenerator(**infer_config(sd))
    load_into(model, sd, str(path))
    return model.eval().requires_grad_(False)


def smoke_generator(resolution: int = 512, seed: int = 0, fmap_max: int = 512) -> CoModGenerator:
    """Random weights with the port's initialisation, deterministic, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CoModGenerator(resolution=resolution, fmap_max=fmap_max)
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------- the model


class CoModGANInpainter(Inpainter):
    """CoModGAN (co-modulated StyleGAN2 with an image encoder); stochastic: one sample per (seed, id, sample)."""

    name = "comodgan"
    requires = REQUIRES

    def __init__(self, generator: CoModGenerator, dropout: str = "official", quantize: str = "round",
                 weights: dict[str, Any] | None = None, smoke: bool = False) -> None:
        super().__init__()
        if dropout not in DROPOUT_MODES:
            raise SpecError(f"comodgan option dropout must be one of {DROPOUT_MODES}, got {dropout!r}")
        if quantize not in QUANTIZE_MODES:
            raise SpecError(f"comodgan option quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
        self.generator = generator.eval().requires_grad_(False)
        self.dropout = dropout
        self.quantize = quantize
        self.weights = weights or {}
        self.smoke = smoke

    def to(self, device: str | torch.device) -> CoModGANInpainter:
        super().to(device)
        self.generator.to(self.device)
        return self

    # Per-image random inputs; drawn on CPU in float32 so every device sees the same numbers.
    def random_inputs(self, image_id: str, seed: int, sample: int
                      ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        g = self.generator
        z = seeding.randn((1, g.latent_dim), seed, image_id, "comodgan", "z", sample)
        noise = [seeding.randn(s, seed, image_id, "comodgan", "noise", i, sample) for i, s in enumerate(g.noise_shapes)]
        keep = None
        if self.dropout == "official":
            gen = seeding.generator(seed, image_id, "comodgan", "dropout", sample)
            keep = (torch.rand((1, g.global_dim), generator=gen) >= 0.5).float()  # keep prob 0.5, scaled by 2
        return z, noise, keep

    def _prepare(self, img: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[-1,1] image and 1 = known mask at the generator's resolution (smaller inputs are padded)."""
        r = self.generator.resolution
        h, w = img.shape[-2:]
        if h > r or w > r:
            raise InputError(f"comodgan: images must be at most {r}x{r} (the generator's fixed resolution), got "
                             f"{h}x{w}; resize or crop the dataset to {r} (matbench data prepare --res {r})")
        x = img.to(self.device, torch.float32) * (2.0 / 255.0) - 1.0
        m = (~hole).to(self.device, torch.float32)
        if (h, w) != (r, r):
            # Pad bottom/right to the fixed size with mirrored known content; the padding counts as known.
            pad = (0, r - w, 0, r - h)
            mode = "reflect" if r - w < w and r - h < h else "replicate"
            x = F.pad(x, pad, mode=mode)
            m = F.pad(m, pad, value=1.0)
        return x, m

    def _to_uint8(self, y: torch.Tensor) -> torch.Tensor:
        if self.quantize == "round":  # official metrics: floor(x * 127.5 + 128), saturated
            return torch.floor(y * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)
        return ((y + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)  # clip then truncate (run_generator.py)

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        h, w = images.shape[-2:]
        outs = []
        # One image at a time: identical results for any batch size (batched GEMMs round differently).
        for i, image_id in enumerate(ids):
            x, m = self._prepare(images[i:i + 1], hole[i:i + 1])
            z, noise, keep = self.random_inputs(image_id, seed, sample)
            dev = self.device
            y = self.generator(x, m, z.to(dev), noise=[n.to(dev) for n in noise],
                               dropout_keep=None if keep is None else keep.to(dev)).composited
            outs.append(self._to_uint8(y[:, :, :h, :w]).cpu())
        return torch.cat(outs, 0)

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "resolution": self.generator.resolution,
            "dropout": self.dropout,
            "dropout_note": ("dropout(0.5) on the global code active at inference, keep mask seeded per image "
                             "(official TF)" if self.dropout == "official"
                             else "no dropout (the PyTorch port in eval mode)"),
            "noise": "N(0,1) per styled conv, seeded per (seed, id, sample)",
            "latent": "z ~ N(0, I), seeded per (seed, id, sample)",
            "truncation": None,
            "quantize": self.quantize,
            "weights": self.weights,
        }


def _resolve_weights(weights: str) -> Path:
    """A registry name (comodgan-places2-512, ...) or a file path."""
    names = {w.name for w in WEIGHTS.values()}
    if weights in names:
        return wreg.resolve(weights, check_hash=False)
    p = Path(weights).expanduser()
    if p.is_file():
        return p
    raise WeightsError(f"{weights}: neither a CoModGAN weights file nor a registered name ({', '.join(sorted(names))})")


@register_model(
    "comodgan",
    description="CoModGAN generator (port of the official TF weights via zengxianyu/co-mod-gan-pytorch)",
    requires=REQUIRES,
    options=(
        Option("weights", "path", DEFAULT_WEIGHTS, "registered name (comodgan-places2-512, comodgan-ffhq-512, "
               "comodgan-ffhq-1024) or a .pth / .safetensors path"),
        Option("smoke", "bool", False, "deterministic random weights (outputs are meaningless)"),
        Option("device", "str", "cpu", "cpu, cuda, cuda:N"),
        Option("dropout", "str", "official", "official: on at inference with a seeded keep mask; off: the port's "
               "eval()", choices=DROPOUT_MODES),
        Option("quantize", "str", "round", "round: official metrics; trunc: run_generator.py", choices=QUANTIZE_MODES),
        Option("resolution", "int", 512, "only for smoke weights (a weights file sets its own); a power of two"),
    ),
)
def comodgan(weights: str = DEFAULT_WEIGHTS, smoke: bool = False, device: str = "cpu", dropout: str = "official",
             quantize: str = "round", resolution: int = 512) -> Inpainter:
    """CoModGAN at 512 (Places2 by default); `smoke=True` uses deterministic random weights (labelled smoke).

    weights: registered name (comodgan-places2-512, comodgan-ffhq-512, comodgan-ffhq-1024) or a .pth/.safetensors
    path; dropout: "official" (on at inference, seeded keep mask) or "off" (the port's eval()); quantize: "round"
    (official metrics) or "trunc" (run_generator.py); resolution: only for smoke weights (a file sets its own).
    """
    if dropout not in DROPOUT_MODES:
        raise SpecError(f"comodgan option dropout must be one of {DROPOUT_MODES}, got {dropout!r}")
    if smoke:
        if int(resolution) < 8 or 2 ** int(round(math.log2(int(resolution)))) != int(resolution):
            raise SpecError(f"comodgan option resolution must be a power of two >= 8, got {resolution}")
        gen = smoke_generator(int(resolution))
        info: dict[str, Any] = {"name": "smoke (random init, torch seed 0)", "path": None, "sha256": None}
    else:
        path = _resolve_weights(str(weights))
        gen = load_generator(path)
        info = {"name": weights if not Path(str(weights)).is_file() else path.name, "path": str(path),
                "sha256": sha256_file(path)}
    model = CoModGANInpainter(gen, dropout=dropout, quantize=quantize, weights=info, smoke=bool(smoke))
    return model.to(device)
