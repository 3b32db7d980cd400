"""`matbench check`: 0 within tolerance (better never fails), 1 regression, 2 protocol/smoke mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matbench.reports.check import compare, parse_tolerance
from matbench.reports.sample import synthetic_record, write_job

from matbench.cli import main
from matbench.errors import SpecError
from matbench.results import find_records

BASE = {"fid": 3.00, "pids": 0.120, "uids": 0.300, "lpips": 0.2000}


def _run(d: Path, metrics: dict, smoke: bool = False, **protocol: object) -> Path:
    write_job(d, synthetic_record("places", "mat-large", "mat", metrics, smoke=smoke, **protocol))
    write_job(d, synthetic_record("places", "mat-small", "mat", {"fid": 1.0}, smoke=smoke, **protocol))
    return d


@pytest.fixture()
def baseline(tmp_path: Path) -> Path:
    return _run(tmp_path / "base", BASE)


def test_within_tolerance_and_better_pass(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture) -> None:
    # fid worse by 0.04 (< 0.05), pids much better, uids worse by 0.004 (< 0.005), lpips better.
    cur = _run(tmp_path / "cur", {"fid": 3.04, "pids": 0.20, "uids": 0.296, "lpips": 0.1})
    assert main(["check", str(cur), "--baseline", str(baseline)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS")
    # A hugely better FID with zero tolerance still passes: better is never a failure.
    cur2 = _run(tmp_path / "cur2", {**BASE, "fid": 0.5})
    assert main(["check", str(cur2), "--baseline", str(baseline), "--tolerance", "default=0"]) == 0


def test_regression_exits_1_with_readable_diff(tmp_path: Path, baseline: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    cur = _run(tmp_path / "cur", {**BASE, "fid": 3.06, "pids": 0.114})  # fid +0.06 > 0.05; pids -0.006 > 0.005
    assert main(["check", str(cur), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED  places/mat-large/mat@512 fid: 3.0000 -> 3.0600 (+0.06; tolerance 0.05, lower is better)" in out
    assert ("REGRESSED  places/mat-large/mat@512 pids: 0.1200 -> 0.1140 (-0.006; tolerance 0.005, "
            "higher is better)") in out
    assert "higher is better" in out and out.splitlines()[-1].startswith("FAIL (regression)")
    # Loosening the tolerance (absolute) makes the same run pass.
    assert main(["check", str(cur), "--baseline", str(baseline), "--tolerance", "fid=0.1,pids=0.01"]) == 0


def test_missing_metric_is_a_regression(tmp_path: Path, baseline: Path) -> None:
    cur = _run(tmp_path / "cur", {k: v for k, v in BASE.items() if k != "lpips"})
    assert main(["check", str(cur), "--baseline", str(baseline)]) == 1


def test_protocol_mismatch_exits_2_naming_field(tmp_path: Path, baseline: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    cur = _run(tmp_path / "cur", BASE, fid_convention="clean-fid")
    assert main(["check", str(cur), "--baseline", str(baseline)]) == 2
    out = capsys.readouterr().out
    assert "protocol field 'fid_convention' differs: baseline 'mat' vs current 'clean-fid'" in out


def test_smoke_vs_real_exits_2(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture) -> None:
    cur = _run(tmp_path / "cur", BASE, smoke=True)
    assert main(["check", str(cur), "--baseline", str(baseline)]) == 2
    assert "smoke-vs-real" in capsys.readouterr().out
    # smoke vs smoke is a legitimate CI comparison
    base2 = _run(tmp_path / "base2", BASE, smoke=True)
    assert main(["check", str(cur), "--baseline", str(base2)]) == 0
    # ... and it says so, since it gates the pipeline, not real numbers (issue 25)
    out = capsys.readouterr().out
    assert "SMOKE      smoke vs smoke for 2 job(s)" in out
    assert main(["check", str(cur), "--baseline", str(base2), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["smoke_vs_smoke"] == ["places/mat-large/mat@512",
                                                                      "places/mat-small/mat@512"]
    assert "SMOKE " not in (main(["check", str(baseline), "--baseline", str(baseline)]), capsys.readouterr().out)[1]


def test_json_output(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture) -> None:
    cur = _run(tmp_path / "cur", {**BASE, "uids": 0.2})
    assert main(["check", str(cur), "--baseline", str(baseline), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "regression" and data["exit_code"] == 1
    bad = [c for c in data["comparisons"] if c["status"] == "regressed"]
    assert [(c["job"], c["metric"]) for c in bad] == [("places/mat-large/mat@512", "uids")]
    assert bad[0]["delta"] == pytest.approx(-0.1)


def test_compare_api_and_tolerance_parsing(tmp_path: Path, baseline: Path) -> None:
    tol = parse_tolerance("fid=0.5, default=0")
    assert tol["fid"] == 0.5 and tol["pids"] == 0.0
    with pytest.raises(SpecError, match="bogus"):
        parse_tolerance("bogus=1")
    with pytest.raises(SpecError, match="not NAME=VALUE"):
        parse_tolerance("fid")
    cur = _run(tmp_path / "cur", {**BASE, "fid": 3.4})
    res = compare(find_records([cur]), find_records([baseline]), tol)
    assert res.exit_code == 0
    # A job only in the baseline counts as missing -> regression.
    only = tmp_path / "only"
    write_job(only, synthetic_record("places", "mat-large", "mat", BASE))
    res = compare(find_records([only]), find_records([baseline]))
    assert res.exit_code == 1 and any(c.status == "missing" and c.metric == "*" for c in res.comparisons)
    # Nothing in common is not comparable.
    other = tmp_path / "other"
    write_job(other, synthetic_record("celeba", "mat-large", "mat", BASE))
    assert compare(find_records([other]), find_records([baseline])).exit_code == 2


def test_nan_current_is_a_regression(tmp_path: Path, baseline: Path) -> None:
    cur = _run(tmp_path / "cur", {**BASE, "fid": float("nan")})
    res = compare(find_records([cur]), find_records([baseline]))
    assert res.exit_code == 1
    assert [c.metric for c in res.comparisons if c.status == "regressed"] == ["fid"]


def test_help_says_tolerance_is_absolute(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert "ABSOLUTE" in out and "better value never" in out


@pytest.mark.parametrize("text, says", [
    (b"[]", "a JSON list, not an object"),
    (b'{"schema": "matbench.result/1", "metrics": {}}', "no 'job'"),
    (b'{"schema": "matbench.result/1", "job": {}}', "no 'metrics'"),
    (b'{"schema": "matbench.result/1", "job": {}, "metrics": {"fid": {"value": "3.0"}}}',
     "'metrics.fid.value' must be a number"),
    (b'{"schema": "matbench.result/1", "job": {}, "metrics": {"fid": "3.0"}}', "'metrics.fid' must be an object"),
    (b'{"schema": "matbench.result/1", "job": {"x": "\xff"}, "metrics": {}}', "not UTF-8"),
])
def test_malformed_baseline_is_one_line_exit_2(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture,
                                               text: bytes, says: str) -> None:
    # A broken baseline used to exit 1 through a traceback, which CI reads as a regression.
    bad = tmp_path / "bad" / "metrics.json"
    bad.parent.mkdir()
    bad.write_bytes(text)
    assert main(["check", str(baseline), "--baseline", str(bad.parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and says in err


def test_nan_baseline_is_invalid_not_a_regression(tmp_path: Path, baseline: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    base = _run(tmp_path / "nanbase", {**BASE, "fid": float("nan")})
    assert main(["check", str(baseline), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert "metric 'fid'" in err and "is NaN" in err and str(base) in err
