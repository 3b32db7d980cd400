"""Equalised-learning-rate dense layer and the StyleGAN2 modulated convolution, shared by MAT and CoModGAN."""

from __future__ import annotations

import math

import torch
from torch import nn

from matbench.models.layers.bias_act import bias_act
from matbench.models.layers.filters import PLAIN_CONV, ConvOptions, conv2d_resample


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate (runtime weight scaling), lr multiplier and optional activation.

    Parameters `weight` [out, in] (stored divided by lr_multiplier) and `bias` [out], as in the official files.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        x = x.matmul(w.t())
        if self.activation == "linear" and b is not None:
            return x + b.reshape([-1 if i == x.ndim - 1 else 1 for i in range(x.ndim)])
        return bias_act(x, b, dim=x.ndim - 1, act=self.activation)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     resample_filter: torch.Tensor | None = None, opts: ConvOptions = PLAIN_CONV) -> torch.Tensor:
    """StyleGAN2 modulated convolution as one grouped convolution over the batch.

    x [N, I, H, W]; weight [O, I, k, k] or [1, O, I, k, k], already scaled by its equalised-lr gain; styles [N, I].
    Per sample: w' = weight * style (over I), demodulated to unit L2 norm per output channel (eps 1e-8).
    Padding, resampling, `flip_weight` and `filter_gain` (`opts`) as in conv2d_resample.
    """
    n, c, h, w_ = x.shape
    out_ch, k = weight.shape[-4], weight.shape[-1]
    wt = weight.reshape(1, out_ch, c, k, weight.shape[-2]) * styles.reshape(n, 1, c, 1, 1)
    if demodulate:
        d = (wt.pow(2).sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        wt = wt * d.reshape(n, out_ch, 1, 1, 1)
    wt = wt.reshape(n * out_ch, c, wt.shape[-2], k)
    x = conv2d_resample(x.reshape(1, n * c, h, w_), wt, f=resample_filter, opts=opts, groups=n)
    return x.reshape(n, out_ch, *x.shape[2:])
