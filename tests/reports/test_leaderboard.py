"""`matbench leaderboard`: merges runs, ranks direction-aware, refuses side-by-side protocol differences."""

from __future__ import annotations

from pathlib import Path

import pytest
from matbench.reports.leaderboard import ProtocolError, build_tables, leaderboard, load_entries
from matbench.reports.sample import synthetic_record, write_job

from matbench.cli import main


def test_merges_runs_and_ranks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_job(a, synthetic_record("places", "mat-large", "mat", {"fid": 2.9, "pids": 0.1}))
    write_job(b, synthetic_record("places", "mat-large", "lama", {"fid": 3.5, "pids": 0.2}))
    write_job(b, synthetic_record("places", "mat-large", "comodgan", {"pids": 0.05}))  # no FID -> last
    board = leaderboard(load_entries([a, b]))
    rows = board[("places", "mat-large", 512)]
    assert [(r.rank, r.entry.model) for r in rows] == [(1, "mat"), (2, "lama"), (3, "comodgan")]
    rows = leaderboard(load_entries([a, b]), sort_by="pids")[("places", "mat-large", 512)]
    assert [r.entry.model for r in rows] == ["lama", "mat", "comodgan"]  # higher P-IDS is better
    assert main(["leaderboard", str(a), str(b), "--metrics", "fid,pids"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | mat | 100 | 2.90 | 10.00 |" in out and "| 3 | comodgan | 100 | – | 5.00 |" in out


def test_intervals_shown_and_rows_not_separated_from_the_leader(tmp_path: Path, capsys) -> None:
    d = tmp_path / "r"
    write_job(d, synthetic_record("places", "mat-large", "mat", {"fid": (2.90, 2.80, 3.00), "pids": (0.1, 0.1, 0.1)}))
    write_job(d, synthetic_record("places", "mat-large", "lama", {"fid": (3.05, 2.95, 3.15)}))  # overlaps mat's
    write_job(d, synthetic_record("places", "mat-large", "comodgan", {"fid": (3.50, 3.40, 3.60)}))  # clear of it
    write_job(d, synthetic_record("places", "mat-large", "telea", {"fid": 2.95}))  # no interval: nothing said
    assert main(["leaderboard", str(d), "--metrics", "fid,pids"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | mat | 100 | 2.90 ± 0.10 | 10.00 † |" in out and "| 3 | lama | 100 | 3.05 ± 0.10 | – |" in out
    assert "| 2 | telea | 100 | 2.95 | – |" in out
    assert "† No confidence interval shown: zero-width interval" in out
    assert "FID interval of lama overlaps #1's" in out and "comodgan overlaps" not in out
    assert main(["leaderboard", str(d), "--metrics", "fid", "--no-ci"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | mat | 100 | 2.90 |" in out and "±" not in out and "overlaps" not in out


@pytest.mark.parametrize("field,value", [
    ("dataset_manifest_sha256", "other-manifest"), ("maskset_sha256", "other-masks"), ("fid_convention", "clean"),
    ("feature_extractor", "inception-tf"), ("extractor_sha256", "zzz"), ("n_images", 99)])
def test_refuses_protocol_difference_naming_field(tmp_path: Path, capsys: pytest.CaptureFixture, field: str,
                                                  value: object) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_job(a, synthetic_record("places", "mat-large", "mat", {"fid": 2.9}))
    write_job(b, synthetic_record("places", "mat-large", "lama", {"fid": 3.5}, **{field: value}))
    with pytest.raises(ProtocolError, match=f"'{field}'"):
        leaderboard(load_entries([a, b]))
    assert main(["leaderboard", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert f"protocol field '{field}' differs" in err and str(a) in err and str(b) in err


def test_mask_sets_may_differ_but_convention_may_not(tmp_path: Path) -> None:
    d = tmp_path / "r"
    write_job(d, synthetic_record("places", "mat-small", "mat", {"fid": 1.0}, n=50))
    write_job(d, synthetic_record("places", "mat-large", "mat", {"fid": 2.0}))
    (t,) = build_tables(load_entries([d]))
    assert t.masksets == ["mat-small", "mat-large"]
    write_job(d, synthetic_record("places", "mat-large", "lama", {"fid": 2.0}, fid_convention="clean"))
    with pytest.raises(ProtocolError, match="fid_convention"):
        build_tables(load_entries([d]))


def test_smoke_next_to_real_refused_and_duplicates_named(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_job(a, synthetic_record("places", "mat-large", "mat", {"fid": 2.9}))
    write_job(b, synthetic_record("places", "mat-large", "lama", {"fid": 3.5}, smoke=True))
    with pytest.raises(ProtocolError, match="smoke"):
        build_tables(load_entries([a, b]))
    c = tmp_path / "c"
    write_job(c, synthetic_record("places", "mat-large", "mat", {"fid": 3.0}))
    with pytest.raises(Exception, match="two results for mat"):
        build_tables(load_entries([a, c]))
    # Resolutions form separate tables, never a mismatch.
    write_job(c, synthetic_record("places", "mat-large", "lama", {"fid": 3.0}, resolution=1024))
    assert [t.resolution for t in build_tables(load_entries([c]))] == [512, 1024]


def test_plain_eval_records_use_folder_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`matbench eval` writes job = {results, gt, masks}: model/dataset/mask set come from those folder names."""
    from matbench.results import MetricValue, ResultRecord, write_record

    for name, fid in (("mat_out", 3.0), ("lama_out", 4.0)):
        rec = ResultRecord(job={"results": f"/x/{name}", "gt": "/x/places_gt", "masks": None},
                           metrics={"fid": MetricValue(fid, None, None, 10)},
                           protocol={"fid_convention": "mat", "resolution": "640x480", "n_images": 10})
        write_record(tmp_path / f"eval_{name}", rec)
    (t,) = build_tables(load_entries([tmp_path]))
    assert (t.dataset, t.masksets, t.rows) == ("places_gt", ["none"], ["lama_out", "mat_out"])
    assert main(["check", str(tmp_path / "eval_mat_out"), "--baseline", str(tmp_path / "eval_mat_out")]) == 0
    # Different folders are different jobs: nothing in common -> not comparable.
    assert main(["check", str(tmp_path / "eval_mat_out"), "--baseline", str(tmp_path / "eval_lama_out")]) == 2


def test_a_model_on_random_weights_is_listed_last_without_a_rank(tmp_path: Path, capsys) -> None:
    d = tmp_path / "run"
    for name, fid, model_smoke in (("mat", 11.94, True), ("opencv-ns", 13.40, False), ("telea", 14.0, False)):
        rec = synthetic_record("ds", "mat-large", name, {"fid": fid}, smoke=True)
        rec.provenance.update({"metric_smoke": True, "weights": {"model": {"smoke": model_smoke}}})
        write_job(d, rec)
    rows = leaderboard(load_entries([d]))[("ds", "mat-large", 512)]
    assert [(r.rank, r.entry.model) for r in rows] == [(1, "opencv-ns"), (2, "telea"), (None, "mat")]
    assert main(["leaderboard", str(d), "--metrics", "fid", "--no-ci"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | opencv-ns (smoke) |" in out and "| – | mat (random weights) |" in out


def test_synthetic_record_sample_goes_to_the_job_not_the_protocol():
    rec = synthetic_record("places", "mat-large", "mat", {"fid": (2.0, 1.5, 2.5)}, n=7, sample=3, fid_convention="x")
    assert rec.job == {"dataset": "places", "maskset": "mat-large", "model": "mat", "resolution": 512, "sample": 3}
    assert "sample" not in rec.protocol and rec.protocol["fid_convention"] == "x" and rec.protocol["n_images"] == 7
    assert (rec.metrics["fid"].value, rec.metrics["fid"].ci_low, rec.metrics["fid"].ci_high) == (2.0, 1.5, 2.5)
    assert synthetic_record("places", "mat-large", "mat", {}).job["sample"] == 0
