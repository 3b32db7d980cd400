"""LPIPS through the `lpips` package (Zhang et al. 2018), as MAT's evaluatoin/cal_lpips.py uses it.

Inputs are uint8 [N, 3, H, W]; they are mapped to [-1, 1] by x / 127.5 - 1 (MAT's read_image) and passed to
lpips.LPIPS (version 0.1, the linear layers shipped inside the package). Net "alex" is MAT's default.

The ImageNet backbone (torchvision AlexNet / VGG16) is never downloaded by lpips or torchvision here: the package
is built with a random trunk and the torchvision checkpoint is resolved through matbench.weights (explicit path,
$MATBENCH_WEIGHTS, torch hub cache, official URL with hash check) and loaded into lpips' slices.
`smoke=True` instead fills the trunk with deterministic random weights (no file needed); the linear layers are
still the package's real ones. Smoke distances are not LPIPS and are marked so in provenance().

Memory grows with the pixels of a pair (measured on CPU, net alex: +0.9 GB at 2048x2048, 19 GB at 8000x8000), so
images over MAX_PIXELS are refused with a one-line InputError naming the image instead of exhausting the machine.
Tiling would not be exact (the trunk's receptive field crosses tile borders), so there is no tiled mode.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import inspect
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from matbench.errors import InputError, WeightsError
from matbench.io import sha256_file
from matbench.metrics.registry import BatchContext, register_group, register_metric
from matbench.weights import WeightsFile, register_weights
from matbench.weights import resolve as resolve_weights

BACKBONE_WEIGHTS = {
    "alex": register_weights(WeightsFile(
        name="torchvision-alexnet", filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", hash_prefix="7be5be79",
        used_by="LPIPS (net alex): ImageNet AlexNet trunk, torchvision AlexNet_Weights.IMAGENET1K_V1")),
    "vgg": register_weights(WeightsFile(
        name="torchvision-vgg16", filename="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth", hash_prefix="397923af",
        used_by="LPIPS (net vgg) trunk and the VGG16 fc2 features of precision/recall (matbench.features): "
                "torchvision VGG16_Weights.IMAGENET1K_V1")),
}

MAX_PIXELS = 4096 * 4096  # per image: about 4-5 GB for one pair, a bound every evaluation machine has
SMOKE_SEED = 20180111  # fixed: smoke backbones are identical across runs and machines


def _build_lpips(net: str) -> torch.nn.Module:
    import lpips

    # pnet_rand: lpips asks torchvision for an untrained trunk (no download). torchvision initialises it from the
    # global RNG, so fork it to leave the caller's random state untouched.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), contextlib.redirect_stdout(None):
        # torchvision's deprecation notices for lpips's `pretrained=` call (lpips's API, not the user's choice)
        warnings.filterwarnings("ignore", message="The parameter 'pretrained' is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message="Arguments other than a weight enum", category=UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    return model.eval()


def smoke_init_(backbone: torch.nn.Module, seed: int = SMOKE_SEED) -> None:
    """Deterministic He-normal weights and zero biases for every conv of an lpips trunk."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(backbone.named_parameters()):
            if name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * (2.0 / fan_in) ** 0.5)


