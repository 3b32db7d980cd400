"""Kill a run midway (SIGKILL from inside the model on its Nth call), rerun: identical final numbers,
finished batches and jobs untouched, only the unfinished batches recomputed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from runner_helpers import make_images, run_spec_script, standin_opts
from spec_helpers import write_spec

from matbench.runner import run
from matbench.spec import load_spec

HERE = Path(__file__).resolve().parents[1]  # tests/ (runner_helpers.py)

# exact: the batches before the killed one are on disk (pipelined: tests/runner/test_pipeline.py)
SPEC = {"pipeline": False, "models": [{"name": "opencv-telea", "label": "telea"},
                                      {"name": "runner_helpers:killer", "label": "killer",
                                       "options": {"inner": "mean-fill"}}]}


def stats(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def test_kill_and_resume_gives_identical_numbers(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 10)  # 10 images / batch 3 -> batches [0-2] [3-5] [6-8] [9]
    write_spec(tmp_path, "ref", **SPEC)
    write_spec(tmp_path, "kill", **SPEC)
    run(load_spec(tmp_path / "ref.toml"), standin_opts())  # uninterrupted reference (in process)

    # Jobs run telea then killer; the killer's 3rd call SIGKILLs the process: batches 0 and 1 are on disk.
    p = run_spec_script(tmp_path / "kill.toml", {"MATBENCH_TEST_KILL_AT": "3"})
    assert p.returncode == -9, p.stderr
    rd = tmp_path / "kill"
    kb = rd / "jobs" / "tiny__mat-large__killer__32" / "batches"
    assert sorted(f.name for f in kb.glob("*.npz")) == ["0.npz", "1.npz"]
    assert json.loads((rd / "run.json").read_text())["status"] == "running"
    telea = rd / "jobs" / "tiny__mat-large__telea__32"
    assert json.loads((telea / "state.json").read_text())["status"] == "complete"
    kept = stats([*kb.glob("*.npz"), telea / "metrics.json", *(telea / "batches").glob("*.npz"),
                  rd / "outputs" / "tiny__mat-large__killer__32" / "img00.png"])

    calls = tmp_path / "calls.txt"
    p = run_spec_script(tmp_path / "kill.toml", {"MATBENCH_TEST_CALLS": str(calls)})
    assert p.returncode == 0, p.stderr
    # Only the unfinished batches were computed again: ids 6..9 in two calls.
    assert calls.read_text().splitlines() == ["0 0 img06 img07 img08", "0 0 img09"]
    assert stats(list(kept)) == kept  # finished batches, outputs and the finished job: untouched

    for job in ("tiny__mat-large__telea__32", "tiny__mat-large__killer__32"):
        ref = json.loads((tmp_path / "ref" / "jobs" / job / "metrics.json").read_text())
        got = json.loads((rd / "jobs" / job / "metrics.json").read_text())
        assert got["metrics"] == ref["metrics"]
        assert got["protocol"] == ref["protocol"]
        pd.testing.assert_frame_equal(pd.read_csv(rd / "jobs" / job / "per_image.csv"),
                                      pd.read_csv(tmp_path / "ref" / "jobs" / job / "per_image.csv"))
    prov = json.loads((kb.parent / "metrics.json").read_text())["provenance"]
    assert prov["batches"]["computed"] == [2, 3] and prov["batches"]["resumed"] == 2
    info = json.loads((rd / "run.json").read_text())
    assert info["status"] == "complete" and info["resumed"] is True
