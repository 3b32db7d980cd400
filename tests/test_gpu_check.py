"""The GPU check (scripts/gpu-check.sh = `bench.py gpu`) runs end to end on CPU in quick mode: golden equivalence
(MAT, LaMa at 256, fp32 limits of the golden tests), throughput rows, the end-to-end `matbench run`, JSON + Markdown."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.suite_gpu import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # minutes on 2 busy cores: two golden forwards, three models timed, 4 images through MAT
def test_gpu_check_runs_on_cpu_quick(tmp_path: Path, golden: Path) -> None:
    assert main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "gpu-check.json").read_text())
    assert r["mode"] == "quick" and r["device"] == "cpu"
    for name in ("mat", "lama"):
        g = r["golden"][name]
        assert "error" not in g, g
        assert g["pass"] is True and g["fp32_error"] <= g["limit"]
    rows = {(t["model"], t["batch"], t["precision"]): t for t in r["throughput"]}
    assert set(rows) == {("mat", 1, "fp32"), ("lama", 1, "fp32"), ("comodgan", 1, "fp32")}
    assert all("error" not in t and t["images_per_s"] > 0 for t in rows.values()), rows
    e = r["end_to_end"]
    assert "error" not in e, e
    assert e["images"] == 4 and set(e["metrics"]) >= {"fid", "pids", "uids", "lpips"}
    assert 0 < e["device_busy_fraction"] <= 1.0 and e["projected_places_val_s"] > 0
    md = (tmp_path / "gpu-check.md").read_text()
    assert "## Golden equivalence" in md and "| mat | 256 |" in md and "projected for Places365-val" in md


def test_gpu_check_script_refuses_cleanly_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", "python")}
    import sys

    env["PYTHON"] = sys.executable
    p = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), str(tmp_path / "o"), "--parts", "golden"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "CUDA is not available" in p.stderr
