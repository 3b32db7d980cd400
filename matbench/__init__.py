"""matbench: evaluation and benchmarking for large-hole image inpainting, built around MAT.

The data path, one module per stage:
dataset (data/datasets.py) -> masks (data/masks.py) -> model (models/) -> outputs ->
features (features.py) -> metrics (metrics/) -> results (results.py) -> report (reports/).
"""

import os

# OpenMP's idle threads (torch's intra-op pool) spin by default: on a loaded 2-core runner that tripled the CPU time
# of an Inception pass (`python bench.py omp`; docs/evaluation.md, "Threads on a shared machine"). Passive
# waiting is read when the OpenMP runtime loads, i.e. when torch is first imported, so it is set here, before any
# matbench module imports torch. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
