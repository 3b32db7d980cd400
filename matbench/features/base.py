"""What every feature extractor shares: the FeatureExtractor callable, the ExtractorSpec each network declares
beside its builder, the smoke seed and build lock (defined once here), and the small build helpers.

Extractors take uint8 RGB images [N, 3, H, W] at any size and return float64 features [N, D]. ``smoke=True``
builds the same architecture with seeded random weights (no download); such extractors say so (``smoke`` is
True and the weights hash starts with the smoke label).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import pickle
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from matbench import weights as W
from matbench.errors import InputError, WeightsError
from matbench.models.statecheck import torch_load_error

SMOKE_SEED = 20240601
# torch's global RNG and the monkeypatched package loaders are process-wide: one smoke build at a time
BUILD_LOCK = threading.RLock()

# network(x) -> features [N, dim]; x is float32 [N,3,S,S] on 0..255 (already resized), or the uint8 batch
# itself for specs with uint8_input
Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FeatureOutput:
    """A further output of an extractor's one forward pass (beside its features): the activation of one inner
    module, read by a forward hook, its first `channels` channels flattened in NHWC order as TensorFlow lays
    them out (index (h * W + w) * channels + c), e.g. sFID's spatial features."""

    name: str
    dim: int
    module: str  # qualified name (torch named_modules) of the module whose output it is, in the built network
    channels: int
    doc: str = ""


def nhwc_flat(x: torch.Tensor, channels: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, H * W * channels]: the first `channels` channels in TF's NHWC order."""
    return x[:, :channels].permute(0, 2, 3, 1).reshape(x.shape[0], -1)


@dataclass(frozen=True)
class ExtractorSpec:
    """The identity of one feature extractor, declared as data beside its builder."""

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
    # the network takes the uint8 batch as it comes and resizes inside (the MAT-protocol Inceptions, VGG16):
    # no other resize convention, and nothing beyond name/weights is recorded in describe()
    uint8_input: bool = False
    outputs: tuple[FeatureOutput, ...] = ()  # further outputs of the same forward pass (FeatureExtractor.extract)


@dataclass
class RuntimeInfo:
    """Which runtime runs the network (matbench.features.runtime) and why it was chosen. Mutable: `auto` falls
    back to torch at the first batch when the network cannot be exported, and provenance says what really ran."""

    name: str = "torch"
    why: str = "default"
    eager: bool = False  # set while a pass needs forward hooks (further outputs): then torch runs it


@dataclass(frozen=True)
class ExtractorInfo:
    """What an extractor records beyond its name, dim and weights hash: where its weights came from, how its input is
    prepared (empty for the uint8-input extractors, which resize inside), whether its features are unit vectors."""

    path: Path | None = None
    resize_convention: str = ""
    native_resize: str = ""
    input_convention: str = ""
    source: str = ""
    l2_normalised: bool = False
    runtime: RuntimeInfo = field(default_factory=RuntimeInfo)


NO_INFO = ExtractorInfo()


