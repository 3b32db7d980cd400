"""`python bench.py history [--records N] [--json]`: results-history appends and study analysis speed.

- appends: N records, one transaction each (as N separate `matbench eval` calls would), in one process, then
  the same from two processes at once into one file (WAL; what parallel CI jobs do)
- listing: `History.rows()` over everything written
- Bradley–Terry: fit and 1,000 bootstrap resamples for 5 models and 500 choices
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRITER = """
import sys, time
from matbench.history import History
from matbench.reports.sample import synthetic_record
h = History(sys.argv[1])
for i in range(int(sys.argv[3])):
    h.append([synthetic_record("places", "mat-large", sys.argv[2], {"fid": float(i), "pids": 0.1})], "run",
             git=(None, None))
"""


def _writers(db: Path, n: int, models: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), m, str(n)], env=env) for m in models]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("writer failed")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py history")
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from matbench.history import History
    from matbench.study import bt

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # process start-up (imports) is part of each writer's time: measure it with 0 records and subtract
        base = _writers(Path(tmp) / "startup.db", 0, ["a"])
        one = _writers(Path(tmp) / "one.db", args.records, ["a"]) - base
        two = _writers(Path(tmp) / "two.db", args.records, ["a", "b"]) - base
        out["append_one_process_records_per_s"] = args.records / one
        out["append_two_processes_records_per_s"] = 2 * args.records / two
        t = time.perf_counter()
        rows = History(Path(tmp) / "two.db").rows()
        out["list_s"] = time.perf_counter() - t
        out["list_records"] = len(rows)
        assert len(rows) == 2 * args.records
    rng = np.random.default_rng(0)
    p = np.exp(rng.normal(size=5))
    outcomes = []
    for _ in range(500):
        i, j = rng.choice(5, 2, replace=False)
        outcomes.append((i, j) if rng.random() < p[i] / (p[i] + p[j]) else (j, i))
    t = time.perf_counter()
    bt.fit(bt.win_matrix(5, outcomes))
    out["bt_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    bt.bootstrap(outcomes, 5, 1000)
    out["bt_bootstrap_1000_s"] = time.perf_counter() - t
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<40} {v:.4g}")
    return 0
