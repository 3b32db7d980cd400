"""matbench: evaluation and benchmarking for large-hole image inpainting, built around MAT.

The data path, one module per stage:
dataset (data/datasets.py) -> masks (data/masks.py) -> model (models/) -> outputs ->
features (features.py) -> metrics (metrics/) -> results (results.py) -> report (reports/).
"""

__version__ = "0.1.0"
