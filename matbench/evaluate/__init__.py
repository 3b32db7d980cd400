"""Evaluation orchestration: per-batch work (features, per-image metrics, pair checks) and the final
dataset metrics with bootstrap confidence intervals and hole-ratio bins.

The runner calls `Evaluator.process_batch` on images in memory (possibly on several ranks) and
`Evaluator.finalize` once on all batches; `evaluate_folders` (`matbench eval`) does the same on a
results folder and a ground-truth folder. `finalize` only concatenates batches in the order given,
so the numbers do not depend on how images were grouped into batches.

Layout: core.py (Evaluator), registry.py (the list of metric and extractor glue), glue/ (one small
file per metric or extractor), batch.py (BatchResult), pairs.py (pair checks), stats.py (bootstrap,
FID resample statistic), folders.py (`matbench eval` on folders), outputs.py (metrics.json, per_image.csv).
"""

from matbench.evaluate.batch import BatchResult
from matbench.evaluate.core import Evaluator
from matbench.evaluate.folders import MASK_POLARITIES, evaluate_folders, pair_folders
from matbench.evaluate.outputs import write_outputs
from matbench.evaluate.pairs import PAIR_TOL, check_pair, known_region_diff
from matbench.evaluate.registry import (
    ALL_METRICS,
    INCEPTION_METRICS,
    PER_IMAGE_METRICS,
    PIXEL_METRICS,
    ROW_COLUMNS,
    parse_metrics,
)
from matbench.evaluate.stats import _fid_statistic, fid_trace_fast

__all__ = [
    "ALL_METRICS", "INCEPTION_METRICS", "MASK_POLARITIES", "PAIR_TOL", "PER_IMAGE_METRICS", "PIXEL_METRICS",
    "ROW_COLUMNS", "BatchResult", "Evaluator", "_fid_statistic", "check_pair", "evaluate_folders",
    "fid_trace_fast", "known_region_diff", "pair_folders", "parse_metrics", "write_outputs",
]
