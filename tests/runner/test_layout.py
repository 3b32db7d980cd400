"""RunLayout: every path of the run directory against the literal layout (a storage format: old runs resume)."""

from __future__ import annotations

from pathlib import Path

from runner_helpers import StandinBatch, standin_factory
from spec_helpers import write_spec

from matbench.layout import RunLayout
from matbench.runner import RunOptions, run
from matbench.spec import load_spec

R = Path("/r")


def test_every_path_is_the_literal_layout() -> None:
    lay = RunLayout("/r")
    assert lay.root == R and lay == RunLayout(R)
    assert lay.run_file == R / "run.json"
    assert lay.log_file == R / "run.log"
    assert lay.rank_log_file(3) == R / "run.rank3.log"
    assert lay.lock_file == R / ".lock"
    assert lay.generalization_json == R / "generalization.json"
    assert lay.generalization_csv == R / "generalization.csv"
    assert lay.maskset_dir("ml", 512) == R / "masksets/ml/512"
    assert lay.inputs_dir("ds", 512) == R / "inputs/ds/512"
    assert lay.input_image("ds", "512", "00001") == R / "inputs/ds/512/00001.png"
    assert lay.masks_dir("ml", 256) == R / "masks/ml/256"
    assert lay.mask_image("ml", 256, "a") == R / "masks/ml/256/a.png"
    assert lay.outputs_dir("j") == R / "outputs/j"
    assert lay.output_image("j", "a") == R / "outputs/j/a.png"
    assert lay.output_image("j", "a", 2) == R / "outputs/j/a_s2.png"
    assert lay.jobs_dir == R / "jobs"
    assert lay.job_dir("j") == R / "jobs/j"
    assert lay.state_file("j") == R / "jobs/j/state.json"
    assert lay.metrics_file("j") == R / "jobs/j/metrics.json"
    assert lay.per_image_file("j") == R / "jobs/j/per_image.csv"
    assert lay.features_file("j") == R / "jobs/j/features.npz"
    assert lay.batches_dir("j") == R / "jobs/j/batches"
    assert lay.batch_file("j", 4) == R / "jobs/j/batches/4.npz"
    assert lay.diversity_file("j", 4) == R / "jobs/j/batches/4.diversity.json"
    assert RunLayout.of_job_dir("/r/jobs/j") == (lay, "j")
    assert RunLayout.of_job_dir("/r/eval-out") is None


def test_names_agree_with_their_owners() -> None:
    from matbench import layout
    from matbench.features import FEATURES_FILE
    from matbench.runner import LOCK_FILE, LOG_FILE, RUN_FILE, STATE_FILE, batch_file, job_dir

    assert layout.FEATURES_FILE == FEATURES_FILE
    assert (RUN_FILE, LOG_FILE, STATE_FILE, LOCK_FILE) == ("run.json", "run.log", "state.json", ".lock")
    assert job_dir(R, "j") == R / "jobs/j" and batch_file(R, "j", 0) == R / "jobs/j/batches/0.npz"


def test_a_runner_run_directory_matches(tmp_path: Path) -> None:
    from runner_helpers import make_images

    make_images(tmp_path / "imgs", 3)
    write_spec(tmp_path, "s", name="t", output="run", seed=1, batch_size=2, metrics=["fid"])
    spec = load_spec(tmp_path / "s.toml")
    info = run(spec, RunOptions(evaluator_factory=standin_factory, batch_loader=StandinBatch.load, progress=False))
    (job,) = [j["id"] for j in info["jobs"]]
    lay = RunLayout(spec.output)
    ids = sorted(p.stem for p in lay.outputs_dir(job).glob("*.png"))
    assert len(ids) == 3
    expected = {lay.run_file, lay.log_file, lay.state_file(job), lay.metrics_file(job), lay.per_image_file(job),
                lay.batch_file(job, 0), lay.batch_file(job, 1)}
    expected |= {p for i in ids for p in (lay.input_image("tiny", 32, i), lay.mask_image("mat-large", 32, i),
                                           lay.output_image(job, i))}
    written = {p for p in lay.root.rglob("*") if p.is_file() and lay.root / "masksets" not in p.parents}
    assert expected <= written, sorted(map(str, expected - written))
    # nothing outside the layout (the lock is gone after the run; generated mask sets live under masksets/)
    assert written - expected == set(), sorted(map(str, written - expected))
    # the literal layout, spelled out once more
    for i in ids:
        assert (lay.root / "inputs" / "tiny" / "32" / f"{i}.png").is_file()
        assert (lay.root / "masks" / "mat-large" / "32" / f"{i}.png").is_file()
        assert (lay.root / "outputs" / job / f"{i}.png").is_file()
    assert (lay.root / "jobs" / job / "batches" / "0.npz").is_file()
