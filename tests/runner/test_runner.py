"""Runner: job planning, streaming batches, run-directory layout, provenance, generalization table,
diversity — with a tiny stand-in evaluation (tests/runner_helpers.py), so these tests do not depend on
the metric networks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from runner_helpers import StandinBatch, StandinEvaluator, make_images, standin_factory, standin_opts
from spec_helpers import write_spec

from matbench.data.masks import generate_mask
from matbench.distributed import batch_ranges, shard
from matbench.diversity import hole_box, pairwise_diversity
from matbench.errors import SpecError
from matbench.io import read_gray, read_image
from matbench.runner import RunOptions, dry_run, generalization_table, run
from matbench.spec import load_spec

SPEC = {"name": "t", "output": "run", "seed": 5, "batch_size": 4, "resolutions": [32, 64], "generalization": True,
        "metrics": ["fid", "lpips"],
        # 40x48 images at 64: the generalization numbers below include the reflect padding
        "datasets": [{"name": "tiny", "path": "imgs", "limit": 7, "allow_upscale": True}],
        "masksets": [{"kind": "mat-large"}, {"kind": "mat-small", "seed": 100}],
        "models": [{"name": "mean-fill"}, {"name": "opencv-telea", "label": "telea"}]}


def write(folder: Path, stem: str = "spec", **keys: object) -> Path:
    """folder/stem.toml: SPEC with `keys` overridden (spec_helpers.write_spec)."""
    return write_spec(folder, stem, **{**SPEC, **keys})


@pytest.fixture()
def spec_file(tmp_path: Path) -> Path:
    make_images(tmp_path / "imgs", 9)
    return write(tmp_path)


def test_sharding_covers_every_batch_once() -> None:
    ranges = batch_ranges(10, 4)
    assert [list(r) for r in ranges] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for world in (1, 2, 3, 5):
        shards = [shard(len(ranges), r, world) for r in range(world)]
        assert sorted(itertools.chain(*shards)) == [0, 1, 2]
        assert all(k % world == r for r, s in enumerate(shards) for k in s)


def test_full_run_layout_numbers_and_generalization(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    info = run(spec, standin_opts())
    rd = spec.output
    assert info["status"] == "complete"
    on_disk = json.loads((rd / "run.json").read_text())
    assert on_disk["status"] == "complete" and on_disk["metric_smoke"] is True
    assert len(on_disk["jobs"]) == 2 * 2 * 2 and set(on_disk["summary"]) == {j["id"] for j in on_disk["jobs"]}
    assert (rd / "run.log").read_text().count("images in") == 8

    ids = [f"img{i:02d}" for i in range(7)]  # limit = 7 of 9, sorted ids
    for res in (32, 64):
        for ms, seed in (("mat-large", 5), ("mat-small", 100)):  # mask seed defaults to the run seed
            for i, iid in enumerate(ids):
                hole = read_gray(rd / "masks" / ms / str(res) / f"{iid}.png") == 255
                np.testing.assert_array_equal(hole, generate_mask(ms, res, seed + i))
        for iid in ids:
            src = np.asarray(Image.open(spec_file.parent / "imgs" / f"{iid}.png").convert("RGB"))
            from matbench.data.preprocess import prepare

            np.testing.assert_array_equal(read_image(rd / "inputs" / "tiny" / str(res) / f"{iid}.png"),
                                          prepare(src, res, "mat-val"))

    jd = rd / "jobs" / "tiny__mat-small__telea__64"
    rec = json.loads((jd / "metrics.json").read_text())
    assert rec["job"]["model"] == "telea" and rec["job"]["resolution"] == 64
    assert rec["protocol"]["n_images"] == 7 and rec["protocol"]["resolution"] == 64
    assert len(rec["protocol"]["maskset_sha256"]) == 64 and len(rec["protocol"]["dataset_manifest_sha256"]) == 64
    prov = rec["provenance"]
    assert prov["spec"]["name"] == "t" and "torch" in prov["versions"] and prov["device"].startswith("cpu")
    assert prov["seeds"] == {"run": 5, "masks": 100, "bootstrap": 5}
    assert {"load", "inpaint", "evaluate", "finalize", "job_wall"} <= set(prov["timings_s"])
    assert prov["batches"] == {"n": 2, "batch_size": 4, "computed": [0, 1], "resumed": 0}
    assert (jd / "batches" / "0.npz").is_file() and (jd / "batches" / "1.npz").is_file()
    assert json.loads((jd / "state.json").read_text())["status"] == "complete"

    # per-image numbers recomputed independently from the saved PNGs
    per = pd.read_csv(jd / "per_image.csv")
    assert list(per["id"]) == ids
    for i, iid in enumerate(ids):
        real = read_image(rd / "inputs" / "tiny" / "64" / f"{iid}.png").astype(np.float64) / 255
        fake = read_image(rd / "outputs" / jd.name / f"{iid}.png").astype(np.float64) / 255
        hole = generate_mask("mat-small", 64, 100 + i)
        np.testing.assert_array_equal(fake[~hole], real[~hole])  # known pixels kept
        expect = np.abs(real - fake)[hole].mean()
        assert per["l1"][i] == pytest.approx(expect, rel=1e-9)
    assert rec["metrics"]["l1"]["value"] == pytest.approx(per["l1"].mean(), rel=1e-12)

    gen = json.loads((rd / "generalization.json").read_text())
    assert gen["base"] == 32 and gen["target"] == 64
    assert len(gen["rows"]) == 2 * 2 * 2  # (maskset, model) x metrics {l1, fid}
    row = next(r for r in gen["rows"] if r["model"] == "telea" and r["maskset"] == "mat-small" and r["metric"] == "l1")
    a = json.loads((rd / "jobs" / "tiny__mat-small__telea__32" / "metrics.json").read_text())["metrics"]["l1"]["value"]
    assert row["base"] == a and row["target"] == rec["metrics"]["l1"]["value"]
    assert row["delta"] == pytest.approx(row["target"] - a)
    assert row["relative"] == pytest.approx((row["target"] - a) / a)
    csv = pd.read_csv(rd / "generalization.csv")
    assert len(csv) == len(gen["rows"])

    # A second run finds every job complete and computes nothing.
    StandinEvaluator.calls = 0
    run(spec, standin_opts())
    assert StandinEvaluator.calls == 0


def test_changed_config_is_refused_then_restarted(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    spec.resolutions = [32]
    spec.generalization = False
    spec.models = spec.models[:1]
    run(spec, standin_opts())
    spec.masksets[0].seed = 6  # different masks: stored results no longer match
    with pytest.raises(SpecError, match="different configuration .*maskset"):
        run(spec, standin_opts())
    run(spec, RunOptions(evaluator_factory=standin_factory, batch_loader=StandinBatch.load, progress=False,
                         restart=True))
    rec = json.loads((spec.output / "jobs" / "tiny__mat-large__mean-fill__32" / "metrics.json").read_text())
    assert rec["provenance"]["seeds"]["masks"] == 6


def test_diversity_samples_and_score(spec_file: Path, tmp_path: Path) -> None:
    p = write(tmp_path, "div", output="run", resolutions=[32], generalization=None, masksets=[{"kind": "mat-large"}],
              models=[{"name": "mean-fill"}, {"name": "runner_helpers:noisy", "label": "noisy", "samples": 3}])
    spec = load_spec(p)
    run(spec, standin_opts())
    jd = spec.output / "jobs" / "tiny__mat-large__noisy__32"
    rec = json.loads((jd / "metrics.json").read_text())
    per = pd.read_csv(jd / "per_image.csv")
    assert rec["metrics"]["diversity"]["n"] == 7 and rec["metrics"]["diversity"]["extra"]["samples"] == 3
    assert rec["metrics"]["diversity"]["value"] == pytest.approx(per["diversity"].mean(), rel=1e-12)
    assert (per["diversity"] > 0).all()
    out = spec.output / "outputs" / jd.name
    assert {f.name for f in out.iterdir()} >= {"img00.png", "img00_s1.png", "img00_s2.png"}
    # Samples differ (inside the hole) and are reproducible from (seed, id, sample).
    s0, s1 = read_image(out / "img03.png"), read_image(out / "img03_s1.png")
    assert (s0 != s1).any()
    assert not (spec.output / "jobs" / "tiny__mat-large__mean-fill__32" / "batches" / "0.diversity.json").exists()


def test_pairwise_diversity_hand_computed() -> None:
    hole = torch.zeros(1, 1, 100, 100, dtype=torch.bool)
    hole[0, 0, 10:20, 30:100] = True  # 10 x 70 box -> grown to 64 x 70, kept inside the image
    assert hole_box(hole[0]) == (0, 64, 30, 100)
    a = torch.zeros(1, 3, 100, 100, dtype=torch.uint8)
    b, c = a.clone(), a.clone()
    b[:, :, 10:20, 30:100] = 64
    c[:, :, 10:20, 30:100] = 128
    seen = []

    def dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return (x.double() - y.double()).abs().mean(dim=(1, 2, 3))

    d = pairwise_diversity([a, b, c], hole, dist)
    frac = (10 * 70) / (64 * 70)
    expect = np.mean([64 * frac, 128 * frac, 64 * frac])  # pairs (a,b), (a,c), (b,c)
    assert d[0] == pytest.approx(expect)
    assert seen == [(3, 3, 64, 70)]


def test_generalization_table_relative_change() -> None:
    from matbench.results import MetricValue, ResultRecord

    def rec(res: int, fid: float, pids: float) -> ResultRecord:
        return ResultRecord(job={"dataset": "p", "maskset": "l", "model": "mat", "resolution": res},
                            metrics={"fid": MetricValue(fid), "pids": MetricValue(pids)})

    t = generalization_table({"a": rec(512, 10.0, 0.20), "b": rec(1024, 9.417, 0.21902)}, 512, 1024)
    fid = next(r for r in t["rows"] if r["metric"] == "fid")
    pids = next(r for r in t["rows"] if r["metric"] == "pids")
    assert fid["relative_percent"] == pytest.approx(-5.83)
    assert pids["relative_percent"] == pytest.approx(9.51)
    assert pids["delta"] == pytest.approx(0.01902)


def test_dry_run_lists_jobs_counts_and_missing_weights(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    text = dry_run(spec)
    assert "tiny__mat-large__mean-fill__32: 7 images" in text
    assert "total: 8 jobs, 56 model evaluations" in text
    assert "missing weights: none" in text
    assert not spec.output.exists()


@pytest.fixture
def no_weights_here(tmp_path: Path, monkeypatch) -> Path:
    """Empty weights folders: $MATBENCH_WEIGHTS, the torch hub cache and the Hugging Face cache."""
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(d))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    return d


def test_dry_run_names_every_smoke_network_and_exits_3_unless_smoke_is_asked(spec_file: Path, no_weights_here,
                                                                            capsys) -> None:
    from matbench import weights as W
    from matbench.cli import main
    from matbench.runner.plan import EXIT_NOT_REAL

    write(spec_file.parent, smoke="auto", metrics=["fid", "lpips", "pr"])
    assert main(["run", "--dry-run", str(spec_file)]) == EXIT_NOT_REAL == 3
    out = capsys.readouterr().out
    smoke = out.split("smoke (random weights):")[1]
    assert "Inception (inception-v3-compat) for fid: SMOKE" in smoke
    assert "LPIPS trunk (alex) for lpips: SMOKE" in smoke and "VGG16 for pr: SMOKE" in smoke
    assert "NOT REAL NUMBERS: 3 network(s)" in smoke
    assert main(["run", "--dry-run", "--smoke", str(spec_file)]) == 0  # asked for: labelled, not refused
    assert "smoke asked for: these numbers will NOT be real" in capsys.readouterr().out
    # the weights on disk: real numbers, exit 0 (find() looks for the file, the run checks its hash)
    for name in ("inception-v3-compat", "torchvision-alexnet", "torchvision-vgg16"):
        (no_weights_here / W.get(name).filename).write_bytes(b"x")
    assert main(["run", "--dry-run", str(spec_file)]) == 0
    out = capsys.readouterr().out
    assert "for fid: real (" in out and "real numbers: every network" in out
    # a model without weights makes the numbers unreal even with every metric network present
    spec_file.write_text(spec_file.read_text() + '[[models]]\nname = "mat"\n')
    assert main(["run", "--dry-run", str(spec_file)]) == 3
    assert "NOT REAL NUMBERS: 1 network(s)" in capsys.readouterr().out


def test_dry_run_of_pixel_metrics_needs_no_network(spec_file: Path, no_weights_here, capsys) -> None:
    from matbench.cli import main

    write(spec_file.parent, smoke=False, metrics=["psnr", "l1"])
    assert main(["run", "--dry-run", str(spec_file)]) == 0
    assert "metric networks: none needed" in capsys.readouterr().out


def test_missing_weights_listed_by_dry_run_and_refused_up_front(spec_file: Path, monkeypatch) -> None:
    from matbench.errors import WeightsError

    monkeypatch.setenv("MATBENCH_WEIGHTS", str(spec_file.parent / "no-weights-here"))
    write(spec_file.parent, models=[*SPEC["models"], {"name": "mat"}])
    spec = load_spec(spec_file)
    text = dry_run(spec)
    missing = text.split("missing weights:")[1]
    assert "models[2] (mat)" in missing and ".pkl not found" in missing
    with pytest.raises(WeightsError, match=r"models\[2\] \(mat\)"):
        run(spec, standin_opts())
    assert not (spec.output / "jobs").exists()  # refused before any job started


def test_run_summary_says_which_part_was_smoke() -> None:
    from matbench.commands.run import smoke_summary

    spec = {"models": [{"label": "mat", "name": "mat", "smoke": True}, {"label": "telea", "smoke": False}]}
    both = smoke_summary({"smoke": True, "metric_smoke": True, "spec": spec})
    assert len(both) == 2 and both[0].startswith("SMOKE metric networks") and "SMOKE models: mat ran" in both[1]
    only_metrics = smoke_summary({"smoke": True, "metric_smoke": True, "spec": {"models": spec["models"][1:]}})
    assert len(only_metrics) == 1 and only_metrics[0].startswith("SMOKE metric networks")
    assert smoke_summary({"smoke": True, "metric_smoke": False, "spec": spec}) == [
        "SMOKE models: mat ran on random weights: not inpaintings, marked '(random weights)' in tables and never "
        "ranked"]
    assert smoke_summary({"smoke": False, "metric_smoke": False, "spec": spec}) == []
