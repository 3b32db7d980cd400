"""torchrun with 2 gloo processes vs 1 process: bit-identical metrics, per-image tables and outputs;
batches sharded by index (batch k on rank k % 2).

The runs compared are independent processes with their own output and cache folders, so the reference run goes
alongside the other (one OpenMP thread each: two cores busy instead of one while the test waits).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from runner_helpers import make_images, subprocess_env
from spec_helpers import write_spec

HERE = Path(__file__).resolve().parents[1]  # tests/ (runner_helpers.py)

SPEC = {"batch_size": 2, "masksets": [{"kind": "mat-large"}, {"kind": "mat-small"}],
        "models": [{"name": "opencv-telea", "label": "telea"},
                   {"name": "runner_helpers:killer", "label": "logged", "options": {"inner": "mean-fill"}}]}


def launch(args: list[str], calls: Path) -> None:
    env = subprocess_env(MATBENCH_TEST_CALLS=str(calls))
    p = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 7)  # 4 batches: 0,2 on rank 0; 1,3 on rank 1
    write_spec(tmp_path, "one", **SPEC)
    write_spec(tmp_path, "two", **SPEC)
    script = str(HERE / "runner_helpers.py")
    with ThreadPoolExecutor(1) as pool:
        one = pool.submit(launch, [script, str(tmp_path / "one.toml")], tmp_path / "calls1.txt")
        launch(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script,
                str(tmp_path / "two.toml")], tmp_path / "calls2.txt")
        one.result()

    lines = (tmp_path / "calls2.txt").read_text().splitlines()
    rank0 = {ln.split(" ", 2)[2] for ln in lines if ln.startswith("0 ")}
    rank1 = {ln.split(" ", 2)[2] for ln in lines if ln.startswith("1 ")}
    assert rank0 == {"img00 img01", "img04 img05"} and rank1 == {"img02 img03", "img06"}

    one, two = tmp_path / "one", tmp_path / "two"
    jobs = sorted(p.name for p in (one / "jobs").iterdir())
    assert len(jobs) == 4 and jobs == sorted(p.name for p in (two / "jobs").iterdir())
    for job in jobs:
        a = json.loads((one / "jobs" / job / "metrics.json").read_text())
        b = json.loads((two / "jobs" / job / "metrics.json").read_text())
        assert a["metrics"] == b["metrics"] and a["protocol"] == b["protocol"]
        assert b["provenance"]["world_size"] == 2 and a["provenance"]["world_size"] == 1
        csv = "per_image.csv"
        assert (one / "jobs" / job / csv).read_bytes() == (two / "jobs" / job / csv).read_bytes()
        for png in (one / "outputs" / job).iterdir():
            assert png.read_bytes() == (two / "outputs" / job / png.name).read_bytes()
    info = json.loads((two / "run.json").read_text())
    assert info["status"] == "complete" and info["world_size"] == 2
    assert (two / "run.log").is_file() and (two / "run.rank1.log").is_file()


# 80x96 images at 128 and 256 (the generalization table): allow_upscale
DONE_SPEC = {"batch_size": 2, "generalization": True, "metrics": ["fid", "pids", "uids", "lpips", "l1"],
             "n_bootstrap": 20, "masksets": [{"kind": "mat-large"}, {"kind": "mat-small"}],
             "datasets": [{"name": "tiny", "path": "imgs", "allow_upscale": True}]}

VARIANTS = {
    # fast: a second baseline (opencv-telea) behind the killing wrapper
    "telea": dict(n=5, resolutions=[64, 128], model={"options": {"inner": "opencv-telea"}}),
    # MAT on smoke weights (256-px generator), ~4.6 s per image forward on one CPU thread
    "mat": dict(n=3, resolutions=[128, 256], model={"smoke": True, "options": {"inner": "mat", "resolution": 256}}),
}


def matbench(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env(**(env_extra or {}))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("variant", [pytest.param("telea"), pytest.param("mat", marks=pytest.mark.slow)])
def test_issue_done_when_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    """The issue's test: two models (a baseline and MAT on smoke weights, or a second baseline for the fast
    variant), two mask sets, two resolutions (generalization table) with the real Evaluator (smoke metric
    networks), via `matbench run`: killed midway + resumed, and under torchrun with 2 gloo processes, both give
    the numbers of one uninterrupted process."""
    v = VARIANTS[variant]
    n, (r0, _) = v["n"], v["resolutions"]
    make_images(tmp_path / "imgs", n, size=(80, 96))
    for name in ("ref", "kill", "two"):
        write_spec(tmp_path, name, **DONE_SPEC, resolutions=v["resolutions"], cache_dir=f"cache-{name}",
                   models=[{"name": "mean-fill"}, {"name": "runner_helpers:killer", "label": variant, **v["model"]}])
    monkeypatch.chdir(tmp_path)
    with ThreadPoolExecutor(1) as pool:  # the reference run alongside the killed and resumed one
        ref = pool.submit(matbench, ["-m", "matbench", "run", "ref.toml", "--no-progress"])
        # Jobs at r0: large/mean-fill, large/<variant> (killed on its 2nd batch) ...
        # (--serial: exactly the batches before the killed one are on disk; ref and two run pipelined)
        p = matbench(["-m", "matbench", "run", "kill.toml", "--no-progress", "--serial"],
                     {"MATBENCH_TEST_KILL_AT": "2"})
        assert p.returncode == -9, p.stderr[-3000:]
        done = sorted(f.name for f in (tmp_path / f"kill/jobs/tiny__mat-large__{variant}__{r0}/batches").glob("*.npz"))
        assert done == ["0.npz"]
        p = matbench(["-m", "matbench", "run", "kill.toml", "--no-progress"], {"MATBENCH_TEST_CALLS": "calls.txt"})
        assert p.returncode == 0, p.stderr[-3000:]
        p = ref.result()
    assert p.returncode == 0, p.stderr[-3000:]
    assert "SMOKE MODE" in p.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    ids = [f"img{i:02d}" for i in range(n)]
    batches = [" ".join(ids[i:i + 2]) for i in range(0, n, 2)]
    # the killed job resumed at batch 1, then the three jobs of this model not started before the kill
    assert calls == [f"0 0 {b}" for b in batches[1:]] + [f"0 0 {b}" for b in batches] * 3
    p = matbench(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "matbench", "run",
                  "two.toml", "--no-progress"])
    assert p.returncode == 0, p.stderr[-3000:]

    ref_jobs = sorted(d.name for d in (tmp_path / "ref/jobs").iterdir())
    assert len(ref_jobs) == 8
    for other in ("kill", "two"):
        for job in ref_jobs:
            a = json.loads((tmp_path / "ref/jobs" / job / "metrics.json").read_text())
            b = json.loads((tmp_path / other / "jobs" / job / "metrics.json").read_text())
            assert set(a["metrics"]) == {"fid", "pids", "uids", "lpips", "l1"}
            assert a["metrics"] == b["metrics"], (other, job)
            assert a["bins"] == b["bins"] and a["protocol"] == b["protocol"]
            if variant == "mat" and other == "kill":  # the recomputed batch: the same bytes
                _same_outputs(tmp_path / "ref/outputs" / job, tmp_path / "kill/outputs" / job)
        ga = json.loads((tmp_path / "ref/generalization.json").read_text())
        gb = json.loads((tmp_path / other / "generalization.json").read_text())
        assert ga == gb
        assert len(ga["rows"]) == 2 * 2 * 5
    if variant == "mat":
        rec = json.loads((tmp_path / f"ref/jobs/tiny__mat-small__mat__{r0}/metrics.json").read_text())
        assert rec["smoke"] is True and rec["provenance"]["weights"]["model"]["smoke"] is True


def _same_outputs(ref: Path, other: Path) -> None:
    """Same files with the same bytes. (A batch recomputed first in a fresh process once differed by one level
    at one value: numba's start reset torch's thread count mid-run; see matbench.threads.)"""
    names = sorted(p.name for p in ref.iterdir())
    assert names == sorted(p.name for p in other.iterdir())
    for n in names:
        assert (ref / n).read_bytes() == (other / n).read_bytes(), n
