"""CoModGAN baseline: generator with the PyTorch port's tensor names (network.py) and the Inpainter adapter
with weights registry entries (inpainter.py)."""
