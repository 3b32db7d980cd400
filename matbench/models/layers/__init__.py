"""StyleGAN2-family layers shared by the MAT, CoModGAN and MI-GAN ports: one implementation of each op.

filters: make_filter, upfirdn2d, upsample2d, downsample2d, conv2d_resample and its ConvOptions;
bias_act: bias_act, default_gain; conv: FullyConnectedLayer (equalised-lr dense), modulated_conv2d.
Model-specific modules stay in the model files.
"""

from matbench.models.layers.bias_act import ACTIVATIONS, SQRT2, bias_act, default_gain
from matbench.models.layers.conv import FullyConnectedLayer, modulated_conv2d
from matbench.models.layers.filters import (
    ConvOptions,
    conv2d_resample,
    downsample2d,
    make_filter,
    upfirdn2d,
    upsample2d,
)

__all__ = ["ACTIVATIONS", "SQRT2", "ConvOptions", "FullyConnectedLayer", "bias_act", "conv2d_resample",
           "default_gain", "downsample2d", "make_filter", "modulated_conv2d", "upfirdn2d", "upsample2d"]
