"""The statistical gate (`matbench check` with per-image rows): calibration of its false-alarm rate on simulated
exchangeable models, detection of a shift, and the CLI on tiny hand-written result folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matbench.reports.sample import synthetic_record, write_job

from matbench import paired as P
from matbench.cli import main


def _band(p: float, m: int, z: float = 3.3) -> tuple[float, float]:
    """Binomial band (normal approximation, about 99.9 %) of a rate p estimated from m trials."""
    h = z * math.sqrt(p * (1 - p) / m)
    return p - h, p + h


def _gate_rate(shift: float, tol: float, m: int, n: int = 60, b: int = 400, alpha: float = 0.05,
               hib: bool = False) -> float:
    """Share of m simulated comparisons (n images, a shared image effect) that the gate calls a regression."""
    rng = np.random.default_rng(123)
    hits = 0
    for k in range(m):
        image = rng.normal(0.3, 1.0, n)  # shared by both models: cancels in the paired difference
        a = image + rng.normal(0.0, 0.5, n)
        bb = image + rng.normal(0.0, 0.5, n) + shift
        r = P.paired_mean(a, bb, hib, P.Resampling(b, seed=k, alpha=alpha))
        hits += P.regression_test(r, tol, hib, alpha).regressed
    return hits / m


def test_false_alarm_rate_of_exchangeable_models_is_alpha():
    m = 1000
    lo, hi = _band(0.05, m)
    assert lo <= _gate_rate(0.0, 0.0, m) <= hi
    # a true change exactly at the tolerance (worse side) is the boundary of H0: again about alpha
    sd = 0.5 * math.sqrt(2.0)
    tol = 0.5 * sd / math.sqrt(60)
    assert lo <= _gate_rate(tol, tol, m) <= hi
    # higher-is-better metrics: a drop is the worse direction
    assert lo <= _gate_rate(-tol, tol, m, hib=True) <= hi
    # within the tolerance and no true change: far fewer alarms than alpha
    assert _gate_rate(0.0, tol, m) < 0.02


def test_a_shifted_model_is_detected():
    sd = 0.5 * math.sqrt(2.0)
    shift = 3.5 * sd / math.sqrt(60)  # power of a one-sided 5 % test at this shift: Phi(3.5 - 1.645) = 0.97
    assert _gate_rate(shift, 0.0, 200) > 0.9
    assert _gate_rate(-shift, 0.0, 200) == 0.0  # better never fails


def test_false_alarm_rate_of_the_paired_fid_gate():
    m, n, d = 300, 200, 4
    rng = np.random.default_rng(5)
    hits = 0
    for k in range(m):
        base = rng.normal(size=(n, d))
        real = base + 0.3 * rng.normal(size=(n, d))
        fa = base + 0.5 * rng.normal(size=(n, d))
        fb = base + 0.5 * rng.normal(size=(n, d))  # exchangeable with A
        r = P.paired_fd(real, fa, fb, "mat", method="linear", rs=P.Resampling(300, seed=k))
        hits += P.regression_test(r, 0.0, False, 0.05).regressed
    lo, hi = _band(0.05, m)
    assert lo <= hits / m <= hi


def test_regression_test_by_hand():
    dev = np.linspace(-1.0, 1.0, 99)  # delta* = 0.5 + dev: 25 of 99 at or below 0
    r = P.Paired(1.0, 1.5, 0.5, (0.0, 0.0), 1.0, "tie", 10, deviations=dev)
    g = P.regression_test(r, 0.0, False, alpha=0.3)
    assert g.p_value == pytest.approx(26 / 100) and g.regressed  # lower is better: +0.5 is worse
    assert g.ci == pytest.approx(tuple(np.quantile(0.5 + dev, [0.3, 0.7]))) and g.level == pytest.approx(0.4)
    assert not P.regression_test(r, 0.0, False, alpha=0.2).regressed  # p = 0.26 > 0.2
    assert not P.regression_test(r, 0.6, False, alpha=0.3).regressed  # delta within the tolerance
    up = P.regression_test(r, 0.0, True, alpha=0.3)  # higher is better: +0.5 is better, never a regression
    assert not up.regressed and up.p_value == pytest.approx(75 / 100)


# --------------------------------------------------------------------------------------------- the CLI

N_IMG = 40


def _job(run: Path, lpips: np.ndarray, psnr: np.ndarray, rows: bool = True) -> Path:
    rec = synthetic_record("places", "mat-large", "mat", {"fid": 3.0, "lpips": float(lpips.mean()),
                                                            "psnr": float(psnr.mean())}, n=N_IMG)
    path = write_job(run, rec)
    if rows:
        ids = [f"img{i:03d}" for i in range(N_IMG)]
        pd.DataFrame({"id": ids, "hole_ratio": np.linspace(0.1, 0.5, N_IMG), "lpips": lpips,
                      "psnr": psnr}).to_csv(path.parent / "per_image.csv", index=False)
    return run


@pytest.fixture(scope="module")
def values() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.uniform(0.1, 0.4, N_IMG)
    return {"lpips": image, "psnr": 20 + 30 * image, "noise": rng.normal(0.0, 0.02, N_IMG)}


def test_check_cli_paired_gate(tmp_path: Path, values, capsys: pytest.CaptureFixture) -> None:
    lp, ps, noise = values["lpips"], values["psnr"], values["noise"]
    base = _job(tmp_path / "base", lp, ps)
    # lpips worse by ~0.003 on average (tolerance 0.002) but with per-image noise of 0.02: not significant
    noisy = _job(tmp_path / "noisy", lp + noise - noise.mean() + 0.003, ps)
    assert main(["check", str(noisy), "--baseline", str(base), "--n-resamples", "500"]) == 0
    out = capsys.readouterr().out
    assert ("PAIRED     places/mat-large/mat@512: paired test over n = 40 images (worse beyond the tolerance and "
            "significant at alpha = 0.05, one-sided); tolerance only for fid") in out
    assert out.splitlines()[-1].startswith("PASS")
    # the same numbers with tolerances alone: a regression
    assert main(["check", str(noisy), "--baseline", str(base), "--no-paired"]) == 1
    out = capsys.readouterr().out
    assert "UNPAIRED   all jobs: fixed tolerances only" in out and "REGRESSED" in out
    # every image 0.01 worse: significant, with delta, interval and p-value in the line
    worse = _job(tmp_path / "worse", lp + 0.01, ps)
    assert main(["check", str(worse), "--baseline", str(base), "--n-resamples", "500"]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("REGRESSED"))
    assert line.startswith("REGRESSED  places/mat-large/mat@512 lpips: ")
    assert "90 % interval [+0.010000, +0.010000], p = 0.002; tolerance 0.002, lower is better)" in line
    assert main(["check", str(worse), "--baseline", str(base), "--json", "--n-resamples", "500"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["alpha"] == 0.05 and data["pairing"][0]["paired"] and data["pairing"][0]["n"] == N_IMG
    by = {c["metric"]: c for c in data["comparisons"]}
    assert by["lpips"]["test"] == "paired" and by["lpips"]["status"] == "regressed"
    assert by["lpips"]["p_value"] == pytest.approx(1 / 501) and by["lpips"]["delta"] == pytest.approx(0.01)
    assert by["fid"]["test"] == "tolerance" and by["fid"]["p_value"] is None
    assert main(["check", str(worse), "--baseline", str(base), "--alpha", "0.7"]) == 2  # one-sided: alpha < 0.5


def test_check_cli_without_rows_falls_back_and_says_so(tmp_path: Path, values, capsys) -> None:
    lp, ps = values["lpips"], values["psnr"]
    base = _job(tmp_path / "base", lp, ps)
    cur = _job(tmp_path / "cur", lp + 0.01, ps, rows=False)
    assert main(["check", str(cur), "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    assert "UNPAIRED   places/mat-large/mat@512: fixed tolerances only, no statistical test (" in out
    assert "per_image.csv: no such file" in out
    assert "REGRESSED  places/mat-large/mat@512 lpips:" in out and "interval" not in out
