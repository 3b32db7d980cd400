"""Bias + activation + gain + clamp, the StyleGAN2 `bias_act` op in plain PyTorch."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)

# name -> (function, default gain). lrelu uses slope 0.2 and gain sqrt(2) (StyleGAN2 convention).
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "linear": (lambda x: x, 1.0),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), SQRT2),
    "relu": (lambda x: F.relu(x), SQRT2),
}


def default_gain(act: str) -> float:
    """The gain an activation is scaled by unless told otherwise (sqrt(2) for the ReLUs)."""
    return ACTIVATIONS[act][1]


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """Add bias `b` along `dim`, apply `act`, scale by `gain` (default: the activation's), clamp to +-`clamp`.

    MAT, CoModGAN (`leaky_relu(x + b, 0.2) * sqrt(2)`) and MI-GAN (the same, clamped to 256) all reduce to this.
    """
    fn, def_gain = ACTIVATIONS[act]
    g = float(def_gain if gain is None else gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = fn(x)
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