def load_torchvision_backbone_(backbone: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy torchvision `features.<i>.*` tensors into lpips' `slice<k>.<i>.*` modules (same layer indices)."""
    mapped = {}
    for key in backbone.state_dict():
        _, idx, param = key.split(".", 2)
        tv_key = f"features.{idx}.{param}"
        if tv_key not in state:
            raise WeightsError(f"{source}: missing tensor {tv_key} (not a torchvision checkpoint for this net?)")
        mapped[key] = state[tv_key]
    try:
        backbone.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{source}: does not fit the LPIPS trunk ({str(e).splitlines()[0]})") from None


class LPIPS:
    """Per-image LPIPS distances for uint8 image batches."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu", smoke: bool = False,
                 backbone_path: str | None = None, check_hash: bool = True, allow_download: bool = True):
        if net not in BACKBONE_WEIGHTS:
            raise ValueError(f"unknown LPIPS net {net!r}; expected one of {', '.join(BACKBONE_WEIGHTS)}")
        self.net = net
        self.device = torch.device(device)
        self.smoke = smoke
        self.backbone_file: Path | None = None
        self.backbone_sha256: str | None = None
        if smoke:
            self.model = _build_lpips(net)
            smoke_init_(self.model.net)
        else:
            entry = BACKBONE_WEIGHTS[net]
            # Resolve first: a missing file fails before the (slow, for VGG) network construction.
            path = resolve_weights(entry.name, path=backbone_path, allow_download=allow_download,
                                   check_hash=check_hash)
            self.model = _build_lpips(net)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - any unreadable file becomes one clear message
                raise WeightsError(f"{path}: cannot read torch checkpoint ({type(e).__name__}: {e})") from None
            load_torchvision_backbone_(self.model.net, state, str(path))
            self.backbone_file = Path(path)
            self.backbone_sha256 = sha256_file(path)
        self.model.to(self.device)

    @staticmethod
    def to_input(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects uint8 [N, 3, H, W], got {x.dtype} {tuple(x.shape)}")
        return x.to(torch.float32) / 127.5 - 1.0

    def __call__(self, a: torch.Tensor, b: torch.Tensor, ids: Sequence[str] | None = None) -> torch.Tensor:
        """Distances [N] (float32, on CPU) between corresponding images of a and b (`ids` name them in errors)."""
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        if a.ndim == 4 and a.shape[-2] * a.shape[-1] > MAX_PIXELS:
            h, w = a.shape[-2:]
            name = ids[0] if ids else "image"
            raise InputError(f"{name}: {w}x{h} is over the LPIPS limit of {MAX_PIXELS:,} pixels (4096x4096; memory "
                             f"grows with the pixels, 19 GB at 8000x8000); resize the images first (e.g. matbench "
                             f"data prepare --res 2048) or leave lpips out of the metrics")
        with torch.no_grad():
            x = self.to_input(a.to(self.device))
            y = self.to_input(b.to(self.device))
            d = self.model(x, y)
        return d.reshape(d.shape[0]).float().cpu()

    def spatial_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pixel distances [N, 1, H, W] (float32, on CPU): lpips' spatial=True output, each layer's distance
        map upsampled bilinearly to the input size and summed over layers (same network as __call__)."""
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        self.model.spatial = True  # read by lpips.LPIPS.forward only; restored so __call__ stays scalar
        try:
            with torch.no_grad():
                d = self.model(self.to_input(a.to(self.device)), self.to_input(b.to(self.device)))
        finally:
            self.model.spatial = False
        return d.float().cpu()

    def provenance(self) -> dict[str, Any]:
        import lpips

        lin_file = Path(os.path.dirname(inspect.getfile(lpips))) / "weights" / "v0.1" / f"{self.net}.pth"
        try:
            version = md.version("lpips")
        except md.PackageNotFoundError:
            version = None
        return {
            "metric": "lpips",
            "net": self.net,
            "lpips_version": version,
            "lpips_linear_sha256": sha256_file(lin_file) if lin_file.is_file() else None,
            "input_range": "[-1, 1] via x/127.5-1",
            "smoke": self.smoke,
            "backbone": (f"smoke: He-normal seed {SMOKE_SEED}" if self.smoke
                         else BACKBONE_WEIGHTS[self.net].name),
            "backbone_file": str(self.backbone_file) if self.backbone_file else None,
            "backbone_sha256": self.backbone_sha256,
        }


def _evaluate(ctx: BatchContext) -> None:
    """LPIPS per image, in sub-batches of the evaluator's net_batch (activations dominate memory)."""
    ev = ctx.ev
    vals: list[float] = []
    bs = ev.net_batch
    for i in range(0, len(ctx.ids), bs):
        vals.extend(ev.lpips(ctx.real[i:i + bs], ctx.fake[i:i + bs], ids=ctx.ids[i:i + bs]).tolist())
    for r, v in zip(ctx.rows, vals, strict=True):
        r["lpips"] = float(v)


register_group("lpips", per_image=True, batch=_evaluate)
register_metric("lpips", higher_is_better=False, label="LPIPS", per_image=True, group="lpips", digits=4, default=4,
                order=50, doc="LPIPS (lpips package), alex or vgg, inputs scaled to [-1, 1]")(None)
# computed by `matbench run` from several samples per image (matbench.diversity), not by the Evaluator
register_metric("diversity", higher_is_better=True, label="Diversity (LPIPS)", digits=4, order=110, evaluated=False,
                doc="mean pairwise LPIPS between samples of one image")(None)
