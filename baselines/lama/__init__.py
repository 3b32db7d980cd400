"""LaMa (Big LaMa): our FFC ResNet generator with the official tensor names, a safe loader for the
released Lightning checkpoint, and the Inpainter adapter registered as model "lama"."""
