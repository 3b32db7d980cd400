"""Diffusion inpainting through the `diffusers` library (optional extra: pip install matbench-inpaint[diffusion])."""
