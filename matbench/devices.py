"""The one device resolution of every command that takes `--device` (eval, run, inpaint, stats).

A device the machine does not have is refused here, in one line, before any network is built: otherwise
`--device cuda` on a CPU machine either ends in a torch traceback deep inside a model, or (a PSNR-only eval
that never touches a tensor on the device) succeeds and records a device that did no work.
"""

from __future__ import annotations

import re

import torch

from matbench.errors import Hint, InputError

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def resolve_device(requested: str | None, local_rank: int = 0, where: str = "--device") -> str:
    """The torch device string the work will run on.

    None or 'auto': cuda:LOCAL_RANK when a CUDA GPU is visible, else cpu; 'cuda': cuda:LOCAL_RANK;
    'cuda:N', 'cpu', 'mps' as given. InputError (one line naming `where`) for a device that is not there.
    """
    device = (requested or "auto").strip().lower()
    if not _DEVICE.fullmatch(device):
        raise InputError(f"{where} {requested}: unknown device; use auto, cpu, cuda, cuda:N or mps")
    if device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"{where} {requested}: no CUDA GPU is visible to torch on this machine "
                             "(torch.cuda.is_available() is False)",
                             hints=[Hint("--device", "use --device cpu or auto")])
        index, count = int(device.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            raise InputError(f"{where} {requested}: there is no GPU {index} (this machine has {count}: "
                             f"cuda:0 to cuda:{count - 1})")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{where} {requested}: the Apple MPS backend is not available on this machine")
    return device


DEVICE_HELP = ("auto, cpu, cuda, cuda:N or mps (auto: cuda when a GPU is visible, else cpu); a device this machine "
               "does not have is refused in one line")
