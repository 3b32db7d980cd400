"""Writing an evaluation's outputs: metrics.json and per_image.csv."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from matbench.io import atomic_path, csv_safe_text
from matbench.results import PER_IMAGE_FILE, ResultRecord, write_record


def write_outputs(out_dir: str | os.PathLike, record: ResultRecord, df: pd.DataFrame) -> None:
    """metrics.json and per_image.csv, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / PER_IMAGE_FILE) as tmp:
        csv_safe_text(df).to_csv(tmp, index=False, float_format="%.10g")  # no formulas in spreadsheets
    write_record(out_dir, record)
