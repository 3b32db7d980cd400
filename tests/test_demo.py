"""`matbench demo`: runs offline, says SMOKE loudly when metric weights are missing, writes the run and
the report, and its written spec reproduces (resumes) the run. Small (3 photos at 64 px) to stay fast;
the full demo's time is measured in docs/runner.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matbench.cli import main
from matbench.demo import BASELINES, DEFAULT_SPEC, demo_spec
from matbench.runner import dry_run, plan_jobs
from matbench.spec import load_spec


def test_default_spec_is_the_documented_demo(tmp_path: Path) -> None:
    spec = demo_spec(tmp_path, extra_models=[])
    assert [m.name for m in spec.masksets] == ["mat-large", "mat-small"]
    assert [m.name for m in spec.models] == list(BASELINES)
    assert spec.resolutions == [512] and spec.smoke == "auto" and spec.datasets[0].limit == 8
    assert len(plan_jobs(spec)) == 2 * 3
    assert DEFAULT_SPEC["datasets"][0]["policy"] == "resize-crop"


def test_demo_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo_out"
    rc = main(["demo", "-o", str(out), "--resolution", "64", "--images", "3", "--no-progress"])
    assert rc == 0
    cap = capsys.readouterr()
    assert "SMOKE MODE" in cap.out and "SMOKE MODE" in cap.err  # weights are never present in tests
    assert "photos__mat-small__opencv-telea__64" in cap.out
    info = json.loads((out / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["metric_smoke"] is True and len(info["jobs"]) == 6
    rec = json.loads((out / "run" / "jobs" / "photos__mat-large__mean-fill__64" / "metrics.json").read_text())
    assert rec["smoke"] is True and rec["protocol"]["n_images"] == 3
    assert {"fid", "pids", "uids", "lpips", "psnr", "ssim", "l1"} <= set(rec["metrics"])
    assert len(list((out / "photos").glob("*.png"))) + len(list((out / "photos").glob("*.jpg"))) == 3
    index = out / "report" / "index.html"
    assert index.is_file() and "SMOKE" in index.read_text()
    # The written spec is the one that ran: every job is found complete on disk.
    spec = load_spec(out / "demo.toml")
    text = dry_run(spec)
    assert text.count("[complete on disk]") == 6