class FeatureExtractor:
    """A callable uint8 [N,3,H,W] -> float64 [N, dim] numpy array, with its identity."""

    def __init__(self, name: str, forward: Callable[[torch.Tensor], torch.Tensor], dim: int,
                 weights_sha256: str, smoke: bool, device: str = "cpu", batch_size: int = 32,
                 info: ExtractorInfo = NO_INFO) -> None:
        self.name = name
        self.dim = dim
        self.weights_sha256 = weights_sha256
        self.smoke = smoke
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._forward = forward
        self.calls = 0  # number of network forward passes (tests count cache hits with it)
        self.info = info
        # flat attributes, as the metrics and the caches read them
        self.path = info.path
        self.resize_convention = info.resize_convention
        self.native_resize = info.native_resize
        self.input_convention = info.input_convention
        self.source = info.source
        self.l2_normalised = info.l2_normalised
        # further outputs (ExtractorSpec.outputs) and the module their hooks go on (set by get_extractor)
        self.outputs: dict[str, FeatureOutput] = {}
        self.module: torch.nn.Module | None = None

    def output_dim(self, output: str = "") -> int:
        """Dimension of an output: "" the features, else a declared further output."""
        return self.outputs[output].dim if output else self.dim

    def output_key(self, output: str = "") -> str:
        """Cache key of an output: the extractor's key, with the output's name for a further output."""
        return f"{self.key}#{output}" if output else self.key

    @property
    def runtime(self) -> str:
        return self.info.runtime.name

    @property
    def key(self) -> str:
        """Cache key of this extractor: name (and a non-native resize) and weights hash."""
        # features under a non-native resize are different features: keep them apart in the cache
        base = self.name if self.resize_convention == self.native_resize else f"{self.name}+{self.resize_convention}"
        return f"{base}@{self.weights_sha256}"

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.extract(images)[""]

    def extract(self, images: torch.Tensor, outputs: Sequence[str] = ("",)) -> dict[str, np.ndarray]:
        """{output: float64 [N, dim]} from one forward pass per batch: "" the features, others further outputs
        (ExtractorSpec.outputs) caught by forward hooks during that same pass."""
        check_u8(images, self.name)
        mods = {o: self._hook_module(o) for o in outputs if o}
        caught: dict[str, torch.Tensor] = {}
        handles = [m.register_forward_hook(lambda _m, _i, y, o=o: caught.__setitem__(o, y)) for o, m in mods.items()]
        got: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
        if mods and self.runtime != "torch":  # an exported graph fires no hooks: this pass runs in torch
            self.info.runtime.eager = True
            if "further outputs" not in self.info.runtime.why:
                self.info.runtime.why += "; passes that read further outputs (sFID) run in torch"
        try:
            with torch.inference_mode():
                for i in range(0, images.shape[0], self.batch_size):
                    x = images[i:i + self.batch_size].to(self.device, non_blocking=True)
                    self.calls += 1
                    caught.clear()
                    f = self._forward(x)
                    for o in outputs:
                        y = nhwc_flat(caught[o], self.outputs[o].channels) if o else f
                        got[o].append(y.float().cpu().numpy().astype(np.float64))
        finally:
            self.info.runtime.eager = False
            for h in handles:
                h.remove()
        out = {}
        for o in outputs:
            dim = self.output_dim(o)
            feats = np.concatenate(got[o], axis=0) if got[o] else np.zeros((0, dim), dtype=np.float64)
            if feats.shape[1] != dim:
                raise WeightsError(f"{self.name}: network returned {feats.shape[1]}-d {o or 'features'}, "
                                   f"expected {dim}")
            out[o] = feats
        return out

    def _hook_module(self, output: str) -> torch.nn.Module:
        spec = self.outputs.get(output)
        if spec is None:
            raise InputError(f"{self.name} has no output {output!r}; it has: {', '.join(self.outputs) or 'none'}")
        mod = dict(self.module.named_modules()).get(spec.module) if isinstance(self.module, torch.nn.Module) else None
        if mod is None or isinstance(mod, torch.jit.ScriptModule):  # TorchScript modules take no forward hooks
            raise InputError(f"{self.name}: no hookable module {spec.module!r} for its {output!r} output "
                             "(TorchScript takes no hooks); for Inception use inception-v3-compat (same weights)")
        return mod

    def describe(self) -> dict:
        d = {"name": self.name, "dim": self.dim, "weights_sha256": self.weights_sha256, "smoke": self.smoke,
             "path": str(self.path) if self.path else None}
        if self.resize_convention:
            d.update(resize=self.resize_convention, input=self.input_convention, source=self.source)
        if self.runtime != "torch":  # torch eager is the reference; records made before runtimes existed match
            d["runtime"] = self.runtime
        return d

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r}, dim={self.dim}, smoke={self.smoke}, device={self.device})"


def check_u8(images: torch.Tensor, who: str) -> None:
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        dtype = images.dtype if torch.is_tensor(images) else ""
        raise TypeError(f"{who}: expects uint8 [N,3,H,W] images, got {dtype} {shape}")


def smoke_weights_sha256(name: str) -> str:
    """Identity of the seeded random weights: depends on the seed and on torch's init code."""
    return "smoke-" + hashlib.sha256(f"{name}:{SMOKE_SEED}:{torch.__version__}".encode()).hexdigest()[:32]


def seeded(fn: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module under SMOKE_SEED, without touching the global RNG (and one build at a time)."""
    with BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(SMOKE_SEED)
        return fn()


@contextlib.contextmanager
def patched(obj: object, attr: str, value: object) -> Iterator[None]:
    """Replace obj.attr for the duration (package loaders that would download)."""
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


class FirstOutput(torch.nn.Module):
    """torch-fidelity's extractors return a tuple of feature layers: keep the first."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[0]


def require(module: str, who: str) -> None:
    """One-line error when an optional package of the `protocols` extra is missing."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        raise InputError(f"{who} needs the {module} package: pip install 'matbench-inpaint[protocols]'") from None


def jit_load(path: Path, map_location: str = "cpu") -> torch.jit.ScriptModule:
    """torch.jit.load without torch's deprecation notice: the files are TorchScript by their authors' choice
    (NVIDIA's Inception, OpenAI's CLIP), so the notice is not about anything the user can change. Only that
    warning is silenced, and only here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
        return torch.jit.load(str(path), map_location=map_location)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain (weights-only) state dict, or the parameters of a TorchScript archive (OpenAI's CLIP files)."""
    try:
        with warnings.catch_warnings():  # a TorchScript zip (OpenAI's CLIP): refused here, read by jit_load below
            warnings.filterwarnings("ignore", message=r"'torch\.load' received a zip file that looks like a "
                                    "TorchScript", category=UserWarning)
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e_plain:
        try:
            return dict(jit_load(path).state_dict())
        except Exception:
            if isinstance(e_plain, pickle.UnpicklingError):  # a pickle that needs code: refused, nothing ran
                raise torch_load_error(path, e_plain, "weights") from None
            raise WeightsError(f"{path}: neither a weights-only state dict nor a TorchScript archive "
                               f"({type(e_plain).__name__}: {str(e_plain).splitlines()[0][:200]})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return sd


_VERIFIED: dict[tuple[str, str, int, int], str] = {}


def verified_sha256(wname: str, path: Path) -> str:
    """sha256 of a weights file checked against its registry entry (memoised per file version)."""
    st = path.stat()
    key = (wname, str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = W.verify(W.get(wname), path)
    return _VERIFIED[key]
