"""One strict check of a loaded state dict against a network's own, shared by every model port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matbench.errors import WeightsError

_SHOW = 8


def _listing(items: Sequence[str]) -> str:
    more = f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def state_dict_problems(state: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """Missing, unexpected and shape-mismatched names, each group as one readable phrase."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in reference.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            parts.append(f"{len(items)} {label}: {_listing(items)}")
    return parts


def check_state_dict(state: Mapping[str, Any], reference: Mapping[str, Any], what: str, source: str) -> None:
    """Raise WeightsError naming the file (`source`), the network (`what`) and every problem group."""
    parts = state_dict_problems(state, reference)
    if parts:
        raise WeightsError(f"{source}: tensors do not match {what}: " + "; ".join(parts))


def torch_load_error(path: Any, e: BaseException, what: str) -> WeightsError:
    """A one-line error for a failed `torch.load(..., weights_only=True)`, without torch's advice.

    torch's refusal message recommends retrying with the unsafe loader, which would run the code the file carries;
    we say instead what was refused and why. Refusals come back as `RefusedPickleError` (a WeightsError).
    """
    import pickle
    import re

    text = str(e)
    weights_only_refusal = isinstance(e, pickle.UnpicklingError) and "weights only load failed" in text.lower()
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if weights_only_refusal and (m or re.search(r"reduce|unsupported class", text, re.IGNORECASE)):
        ref = f"the global {m.group(1)}" if m else "a callable (not a tensor or plain data)"
        return RefusedPickleError(
            f"{path}: refused: this {what} file is a pickle that references {ref}, which can run code when loaded; "
            "matbench loads only tensors and plain data from pickles (nothing from the file was executed). "
            "Use a .safetensors file or a plain state dict from a source you trust")
    if weights_only_refusal:  # not a pickle torch can read (an HTML page saved as .pth, a truncated file)
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|Check the documentation|$)", text, re.DOTALL)
        why = detail.group(1).strip() if detail else "unreadable pickle"
        return WeightsError(f"{path}: cannot load as a {what}: not a torch weights file ({why})")
    # Other failures: keep torch's first sentence, never a sentence about weights_only.
    first = next((s for s in re.split(r"(?<=\.)\s+|\n", text.strip()) if s and "weights_only" not in s), "")
    return WeightsError(f"{path}: cannot load as a {what} ({type(e).__name__}{': ' + first if first else ''})")


class RefusedPickleError(WeightsError):
    """A weights file whose pickle needs code (a global that is not a tensor type) was refused unexecuted."""


def read_plain_state_dict(path: Any, what: str, hint: str = "") -> dict[str, Any]:
    """A plain state dict (name -> tensor) from a `.pth`/`.pt` (torch.load with weights_only: no code from the file
    runs) or `.safetensors` file; keys saved from DataParallel lose their `module.` prefix. `what` names the
    network in errors ("CoModGAN state_dict"); `hint` says which file was expected."""
    from pathlib import Path

    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # refused pickles, truncated files, an HTML page saved as .pth, a TorchScript archive
        err = torch_load_error(path, e, what)  # without torch's advice to load unsafely
        raise type(err)(f"{err}{'; ' + hint if hint else ''}") from None
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path}: expected a plain state_dict (name -> tensor) of the {what}, "
                           f"got {type(sd).__name__}" + (f"; {hint}" if hint else ""))
    sd = {str(k): v for k, v in sd.items()}
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd
