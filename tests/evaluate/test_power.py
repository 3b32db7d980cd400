"""`matbench power`: the normal-approximation sample size written out by hand, checked by simulation, and the CLI
on tiny hand-written result folders (per-image rows, and features for FID)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matbench.reports.sample import synthetic_record, write_job

from matbench import paired as P
from matbench import power as W
from matbench.cli import main
from matbench.metrics.fd import fd_influence
from matbench.metrics.fid import fid

Z975, Z80 = 1.959964, 0.841621  # standard normal quantiles (tables)


def test_formula_by_hand():
    assert W.z_sum(0.05, 0.8) == pytest.approx(Z975 + Z80, abs=1e-6)
    # sd 1, delta 0.1: ((1.959964 + 0.841621) * 10)^2 = 784.89 -> 785 images
    assert W.required_n(1.0, 0.1) == 785
    assert W.required_n(2.0, -0.1) == math.ceil(((Z975 + Z80) * 20) ** 2)  # the sign of delta does not matter
    assert W.detectable_delta(1.0, 785) == pytest.approx((Z975 + Z80) / math.sqrt(785))
    assert W.detectable_delta(1.0, 785) <= 0.1 < W.detectable_delta(1.0, 784)
    z90 = 1.281552  # power 0.9 at alpha 0.01: z_0.995 = 2.575829
    assert W.required_n(1.0, 0.5, alpha=0.01, power=0.9) == math.ceil(((2.575829 + z90) * 2) ** 2)
    single = W.power_of(np.array([0.0, 1.0, 2.0, 3.0]), paired=False, deltas=[1.0])
    assert single.sd == pytest.approx(math.sqrt(2.0) * np.std([0, 1, 2, 3], ddof=1))


def test_the_paired_test_at_the_sized_n_has_the_asked_power():
    sd, delta = 1.0, 0.25
    n = W.required_n(sd, delta)  # 126
    rng = np.random.default_rng(0)
    m = 400
    hits = 0
    for k in range(m):
        image = rng.normal(0.0, 3.0, n)  # shared image effect: only the difference's sd (1) matters
        a = image + rng.normal(0.0, sd / math.sqrt(2.0), n)
        b = image + rng.normal(delta, sd / math.sqrt(2.0), n)
        hits += P.paired_mean(a, b, True, P.Resampling(300, seed=k)).verdict != "tie"
    h = 3.3 * math.sqrt(0.8 * 0.2 / m)
    assert 0.8 - h <= hits / m <= 0.8 + h


N_IMG, D = 60, 3


def _job(run: Path, lpips: np.ndarray, feats: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    metrics: dict[str, object] = {"lpips": float(lpips.mean())}
    if feats is not None:
        metrics["fid"] = fid(*feats)
    rec = synthetic_record("places", "mat-large", "mat", metrics, n=N_IMG)
    if feats is not None:
        rec.metrics["fid"].extra["extractor"] = "inception"
        rec.metrics["fid"].convention = "mat"
    folder = write_job(run, rec).parent
    pd.DataFrame({"id": [f"i{i}" for i in range(N_IMG)], "hole_ratio": np.linspace(0.1, 0.6, N_IMG),
                  "lpips": lpips}).to_csv(folder / "per_image.csv", index=False)
    if feats is not None:
        np.savez(folder / "features.npz", **{"inception.real": feats[0], "inception.fake": feats[1]})
    return folder


def test_power_cli_paired_and_single(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(1)
    image = rng.uniform(0.1, 0.4, N_IMG)
    la, lb = image + rng.normal(0, 0.01, N_IMG), image + rng.normal(0.002, 0.01, N_IMG)
    real = rng.normal(size=(N_IMG, D))
    fa, fb = real + 0.5 * rng.normal(size=(N_IMG, D)), real + 0.6 * rng.normal(size=(N_IMG, D))
    a, b = _job(tmp_path / "a", la, (real, fa)), _job(tmp_path / "b", lb, (real, fb))
    assert main(["power", str(a), str(b), "--delta", "lpips=0.001,fid=0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["paired"] and data["n"] == N_IMG
    sd = float(np.std(lb - la, ddof=1))
    lp = data["metrics"]["lpips"]
    assert lp["sd"] == pytest.approx(sd, rel=1e-6) and lp["source"] == "paired"
    assert lp["needed"] == {"0.001": math.ceil(((Z975 + Z80) * sd / 0.001) ** 2)}
    assert lp["detectable_delta"] == pytest.approx((Z975 + Z80) * sd / math.sqrt(N_IMG), rel=1e-5)
    psi = fd_influence(real, fb, "mat") - fd_influence(real, fa, "mat")
    assert data["metrics"]["fid"]["sd"] == pytest.approx(float(np.std(psi, ddof=1)), rel=1e-6)
    # one result alone: sqrt(2) x its own spread, and the text says it is a conservative proxy
    assert main(["power", str(a), "--metrics", "lpips"]) == 0
    out = capsys.readouterr().out
    assert "alone, n = 60 images: the paired sd is taken as sqrt(2) x its own per-image spread" in out
    row = next(x for x in out.splitlines() if x.startswith("LPIPS"))
    assert row.split()[1] == f"{math.sqrt(2) * float(np.std(la, ddof=1)):.4g}"
    assert main(["power", str(a), "--delta", "lpips=0"]) == 2
    assert main(["power", str(a), "--delta", "kid=0.001"]) == 2  # not in the result
