"""Registry of the feature spaces beyond MAT's Inception/VGG: DINOv2, CLIP, pytorch-fid's Inception.

Each extractor is one small module that registers an :class:`ExtractorSpec` (name, weights registry entry,
feature dimension, input size, native resize convention, how to build the network from a weights file or
with seeded random "smoke" weights). :func:`build` turns a spec into a :class:`matbench.features.FeatureExtractor`
that records its resize convention and input convention in ``describe()`` (and so in every result), and whose
cache key includes the resize convention when it is not the native one.

``matbench.features.get_extractor`` falls back to this registry for names it does not know itself, so the
evaluator, the cache and ``matbench stats`` use these extractors like the built-in ones.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from matbench.errors import InputError, MatbenchError, WeightsError
from matbench.resize import check_convention, resize

SMOKE_SEED = 20240601
_LOCK = threading.Lock()

# network(x) takes float32 [N,3,S,S] on 0..255 (already resized) and returns features [N, dim]
Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    weights: str  # matbench.weights registry name
    dim: int
    input_size: int  # S: the network's square input
    native_resize: str  # the convention of the package that defines this extractor
    input: str  # normalisation and layout as the network receives it (recorded in results)
    build: Callable[[Path | None], Network]  # path None = smoke (seeded random weights)
    source: str = ""  # which package provides the network
    l2_normalised: bool = False  # features are unit vectors (CLIP embeddings for CMMD)
    resizes_inside: bool = False  # the network applies its native resize itself (given unresized float input)


_SPECS: dict[str, ExtractorSpec] = {}
_MODULES = ("matbench.extractors.dinov2", "matbench.extractors.clip", "matbench.extractors.pt_inception")


def register_extractor(spec: ExtractorSpec) -> ExtractorSpec:
    check_convention(spec.native_resize)
    old = _SPECS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"feature extractor {spec.name!r} already registered differently")
    _SPECS[spec.name] = spec
    return spec


def _load_all() -> None:
    for m in _MODULES:
        importlib.import_module(m)


def names() -> list[str]:
    _load_all()
    return sorted(_SPECS)


def get_spec(name: str) -> ExtractorSpec:
    _load_all()
    if name not in _SPECS:
        raise InputError(f"unknown feature extractor {name!r}; known: {', '.join(known_names())}")
    return _SPECS[name]


def known_names() -> list[str]:
    from matbench.features import EXTRACTORS

    return [*EXTRACTORS, *names()]


def require(module: str, who: str) -> None:
    """One-line error when an optional package of the `protocols` extra is missing."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        raise InputError(f"{who} needs the {module} package: pip install 'matbench[protocols]'") from None


def seeded(fn: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module with torch's default init under SMOKE_SEED, without touching the global RNG."""
    with _LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(SMOKE_SEED)
        return fn()


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain (weights-only) state dict, or the parameters of a TorchScript archive (OpenAI's CLIP files)."""
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e_plain:
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception:
            raise WeightsError(f"{path}: neither a weights-only state dict nor a TorchScript archive "
                               f"({type(e_plain).__name__}: {str(e_plain).splitlines()[0][:200]})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return sd


def build(name: str, device: str = "cpu", smoke: bool = False, path: str | os.PathLike | None = None,
          batch_size: int = 32, allow_download: bool = True, resize_convention: str | None = None):
    """A FeatureExtractor for a registered spec, with its resize convention recorded."""
    from matbench import features as F
    from matbench import weights as W

    spec = get_spec(name)
    conv = check_convention(resize_convention or spec.native_resize)
    if smoke:
        net, digest, resolved = spec.build(None), F.smoke_weights_sha256(name), None
    else:
        resolved = W.resolve(spec.weights, path, allow_download=allow_download, check_hash=False)
        digest = F.verified_sha256(spec.weights, resolved)
        try:
            net = spec.build(resolved)
        except MatbenchError:
            raise
        except Exception as e:
            raise WeightsError(f"{resolved}: cannot load {name} weights ({type(e).__name__}: {e})") from None
    if isinstance(net, torch.nn.Module):
        net = net.to(device).eval()
    size = spec.input_size
    inside = spec.resizes_inside and conv == spec.native_resize

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(torch.float32) if inside else resize(x, size, conv))

    ex = ProtocolExtractor(name, forward, spec.dim, digest, smoke, device, path=resolved, batch_size=batch_size)
    ex.resize_convention = conv
    ex.native_resize = spec.native_resize
    ex.input_convention = f"{conv} resize to {size}x{size}; {spec.input}"
    ex.source = spec.source
    ex.l2_normalised = spec.l2_normalised
    return ex


def _extractor_base():
    from matbench.features import FeatureExtractor

    return FeatureExtractor


class ProtocolExtractor(_extractor_base()):  # type: ignore[misc]
    """FeatureExtractor that also records its resize and input conventions."""

    resize_convention: str = ""
    native_resize: str = ""
    input_convention: str = ""
    source: str = ""
    l2_normalised: bool = False

    @property
    def key(self) -> str:
        # features under a non-native resize are different features: keep them apart in the cache
        base = self.name if self.resize_convention == self.native_resize else f"{self.name}+{self.resize_convention}"
        return f"{base}@{self.weights_sha256}"

    def describe(self) -> dict:
        d = super().describe()
        d.update(resize=self.resize_convention, input=self.input_convention, source=self.source)
        return d
