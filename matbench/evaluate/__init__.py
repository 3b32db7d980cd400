"""Evaluation orchestration: per-batch work (features, per-image metrics, pair checks) and the final
dataset metrics with bootstrap confidence intervals and hole-ratio bins.

The runner calls `Evaluator.process_batch` on images in memory (possibly on several ranks) and
`Evaluator.finalize` once on all batches; `evaluate_folders` (`matbench eval`) does the same on a
results folder and a ground-truth folder. `finalize` only concatenates batches in the order given,
so the numbers do not depend on how images were grouped into batches.

Layout: config.py (EvalConfig: the options, declared once), core.py (Evaluator), batch.py (BatchResult),
pairs.py (pair checks), folders.py (`matbench eval` on folders), outputs.py (metrics.json, per_image.csv).
What each metric computes lives beside its math in matbench/metrics/ (one registry, registry.py).
"""

from matbench.evaluate.batch import BatchResult
from matbench.evaluate.config import EvalConfig
from matbench.evaluate.core import ALL_METRICS, PER_IMAGE_METRICS, ROW_COLUMNS, Evaluator, parse_metrics
from matbench.evaluate.folders import MASK_POLARITIES, FolderRun, evaluate_folders, pair_folders
from matbench.evaluate.outputs import write_outputs
from matbench.evaluate.pairs import PAIR_TOL, check_pair, known_region_diff

__all__ = [
    "ALL_METRICS", "MASK_POLARITIES", "PAIR_TOL", "PER_IMAGE_METRICS", "ROW_COLUMNS", "BatchResult", "EvalConfig",
    "Evaluator", "FolderRun", "check_pair", "evaluate_folders", "known_region_diff", "pair_folders",
    "parse_metrics", "write_outputs",
]
