"""Helpers shared by the golden and detector tests: the fill procedure of ../shared/golden, and a stand-in with
the call signature of NVIDIA's Inception detector."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch


def fill_module(golden: Path) -> ModuleType:
    """../shared/golden/fill.py, the deterministic weight fill the fixtures were made with."""
    spec = importlib.util.spec_from_file_location("golden_fill", golden / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class NvidiaStandIn(torch.nn.Module):
    """Same call signature as NVIDIA's inception-2015-12-05.pt: uint8 NCHW in, 2048-d features (or 1008 logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 2048)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        f = self.proj(x.to(torch.float32).mean(dim=(2, 3)) / 255.0)
        if return_features:
            return f
        return f[:, :1008]
