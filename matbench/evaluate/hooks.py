"""The shapes of metric and extractor glue, and what the Evaluator hands them.

A metric glue file (matbench/evaluate/glue/<name>.py) defines one `MetricGlue`: a per-batch step that
fills per-image rows, and/or a dataset step that turns rows and features into MetricValues. An
extractor glue file defines one `ExtractorGlue`. Both are listed once in matbench/evaluate/registry.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

    from matbench.evaluate.core import Evaluator
    from matbench.results import MetricValue


@dataclass
class BatchContext:
    """One batch inside `Evaluator.process_batch`: uint8 N×3×H×W images, the bool hole and its rows."""

    ids: list[str]
    real: torch.Tensor
    fake: torch.Tensor
    hole: torch.Tensor | None
    rows: list[dict]


@dataclass
class DatasetContext:
    """The subset `idx` of all images inside `Evaluator.finalize` (all of them, or one hole-ratio bin)."""

    df: pd.DataFrame
    feats: dict[str, np.ndarray]
    idx: np.ndarray
    n_bootstrap: int
    seed: int
    in_bin: bool = False
    # whole-set pass: glue may store state here under its name; bins read the whole set's state
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.idx.size)


@dataclass(frozen=True)
class MetricGlue:
    name: str
    metrics: tuple[str, ...]  # metric names this glue provides
    extractor: str | None = None  # features it needs (an ExtractorGlue name)
    per_image: bool = False  # its metrics are per-image row columns, averaged with a bootstrap CI
    batch: Callable[[Evaluator, BatchContext], None] | None = None
    dataset: Callable[[Evaluator, DatasetContext], dict[str, MetricValue]] | None = None


@dataclass(frozen=True)
class ExtractorGlue:
    """Features `<name>_real` (through the feature cache) and `<name>_fake`; timing `<name>_features`."""

    name: str
    build: Callable[[Evaluator], Any]
