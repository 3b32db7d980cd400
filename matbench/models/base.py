"""The Inpainter interface every model implements, and the model registry.

Contract (fixed; runner, `matbench inpaint` and plugins depend on it):

    out = model(images, hole, ids, seed=0, sample=0)

- images: torch.uint8 [N, 3, H, W], RGB.
- hole:   torch.bool  [N, 1, H, W], True = missing pixel.
- ids:    N stable image ids; all randomness for image i comes from (seed, ids[i], sample)
          (see matbench.seeding), never from batch position or the global RNG.
- returns torch.uint8 [N, 3, H, W]; known pixels (hole == False) equal the input exactly.

A model is registered under a name with `@register_model("name")` on a factory
`factory(**options) -> Inpainter`. Third-party models register through the
`matbench.models` entry-point group (name -> "pkg.mod:factory") or are named directly
as "pkg.mod:factory" in a spec or on the command line.
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import torch

from matbench.errors import MatbenchError, SpecError
from matbench.models.options import Option, as_options, check_options, declared
from matbench.trust import resolve_reference, trusting

ENTRY_POINT_GROUP = "matbench.models"


@dataclass(frozen=True)
class Requirements:
    """What a model needs to run."""

    weights: tuple[str, ...] = ()  # names in the weights registry (matbench.weights)
    size_multiple: int = 1  # H and W must be multiples of this (the adapter pads/crops itself)
    samples: bool = False  # True if the model is stochastic (pluralistic: k samples per image)
    native_resolution: int | None = None  # training resolution, if any


class Inpainter(ABC):
    """Base class for inpainting models. Subclasses set `name` and `requires`."""

    name: str = "inpainter"
    requires: Requirements = Requirements()

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.smoke = False  # True when running on random (not released) weights

    @abstractmethod
    def inpaint(
        self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int, sample: int
    ) -> torch.Tensor:
        """Model-specific work; inputs already validated; return uint8 [N,3,H,W]."""

    def __call__(
        self,
        images: torch.Tensor,
        hole: torch.Tensor,
        ids: Sequence[str],
        seed: int = 0,
        sample: int = 0,
    ) -> torch.Tensor:
        check_batch(images, hole, ids)
        out = self.inpaint(images, hole, list(ids), int(seed), int(sample))
        if out.dtype != torch.uint8 or tuple(out.shape) != tuple(images.shape):
            raise RuntimeError(
                f"model {self.name!r} returned {out.dtype} {tuple(out.shape)}, "
                f"expected uint8 {tuple(images.shape)}"
            )
        # The contract: known pixels are the input's, whatever the network did.
        out = torch.where(hole.to(out.device).expand_as(out), out, images.to(out.device))
        return out

    def to(self, device: str | torch.device) -> Inpainter:
        self.device = torch.device(device)
        return self

    def provenance(self) -> dict[str, Any]:
        """Facts to record with results: options, weights hashes, smoke flag."""
        return {"name": self.name, "smoke": self.smoke}


def check_batch(images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str]) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise TypeError(f"images must be a uint8 tensor [N,3,H,W], got {getattr(images, 'dtype', type(images))} "
                        f"{tuple(getattr(images, 'shape', ()))}")
    if not isinstance(hole, torch.Tensor) or hole.dtype != torch.bool or hole.ndim != 4 or hole.shape[1] != 1:
        raise TypeError(f"hole must be a bool tensor [N,1,H,W], got {getattr(hole, 'dtype', type(hole))} "
                        f"{tuple(getattr(hole, 'shape', ()))}")
    if hole.shape[0] != images.shape[0] or hole.shape[2:] != images.shape[2:]:
        raise ValueError(f"hole {tuple(hole.shape)} does not match images {tuple(images.shape)}")
    if len(ids) != images.shape[0]:
        raise ValueError(f"{len(ids)} ids for a batch of {images.shape[0]} images")


# --------------------------------------------------------------------------- registry


@dataclass
class ModelInfo:
    name: str
    factory: Callable[..., Inpainter]
    description: str = ""
    requires: Requirements = field(default_factory=Requirements)
    source: str = "builtin"  # builtin | entry-point | reference
    options: tuple[Option, ...] | None = None  # declared options (matbench.models.options); None: not declared


_MODELS: dict[str, ModelInfo] = {}

# Built-in models are imported lazily (each module registers itself on import).
_BUILTIN_MODULES: tuple[str, ...] = (
    "matbench.baselines.classical",
    "matbench.models.mat.inpainter",
    "matbench.baselines.lama.inpainter",
    "matbench.baselines.comodgan.inpainter",
    "matbench.baselines.precomputed",
    "matbench.baselines.migan.inpainter",
    "matbench.baselines.diffusion.inpainter",
)
_loaded_builtins = False


def register_model(
    name: str, *, description: str = "", requires: Requirements | None = None,
    options: Any = None,
) -> Callable[[Callable[..., Inpainter]], Callable[..., Inpainter]]:
    """Decorator: register `factory(**options) -> Inpainter` under `name`, with its declared `options`
    (Option objects, or module data {name: {type, default, help, choices}}; see matbench.models.options)."""
    if options is not None:
        options = as_options(options, f"model {name!r} options")
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"invalid model name {name!r}")

    def deco(factory: Callable[..., Inpainter]) -> Callable[..., Inpainter]:
        if name in _MODELS and _MODELS[name].factory is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelInfo(
            name=name,
            factory=factory,
            description=description or (inspect.getdoc(factory) or "").split("\n")[0],
            requires=requires or Requirements(),
            options=tuple(options) if options is not None else declared(factory),
        )
        if options is not None:
            factory.options = tuple(options)  # type: ignore[attr-defined]  # same place a plugin puts them
        return factory

    return deco


def _load_builtins() -> None:
    global _loaded_builtins
    if _loaded_builtins:
        return
    _loaded_builtins = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            # A built-in family not (yet) present in this tree; others still work.
            if e.name and (mod == e.name or mod.startswith(e.name + ".")):
                continue
            raise


def _entry_point_models() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_reference(ref: str, source: str = "command line", trusted_entry_point: bool = False
                    ) -> Callable[..., Inpainter]:
    """The factory named by 'pkg.mod:factory', imported only as matbench.trust allows (docs/security.md)."""
    if ":" not in ref or not all(ref.partition(":")[::2]):
        raise SpecError(f"model reference {ref!r} must look like 'package.module:factory'")
    what = f"model {ref!r}"
    if trusted_entry_point:  # the value of an installed entry point: installing the package trusted it
        with trusting([ref.partition(":")[0]]):
            obj: Any = resolve_reference(ref, what, source, group=ENTRY_POINT_GROUP)
    else:
        registered = [i.factory for i in _MODELS.values()]
        obj = resolve_reference(ref, what, source, group=ENTRY_POINT_GROUP, registered=registered)
    if not callable(obj):
        raise SpecError(f"model reference {ref!r} is not callable")
    return obj


def get_model_info(name: str, source: str = "command line") -> ModelInfo:
    """Look a model up by registered name, entry-point name, or 'pkg.mod:factory' (imported only when trusted:
    matbench.trust; `source` names where the reference came from, for the refusal message)."""
    _load_builtins()
    if name in _MODELS:
        return _MODELS[name]
    eps = _entry_point_models()
    if name in eps:
        factory = _load_reference(eps[name], f"entry point {name!r}", trusted_entry_point=True)
        info = _MODELS.get(name) or ModelInfo(name=name, factory=factory, source="entry-point",
                                              requires=getattr(factory, "requires", Requirements()),
                                              description=(inspect.getdoc(factory) or "").split("\n")[0],
                                              options=declared(factory))
        info.source = "entry-point"
        _MODELS[name] = info
        return info
    if ":" in name:
        factory = _load_reference(name, source)
        return ModelInfo(name=name, factory=factory, source="reference",
                         requires=getattr(factory, "requires", Requirements()),
                         description=(inspect.getdoc(factory) or "").split("\n")[0], options=declared(factory))
    known = sorted(set(_MODELS) | set(eps))
    raise SpecError(f"unknown model {name!r}; known models: {', '.join(known)} "
                    "(or give 'package.module:factory')")


def create_model(name: str, **options: Any) -> Inpainter:
    """Build a model by name with its options (e.g. weights=PATH, smoke=True, device='cuda')."""
    info = get_model_info(name)
    check_options(name, info.options, options, info.factory)  # typos and wrong types, before a slow build
    try:
        model = info.factory(**options)
    except TypeError as e:
        raise SpecError(f"model {name!r}: bad options {sorted(options)} ({e})") from None
    if not isinstance(model, Inpainter):
        raise MatbenchError(f"model {name!r}: factory returned {type(model).__name__}, not an Inpainter")
    return model


def list_models() -> list[ModelInfo]:
    """Every registered model, built-ins and entry points (entry points that fail to load are skipped)."""
    _load_builtins()
    for name in _entry_point_models():
        if name not in _MODELS:
            try:
                get_model_info(name)
            except MatbenchError:
                continue
    return [_MODELS[k] for k in sorted(_MODELS)]
