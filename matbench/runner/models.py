"""Models and evaluators: building them, their precision / memory-format / compile modes, provenance."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from matbench.errors import WeightsError
from matbench.evaluate import Evaluator
from matbench.io import sha256_file
from matbench.models.base import create_model, get_model_info
from matbench.spec import ModelSpec, Spec

log = logging.getLogger("matbench.runner")

EvaluatorFactory = Callable[[Spec, str, bool], Any]


def model_modes(m: ModelSpec) -> dict[str, Any]:
    """The speed options of a model spec (recorded in provenance; non-default ones in the fingerprint)."""
    return {"precision": getattr(m, "precision", "fp32"), "channels_last": bool(getattr(m, "channels_last", False)),
            "compile": bool(getattr(m, "compile", False))}


def _networks(model: Any) -> list[tuple[str, torch.nn.Module]]:
    """The torch modules an Inpainter holds as attributes (MAT's G, CoModGAN's generator, ...)."""
    return [(k, v) for k, v in vars(model).items() if isinstance(v, torch.nn.Module)]


def apply_modes(model: Any, modes: dict[str, Any]) -> Any:
    """channels_last and torch.compile on the model's networks (attributes stay usable: the compiled module
    forwards attribute access to the original)."""
    for name, net in _networks(model):
        if modes["channels_last"]:
            net.to(memory_format=torch.channels_last)
        if modes["compile"]:
            setattr(model, name, torch.compile(net))
    return model


@contextlib.contextmanager
def precision_context(precision: str, device: str) -> Iterator[None]:
    """fp32: float32 with TF32 off (cuDNN allows TF32 convolutions by default); tf32: TF32 matmuls/convolutions
    on CUDA (no effect on CPU); bf16: autocast to bfloat16. Known pixels stay exact in every mode:
    Inpainter.__call__ pastes the input's known pixels back."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        if precision == "bf16":
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def build_model(m: ModelSpec, device: str) -> Any:

    info = get_model_info(m.name)
    opts: dict[str, Any] = dict(m.options)
    if m.weights is not None:
        opts["weights"] = str(m.weights)
    if m.smoke:
        opts["smoke"] = True
    params = inspect.signature(info.factory).parameters
    takes_device = "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_device:
        opts["device"] = device
    modes = model_modes(m)
    # A model with its own precision option (MAT) applies it itself, where its code knows best (e.g. which parts
    # stay fp32); the runner's autocast is then not added on top.
    own_precision = "precision" in params and "precision" not in opts and modes["precision"] != "fp32"
    if own_precision:
        opts["precision"] = modes["precision"]
    try:
        model = create_model(m.name, **opts)
    except WeightsError as e:
        raise WeightsError(f"{m.key} ({m.label}): {e}") from None
    if not takes_device:
        model = model.to(device)
    model.runner_precision = "fp32" if own_precision else modes["precision"]  # what device_stage wraps it in
    return apply_modes(model, modes)


def model_provenance(m: ModelSpec, model: Any, hashes: dict[str, str]) -> dict[str, Any]:
    """What ran: name, options, modes, weights path and sha256, smoke (model None: described without running)."""
    prov = {"name": m.name, "label": m.label, "options": m.options, "samples": m.samples,
            "smoke": bool(getattr(model, "smoke", False) or m.smoke), "modes": model_modes(m)}
    if model is not None:
        with contextlib.suppress(Exception):
            prov.update(model.provenance())
    if m.weights is not None:
        key = str(m.weights)
        if key not in hashes:
            hashes[key] = sha256_file(m.weights)
        prov["weights_path"] = key
        prov["weights_sha256"] = hashes[key]
    return prov


def default_evaluator(spec: Spec, device: str, smoke: bool) -> Any:

    return Evaluator(spec.metrics, spec.eval_config(device, smoke))


def _probe_batch() -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8, generator=g)
    hole = torch.zeros(2, 1, 128, 128, dtype=torch.bool)
    hole[:, :, 32:96, 32:96] = True
    return ["probe0", "probe1"], real, real.clone(), hole


def make_evaluator(spec: Spec, device: str, factory: EvaluatorFactory) -> tuple[Any, bool]:
    """(evaluator, smoke). smoke = "auto": real metric networks if their weights load, smoke otherwise."""
    if spec.smoke != "auto":
        return factory(spec, device, bool(spec.smoke)), bool(spec.smoke)
    try:
        ev = factory(spec, device, False)
        ev.process_batch(*_probe_batch())  # loads every network it needs
        return ev, False
    except WeightsError as e:
        log.warning("metric network weights unavailable (%s)", e)
        return factory(spec, device, True), True
