"""Everything about features: THE registry of feature extractors, their cache, folders, features.npz, reference
statistics and resize conventions.

Each extractor is one module here that declares its :class:`ExtractorSpec` (name, weights registry entry,
dimension, input size, native resize convention, how to build the network from a weights file or with seeded
random "smoke" weights) as data beside its builder, and registers its weights file with matbench.weights:

- ``inception-v3-compat`` (inception_tf.py), ``inception-nvidia`` (inception_nvidia.py), ``vgg16`` (vgg16.py):
  the MAT-protocol networks, given the uint8 batch and resizing inside;
- ``pt-inception`` (pt_inception.py), ``dinov2-vit{s,b,l,g}14`` (dinov2.py), ``clip-vitl14-336`` and
  ``clip-vitb32`` (clip.py): resized here under a named convention (resize.py), recorded in ``describe()`` and,
  when not the native one, in the cache key.

:func:`get_extractor` turns a spec into a :class:`FeatureExtractor`; real weights come from
matbench.weights.resolve. Reference statistics live in :mod:`matbench.features.refstats` (not imported here:
it needs the dataset and metric modules).
"""

from __future__ import annotations

import os

import torch

from matbench import weights as W
from matbench.errors import InputError, MatbenchError, WeightsError
from matbench.features import clip, dinov2, inception_nvidia, inception_tf, pt_inception, vgg16
from matbench.features import runtime as RT
from matbench.features.base import (
    SMOKE_SEED,
    ExtractorInfo,
    ExtractorSpec,
    FeatureExtractor,
    FeatureOutput,
    RuntimeInfo,
    check_u8,
    smoke_weights_sha256,
    verified_sha256,
)
from matbench.features.cache import (
    FeatureCache,
    default_cache_dir,
    extract_cached,
    extract_cached_outputs,
    image_sha256,
)
from matbench.features.files import FEATURES_FILE, feature_key_name, save_features
from matbench.features.folders import ImageFolderDataset, extract_folder, list_images, same_size_runs
from matbench.features.inception_nvidia import URL_NVIDIA_INCEPTION
from matbench.features.inception_tf import URL_TORCH_FIDELITY_INCEPTION
from matbench.features.resize import RESIZE_CONVENTIONS, check_convention, resize

__all__ = [
    "FEATURES_FILE", "RESIZE_CONVENTIONS", "SMOKE_SEED", "URL_NVIDIA_INCEPTION", "URL_TORCH_FIDELITY_INCEPTION",
    "ExtractorInfo", "ExtractorSpec", "FeatureCache", "FeatureExtractor", "FeatureOutput", "ImageFolderDataset",
    "check_convention", "check_u8", "default_cache_dir", "extract_cached", "extract_cached_outputs", "extract_folder",
    "feature_key_name", "get_extractor", "get_spec",
    "image_sha256", "list_images", "names", "register_extractor", "resize", "same_size_runs", "save_features",
    "smoke_weights_sha256", "verified_sha256",
]

_SPECS: dict[str, ExtractorSpec] = {}


def register_extractor(spec: ExtractorSpec) -> ExtractorSpec:
    """Add a spec to the registry (the same spec twice is fine, another one under a taken name is not)."""
    check_convention(spec.native_resize)
    old = _SPECS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"feature extractor {spec.name!r} already registered differently")
    _SPECS[spec.name] = spec
    return spec


for _module in (inception_tf, inception_nvidia, vgg16, pt_inception, dinov2, clip):
    for _spec in _module.SPECS:
        register_extractor(_spec)


def names() -> list[str]:
    """Every registered extractor name, sorted."""
    return sorted(_SPECS)


def get_spec(name: str) -> ExtractorSpec:
    if name not in _SPECS:
        raise InputError(f"unknown feature extractor {name!r}; known: {', '.join(names())}")
    return _SPECS[name]


def get_extractor(name: str, device: str = "cpu", smoke: bool = False, path: str | os.PathLike | None = None,
                  batch_size: int = 32, allow_download: bool = True,
                  resize_convention: str | None = None, runtime: str = "torch") -> FeatureExtractor:
    """Build a registered feature extractor; `resize_convention` None = the extractor's native one; `runtime`
    "torch", "onnx" or "auto" (matbench.features.runtime)."""
    spec = get_spec(name)
    ran, why = RT.resolve(runtime, device)
    conv = check_convention(resize_convention or spec.native_resize)
    if spec.uint8_input and conv != spec.native_resize:
        raise InputError(f"{name} resizes inside its network ({spec.native_resize}) and has no other convention; "
                         "use pt-inception, dinov2-* or clip-* for another resize")
    if smoke:
        net, digest, resolved = spec.build(None), smoke_weights_sha256(name), None
    else:
        resolved = W.resolve(spec.weights, path, allow_download=allow_download, check_hash=False)
        digest = verified_sha256(spec.weights, resolved)
        try:
            net = spec.build(resolved)
        except MatbenchError:
            raise
        except Exception as e:
            raise WeightsError(f"{resolved}: cannot load {name} weights ({type(e).__name__}: {e})") from None
    if isinstance(net, torch.nn.Module):
        net = net.to(device).eval()
    rt = RuntimeInfo(ran, why)
    module = net  # the torch module: further outputs are read by hooks on it (and then torch runs the pass)
    if ran == "onnx":
        net = RT.wrap(net, rt, f"{name}@{digest}", strict=runtime == "onnx")
    if spec.uint8_input:
        return _with_outputs(FeatureExtractor(name, net, spec.dim, digest, smoke, device, batch_size,
                                              ExtractorInfo(path=resolved, runtime=rt)), spec, module)
    size = spec.input_size
    inside = spec.resizes_inside and conv == spec.native_resize

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(torch.float32) if inside else resize(x, size, conv))

    info = ExtractorInfo(path=resolved, resize_convention=conv, native_resize=spec.native_resize,
                         input_convention=f"{conv} resize to {size}x{size}; {spec.input}", source=spec.source,
                         l2_normalised=spec.l2_normalised, runtime=rt)
    return _with_outputs(FeatureExtractor(name, forward, spec.dim, digest, smoke, device, batch_size, info), spec,
                         module)


def _with_outputs(fx: FeatureExtractor, spec: ExtractorSpec, net: object) -> FeatureExtractor:
    """The spec's further outputs, read by hooks on the built network (FeatureExtractor.extract)."""
    fx.outputs = {o.name: o for o in spec.outputs}
    fx.module = net if isinstance(net, torch.nn.Module) else None
    return fx
