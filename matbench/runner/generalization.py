"""512 -> 1024 generalization: per (dataset, mask set, model) and metric, the value at both resolutions."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from matbench.io import write_json_atomic, write_text_atomic
from matbench.layout import RunLayout
from matbench.results import ResultRecord


def generalization_table(records: dict[str, ResultRecord], base: int, target: int) -> dict[str, Any]:
    """Per (dataset, mask set, model) and metric: value at base and target resolution, absolute and relative delta."""
    by_key: dict[tuple[str, str, str], dict[int, ResultRecord]] = defaultdict(dict)
    for rec in records.values():
        j = rec.job
        by_key[(j["dataset"], j["maskset"], j["model"])][int(j["resolution"])] = rec
    rows = []
    for (d, m, mo), recs in sorted(by_key.items()):
        if base not in recs or target not in recs:
            continue
        a, b = recs[base], recs[target]
        for metric in [k for k in a.metrics if k in b.metrics]:
            va, vb = a.metrics[metric].value, b.metrics[metric].value
            rel = (vb - va) / abs(va) if va not in (0, None) and math.isfinite(va) else None
            rows.append({"dataset": d, "maskset": m, "model": mo, "metric": metric, "base_resolution": base,
                         "target_resolution": target, "base": va, "target": vb, "delta": vb - va,
                         "relative": rel, "relative_percent": None if rel is None else 100.0 * rel,
                         "smoke": bool(a.smoke or b.smoke)})
    return {"schema": "matbench.generalization/1", "base": base, "target": target, "rows": rows}


def write_generalization(run_dir: Path, table: dict[str, Any]) -> None:
    write_json_atomic(RunLayout(run_dir).generalization_json, table)
    cols = ["dataset", "maskset", "model", "metric", "base_resolution", "target_resolution", "base", "target",
            "delta", "relative", "relative_percent", "smoke"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in table["rows"]:
        w.writerow({c: r[c] for c in cols})
    write_text_atomic(RunLayout(run_dir).generalization_csv, buf.getvalue())
