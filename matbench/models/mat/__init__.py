"""MAT (Mask-Aware Transformer, CVPR 2022): our port of the official generator, a safe checkpoint loader and the
matbench Inpainter adapter (registered as "mat" in matbench.models.mat.inpainter)."""

from matbench.models.mat.checkpoint import convert_to_safetensors, load_generator, load_state
from matbench.models.mat.network import Generator, Noise, build_generator

__all__ = ["Generator", "Noise", "build_generator", "convert_to_safetensors", "load_generator", "load_state"]
