"""The pipelined runner: bit-identical to the serial path (outputs, batch records, per-image values, metrics),
errors in each stage as one line naming the file, corrupt batch records, Ctrl-C, save_outputs, precision modes,
worker sizing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from runner_helpers import StandinBatch, make_images, run_spec_script, standin_factory, subprocess_env
from spec_helpers import write_spec

from matbench.errors import MatbenchError
from matbench.io import read_gray, read_image
from matbench.runner import RunOptions, Workers, plan_workers, run
from matbench.spec import load_spec

HERE = Path(__file__).resolve().parents[1]  # tests/ (runner_helpers.py)

SPEC = {"seed": 3, "metrics": ["psnr", "ssim", "l1"],  # LPIPS runs in the diversity scorer
        "n_bootstrap": 20, "models": [{"name": "opencv-telea", "label": "telea"},
                                      {"name": "runner_helpers:noisy", "label": "noisy", "samples": 2}]}


def standin_spec(tmp: Path, stem: str, model: str = "mean-fill", model_keys: dict | None = None,
                 more_models: tuple[dict, ...] = (), **keys: object) -> Path:
    """One model labelled m (plus more_models) over the tiny spec of spec_helpers."""
    return write_spec(tmp, stem, **keys, models=[{"name": model, "label": "m", **(model_keys or {})}, *more_models])


def files(rd: Path, pattern: str) -> dict[str, Path]:
    return {str(p.relative_to(rd)): p for p in sorted(rd.glob(pattern))}


def test_pipelined_run_is_bit_identical_to_serial(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 10)  # batches of 3: [0-2] [3-5] [6-8] [9]
    serial = load_spec(write_spec(tmp_path, "serial", **SPEC, pipeline=False))
    piped = load_spec(write_spec(tmp_path, "piped", **SPEC, pipeline=True))
    # More threads than this machine's cores and a one-batch output queue: every overlap path is exercised.
    run(serial, RunOptions(progress=False))
    info = run(piped, RunOptions(progress=False, workers=Workers(input=3, output=3, prefetch=3, queue=1)))
    assert info["pipeline"]["mode"] == "pipelined"
    a, b = serial.output, piped.output
    pngs = files(a, "**/*.png")
    assert len([p for p in pngs if p.startswith("outputs/")]) == 10 * 3  # telea + 2 noisy samples
    assert pngs.keys() == files(b, "**/*.png").keys()
    for rel, p in pngs.items():
        assert p.read_bytes() == (b / rel).read_bytes(), rel
    for job in ("tiny__mat-large__telea__32", "tiny__mat-large__noisy__32"):
        ra, rb = (json.loads((d / "jobs" / job / "metrics.json").read_text()) for d in (a, b))
        assert ra["metrics"] == rb["metrics"] and ra["protocol"] == rb["protocol"]
        assert rb["provenance"]["pipeline"]["mode"] == "pipelined"
        assert ra["provenance"]["pipeline"]["mode"] == "serial"
        pd.testing.assert_frame_equal(pd.read_csv(a / "jobs" / job / "per_image.csv"),
                                      pd.read_csv(b / "jobs" / job / "per_image.csv"), check_exact=True)
        for k in range(4):
            za, zb = (np.load(d / "jobs" / job / "batches" / f"{k}.npz") for d in (a, b))
            assert za.files == zb.files
            for f in za.files:
                np.testing.assert_array_equal(za[f], zb[f])
        assert "diversity" not in ra["metrics"] or ra["metrics"]["diversity"] == rb["metrics"]["diversity"]


def standin(**kw: object) -> RunOptions:
    return RunOptions(evaluator_factory=standin_factory, batch_loader=StandinBatch.load, progress=False, **kw)


def test_input_stage_error_names_the_file_and_keeps_finished_batches(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 10)
    (tmp_path / "imgs" / "img07.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    spec = load_spec(standin_spec(tmp_path, "r"))
    with pytest.raises(MatbenchError) as e:
        run(spec, standin())
    msg = str(e.value)
    assert "\n" not in msg and "img07.png" in msg
    kb = spec.output / "jobs" / "tiny__mat-large__m__32" / "batches"
    assert {"0.npz", "1.npz"} <= {p.name for p in kb.glob("*.npz")}  # nothing finished is lost
    assert json.loads((spec.output / "run.json").read_text())["status"] == "failed"


def test_device_stage_error_is_one_line_naming_job_batch_and_images(tmp_path: Path, monkeypatch) -> None:
    make_images(tmp_path / "imgs", 10)
    monkeypatch.setenv("MATBENCH_TEST_AT", "2")
    monkeypatch.setenv("MATBENCH_TEST_SIGNAL", "FAIL")
    spec = load_spec(standin_spec(tmp_path, "r", "runner_helpers:signaller"))
    with pytest.raises(MatbenchError) as e:
        run(spec, standin())
    msg = str(e.value)
    assert "\n" not in msg
    assert "job tiny__mat-large__m__32, batch 1 (img03, img04, img05), device stage: RuntimeError: " \
           "simulated CUDA error" in msg
    assert (spec.output / "jobs" / "tiny__mat-large__m__32" / "batches" / "0.npz").is_file()


def test_output_stage_error_names_the_file(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 4)
    spec = load_spec(standin_spec(tmp_path, "r"))
    blocker = spec.output / "outputs" / "tiny__mat-large__m__32"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the outputs folder should be")
    with pytest.raises(MatbenchError) as e:
        run(spec, standin())
    msg = str(e.value)
    assert "\n" not in msg and "output stage" in msg and str(blocker) in msg


def truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("restart", [False, True])
def test_corrupt_batch_record_is_named_discarded_and_recomputed(tmp_path: Path, restart: bool) -> None:
    make_images(tmp_path / "imgs", 7)
    ref = load_spec(standin_spec(tmp_path, "ref", metrics=["psnr", "l1"]))
    run(ref, RunOptions(progress=False))
    spec = load_spec(standin_spec(tmp_path, "r", metrics=["psnr", "l1"]))
    run(spec, RunOptions(progress=False))
    jd = spec.output / "jobs" / "tiny__mat-large__m__32"
    bad = jd / "batches" / "1.npz"
    truncate(bad)
    with pytest.raises(zipfile.BadZipFile):
        np.load(bad)["ids"]  # the state the issue reports: a truncated zip
    (jd / "metrics.json").unlink()  # the job has to be finalized from its batches again
    info = run(spec, RunOptions(progress=False, restart=restart))
    assert info["status"] == "complete"
    log = (spec.output / "run.log").read_text()
    assert f"{bad}: corrupt batch record" in log and "batch 1 will be recomputed" in log
    rec = json.loads((jd / "metrics.json").read_text())
    assert rec["provenance"]["batches"]["computed"] == [1]
    assert rec["metrics"] == json.loads((ref.output / "jobs" / jd.name / "metrics.json").read_text())["metrics"]
    pd.testing.assert_frame_equal(pd.read_csv(jd / "per_image.csv"),
                                  pd.read_csv(ref.output / "jobs" / jd.name / "per_image.csv"))


def test_ctrl_c_marks_the_run_interrupted(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 7)
    spec = standin_spec(tmp_path, "r", "runner_helpers:signaller")
    p = run_spec_script(spec, {"MATBENCH_TEST_AT": "2", "MATBENCH_TEST_SIGNAL": "INT"})
    assert p.returncode != 0 and "KeyboardInterrupt" in p.stderr
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert not (tmp_path / "r" / ".lock").exists()  # released on the way out
    p = run_spec_script(spec, {})
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "complete"


def test_save_outputs_sample_keeps_a_fixed_seeded_sample_and_the_report_renders(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 7)
    telea = ({"name": "opencv-telea", "label": "t"},)
    spec = load_spec(standin_spec(tmp_path, "r", more_models=telea, save_outputs="sample:3"))
    run(spec, standin())
    rd = spec.output
    got = {j: sorted(p.stem for p in (rd / "outputs" / j).glob("*.png"))
           for j in ("tiny__mat-large__m__32", "tiny__mat-large__t__32")}
    assert len(got["tiny__mat-large__m__32"]) == 3 and got["tiny__mat-large__m__32"] == got["tiny__mat-large__t__32"]
    assert sorted(p.stem for p in (rd / "inputs" / "tiny" / "32").glob("*.png")) == got["tiny__mat-large__m__32"]
    assert len(pd.read_csv(rd / "jobs" / "tiny__mat-large__m__32" / "per_image.csv")) == 7  # all evaluated
    again = load_spec(standin_spec(tmp_path, "r2", more_models=telea, save_outputs="sample:3"))
    run(again, standin())
    assert sorted(p.stem for p in (again.output / "outputs" / "tiny__mat-large__m__32").glob("*.png")) == \
        got["tiny__mat-large__m__32"]  # seeded: the same sample every time
    none = load_spec(standin_spec(tmp_path, "r3", save_outputs="none"))
    run(none, standin())
    assert not (none.output / "outputs").exists()
    from matbench.reports.render import render_site

    index = render_site([rd], tmp_path / "report")
    assert Path(index).is_file()


def test_bf16_and_channels_last_keep_known_pixels_and_are_recorded(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 4)
    spec = load_spec(standin_spec(tmp_path, "r", "runner_helpers:convnet",
                                  {"precision": "bf16", "channels_last": True, "batch_size": 2}))
    run(spec, standin())
    rd = spec.output
    jd = rd / "jobs" / "tiny__mat-large__m__32"
    rec = json.loads((jd / "metrics.json").read_text())
    assert rec["provenance"]["weights"]["model"]["modes"] == {"precision": "bf16", "channels_last": True,
                                                              "compile": False}
    assert rec["provenance"]["batches"]["batch_size"] == 2 and rec["provenance"]["batches"]["n"] == 2
    state = json.loads((jd / "state.json").read_text())
    assert state["fingerprint"]["model"]["precision"] == "bf16"
    for p in (rd / "outputs" / jd.name).glob("*.png"):
        out = read_image(p)
        inp = read_image(rd / "inputs" / "tiny" / "32" / p.name)
        hole = read_gray(rd / "masks" / "mat-large" / "32" / p.name) == 255
        np.testing.assert_array_equal(out[~hole], inp[~hole])


def test_bf16_autocast_reaches_the_network() -> None:
    from runner_helpers import ConvNet

    from matbench.runner.models import apply_modes, precision_context

    m = apply_modes(ConvNet(), {"precision": "bf16", "channels_last": True, "compile": False})
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    h = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    with precision_context("bf16", "cpu"):
        m(x, h, ["a"])
    assert m.last_dtype == torch.bfloat16
    with precision_context("fp32", "cpu"):
        m(x, h, ["a"])
    assert m.last_dtype == torch.float32
    assert m.net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_workers_come_from_the_cores_and_never_oversubscribe() -> None:
    w = plan_workers(cores=2)
    assert (w.input, w.output) == (1, 1) and not w.serial
    w = plan_workers(cores=16)
    assert w.input + w.output == 15 and w.input == 7  # one core left to the device stage
    assert plan_workers(cores=16, input_workers=3, output_workers=2).describe()["input_workers"] == 3
    assert plan_workers(serial=True).describe()["mode"] == "serial"


def test_cli_serial_and_workers_flags(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 4)
    spec = standin_spec(tmp_path, "r", metrics=["l1", "psnr"])
    from matbench.cli import main

    assert main(["run", str(spec), "--serial", "--no-progress"]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["pipeline"]["mode"] == "serial"
    assert main(["run", str(spec), "-o", str(tmp_path / "r2"), "--workers", "2,3", "--no-progress"]) == 0
    p = json.loads((tmp_path / "r2" / "run.json").read_text())["pipeline"]
    assert (p["mode"], p["input_workers"], p["output_workers"]) == ("pipelined", 2, 3)


KILL_SPEC = {"batch_size": 2, "models": [{"name": "runner_helpers:killer", "label": "killer",
                                          "options": {"inner": "mean-fill"}}]}


def test_pipelined_kill_9_resumes_to_identical_numbers_and_takes_over_the_stale_lock(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 9)  # batches of 2: [0,1] [2,3] [4,5] [6,7] [8]
    ref = load_spec(write_spec(tmp_path, "ref", **KILL_SPEC))
    run(ref, standin())
    spec = write_spec(tmp_path, "kill", **KILL_SPEC)
    p = run_spec_script(spec, {"MATBENCH_TEST_KILL_AT": "4"})  # SIGKILL inside the model, on batch 3
    assert p.returncode == -9, p.stderr
    rd = tmp_path / "kill"
    kb = rd / "jobs" / "tiny__mat-large__killer__32" / "batches"
    on_disk = sorted(int(f.stem) for f in kb.glob("*.npz"))
    assert set(on_disk) <= {0, 1, 2}  # batches 0-2 were computed; those in the output stage may be lost
    assert json.loads((rd / ".lock").read_text())["pid"] != os.getpid()  # left behind by the dead process
    kept = {f: f.stat().st_mtime_ns for f in kb.glob("*.npz")}
    calls = tmp_path / "calls.txt"
    p = run_spec_script(spec, {"MATBENCH_TEST_CALLS": str(calls)})
    assert p.returncode == 0, p.stderr
    redo = [k for k in range(5) if k not in on_disk]
    assert [int(line.split()[2][3:]) // 2 for line in calls.read_text().splitlines()] == redo
    assert {f: f.stat().st_mtime_ns for f in kept} == kept  # finished batches untouched
    assert "stale lock of pid" in (rd / "run.log").read_text()
    assert not (rd / ".lock").exists()
    job = "tiny__mat-large__killer__32"
    a, b = (json.loads((d / "jobs" / job / "metrics.json").read_text()) for d in (ref.output, rd))
    assert a["metrics"] == b["metrics"]
    assert b["provenance"]["batches"]["computed"] == redo
    pd.testing.assert_frame_equal(pd.read_csv(ref.output / "jobs" / job / "per_image.csv"),
                                  pd.read_csv(rd / "jobs" / job / "per_image.csv"))


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_lock_refuses_a_second_run_at_once_and_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    import socket
    import time

    make_images(tmp_path / "imgs", 4)
    spec_path = standin_spec(tmp_path, "r", "runner_helpers:signaller")
    env = subprocess_env(MATBENCH_TEST_AT="1", MATBENCH_TEST_SIGNAL="STOP")
    holder = subprocess.Popen([sys.executable, str(HERE / "runner_helpers.py"), str(spec_path)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _state(holder.pid) != "T":  # the holder stopped itself inside its model: it holds the lock
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.2)
        spec = load_spec(spec_path)
        t0 = time.monotonic()
        with pytest.raises(MatbenchError) as e:
            run(spec, standin())
        assert time.monotonic() - t0 < 10  # refused at once, not after waiting
        msg = str(e.value)
        assert "\n" not in msg and f"pid {holder.pid} on {socket.gethostname()}" in msg and "in use" in msg
        holder.send_signal(9)  # kill -9 of the holder: its lock stays behind
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
    info = run(spec, standin())
    assert info["status"] == "complete"
    assert f"stale lock of pid {holder.pid}" in (spec.output / "run.log").read_text()
    assert not (spec.output / ".lock").exists()


@pytest.mark.parametrize("key,value,msg", [
    ("save_outputs", '"some"', 'save_outputs: must be "all", "none" or "sample:N"'),
    ("save_outputs", '"sample:0"', 'save_outputs: must be'),
    ("pipeline", '"yes"', "pipeline: must be true or false"),
    ("input_workers", "-1", "input_workers: must be >= 0"),
])
def test_new_run_keys_are_validated_naming_the_key(tmp_path: Path, key: str, value: str, msg: str) -> None:
    from matbench.errors import SpecError

    make_images(tmp_path / "imgs", 2)
    p = standin_spec(tmp_path, "r", **tomllib.loads(f"{key} = {value}"))
    with pytest.raises(SpecError, match=msg.replace("(", r"\(")):
        load_spec(p)


@pytest.mark.parametrize("line,msg", [('precision = "fp16"', "models[0].precision: must be one of fp32, tf32, bf16"),
                                      ("batch_size = 0", "models[0].batch_size: must be >= 1"),
                                      ('compile = "yes"', "models[0].compile: must be true or false")])
def test_model_speed_keys_are_validated_naming_the_key(tmp_path: Path, line: str, msg: str) -> None:
    from matbench.errors import SpecError

    make_images(tmp_path / "imgs", 2)
    p = standin_spec(tmp_path, "r", model_keys=tomllib.loads(line))
    with pytest.raises(SpecError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_spec(p)
