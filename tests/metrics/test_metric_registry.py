"""The one metric registry (matbench/metrics/registry.py) and a metric of a user's own module, end to end: eval,
per_image.csv, bins, intervals, table, report and a direction-aware check, against values computed here by hand."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import matbench.metrics as M
from matbench.cli import main
from matbench.io import save_png

USER_MODULE = '''
import numpy as np

from matbench.metrics import register_metric


@register_metric("hole_mse", per_image=True, higher_is_better=False, label="Hole MSE")
def hole_mse(real, fake, hole):            # uint8 N×3×H×W, uint8 N×3×H×W, bool N×1×H×W -> float array [N]
    d = (real.double() - fake.double()) ** 2
    h = hole.expand_as(d).double()
    return ((d * h).flatten(1).sum(1) / h.flatten(1).sum(1).clamp(min=1)).numpy()


@register_metric("feat_mean_gap", extractor="inception", higher_is_better=False, label="Feature mean gap")
def feat_mean_gap(real_features, fake_features):   # float N×D each -> float
    return float(np.abs(real_features.mean(0) - fake_features.mean(0)).sum())
'''
N, S = 8, 32


def _case(root: Path, noise: int) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    d = {k: root / k for k in ("gt", "res", "masks")}
    for i in range(N):
        g = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        hole = np.zeros((S, S), bool)
        hole[2:6 + 3 * i, 4:28] = True  # several hole-ratio bins
        r = g.copy()
        r[hole] = np.clip(g[hole].astype(int) + rng.integers(-noise, noise + 1, (int(hole.sum()), 3)), 0, 255)
        save_png(d["gt"] / f"im{i}.png", g)
        save_png(d["res"] / f"im{i}.png", r)
        save_png(d["masks"] / f"im{i}.png", np.where(hole, 0, 255).astype(np.uint8))
    return d


def _hole_mse_by_hand(d: dict[str, Path]) -> dict[str, float]:
    from PIL import Image

    out = {}
    for i in range(N):
        g = np.asarray(Image.open(d["gt"] / f"im{i}.png"), dtype=np.float64)
        r = np.asarray(Image.open(d["res"] / f"im{i}.png"), dtype=np.float64)
        hole = np.asarray(Image.open(d["masks"] / f"im{i}.png")) < 128
        total, count = 0.0, 0
        for y in range(S):
            for x in range(S):
                if hole[y, x]:
                    for c in range(3):
                        total += (g[y, x, c] - r[y, x, c]) ** 2
                        count += 1
        out[f"im{i}"] = total / count
    return out


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    mod_dir = tmp_path / "usermods"
    mod_dir.mkdir()
    (mod_dir / "mymetrics.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    yield "mymetrics"
    for name in ("hole_mse", "feat_mean_gap"):
        M.unregister_metric(name)
    sys.modules.pop("mymetrics", None)


def _eval(d: dict[str, Path], out: Path, capsys) -> dict:
    rc = main(["eval", "--results", str(d["res"]), "--gt", str(d["gt"]), "--masks", str(d["masks"]),
               "--mask-polarity", "known=255", "--metrics", "psnr,mymetrics:hole_mse,mymetrics:feat_mean_gap",
               "--trust", "mymetrics", "--smoke", "--device", "cpu", "--bootstrap", "50", "--save-features",
               "--no-cache", "--name", "mine", "-o", str(out)])
    capsys.readouterr()
    assert rc == 0
    return json.loads((out / "metrics.json").read_text())


def test_user_metric_end_to_end(tmp_path, user_module, capsys):
    good, bad = _case(tmp_path / "good", noise=4), _case(tmp_path / "bad", noise=60)
    rec = _eval(good, tmp_path / "out_good", capsys)

    # per-image metric: per_image.csv column, mean with a bootstrap interval, per hole-ratio bin
    by_hand = _hole_mse_by_hand(good)
    df = pd.read_csv(tmp_path / "out_good" / "per_image.csv")
    assert "hole_mse" in df.columns
    for iid, v in zip(df["id"], df["hole_mse"], strict=True):
        assert v == pytest.approx(by_hand[iid], rel=1e-9)
    m = rec["metrics"]["hole_mse"]
    assert m["value"] == pytest.approx(np.mean(list(by_hand.values())), rel=1e-9)
    assert m["ci_low"] < m["value"] < m["ci_high"] and m["n"] == N
    in_bins = [b for b in rec["bins"] if b["n"] >= 2]
    assert in_bins and all("hole_mse" in b["metrics"] for b in in_bins)
    for b in in_bins:
        ids = df.loc[df["bin"] == b["label"], "id"]
        assert b["metrics"]["hole_mse"]["value"] == pytest.approx(np.mean([by_hand[i] for i in ids]), rel=1e-9)

    # dataset metric on Inception features: recomputed here from the saved features
    f = np.load(tmp_path / "out_good" / "features.npz")
    key_r = next(k for k in f.files if k.startswith("inception") and k.endswith("real"))
    key_f = next(k for k in f.files if k.startswith("inception") and k.endswith("fake"))
    gap = float(np.abs(f[key_r].astype(np.float64).mean(0) - f[key_f].astype(np.float64).mean(0)).sum())
    g = rec["metrics"]["feat_mean_gap"]
    assert g["value"] == pytest.approx(gap, rel=1e-5)
    assert g["ci_low"] is not None and g["ci_high"] is not None and g["ci_low"] <= g["ci_high"]
    assert rec["provenance"]["metric_info"]["hole_mse"] == {
        "label": "Hole MSE", "higher_is_better": False, "scale": 1.0, "digits": 2, "per_image": True,
        "source": "mymetrics"}

    _eval(bad, tmp_path / "out_bad", capsys)
    # readers in another process do not import mymetrics: labels and direction come from the records
    for name in ("hole_mse", "feat_mean_gap"):
        M.unregister_metric(name)
    sys.modules.pop("mymetrics", None)

    assert main(["table", str(tmp_path / "out_good")]) == 0
    table = capsys.readouterr().out
    assert "Hole MSE" in table and "Feature mean gap" in table

    # the noisier results have a higher hole MSE: a regression for a lower-is-better metric, both ways round
    rc = main(["check", str(tmp_path / "out_bad"), "--baseline", str(tmp_path / "out_good"),
               "--tolerance", "hole_mse=1.0"])
    out = capsys.readouterr().out
    assert rc == 1 and "hole_mse" in out.lower().replace("hole mse", "hole_mse")
    assert main(["check", str(tmp_path / "out_good"), "--baseline", str(tmp_path / "out_bad"),
                 "--tolerance", "hole_mse=1.0"]) == 0
    capsys.readouterr()

    assert main(["report", str(tmp_path / "out_good"), "-o", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    html = "".join(p.read_text() for p in (tmp_path / "rep").rglob("*.html"))
    assert "Hole MSE" in html


def test_spec_names_a_user_metric(tmp_path, user_module, monkeypatch):
    from matbench.spec import parse_spec
    from matbench.trust import TrustError

    spec_dict = {"name": "t", "output": str(tmp_path / "run"), "resolutions": [256],
                 "datasets": [{"name": "d", "preset": "folder", "path": str(tmp_path)}],
                 "masksets": [{"name": "m", "kind": "mat-large"}], "models": [{"name": "opencv-telea"}],
                 "metrics": ["fid", "mymetrics:hole_mse"]}
    with pytest.raises(TrustError, match="MATBENCH_TRUSTED_MODULES=mymetrics"):  # naming code runs it: if allowed
        parse_spec(spec_dict, base_dir=tmp_path, check_paths=False)
    assert "mymetrics" not in sys.modules
    monkeypatch.setenv("MATBENCH_TRUSTED_MODULES", "runner_helpers,mymetrics")

    spec = parse_spec(spec_dict, base_dir=tmp_path, check_paths=False)
    assert spec.metrics == ["fid", "hole_mse"]


def test_register_metric_validates():
    with pytest.raises(ValueError, match="lower-case"):
        M.register_metric("Bad-Name", higher_is_better=True)(lambda r, f, h: r)
    with pytest.raises(ValueError, match="True or False"):
        M.register_metric("x_metric", higher_is_better=1)(lambda r, f, h: r)
    with pytest.raises(ValueError, match="no extractor"):
        M.register_metric("x_metric", higher_is_better=True, per_image=True, extractor="inception")
    with pytest.raises(ValueError, match="needs extractor"):
        M.register_metric("x_metric", higher_is_better=True)(lambda r, f: 0.0)
    with pytest.raises(ValueError, match="already registered"):
        M.register_metric("fid", higher_is_better=False, extractor="inception")(lambda r, f: 0.0)
    with pytest.raises(ValueError, match="unknown option"):
        M.register_metric("x_metric", higher_is_better=True, colour="red")
    assert "x_metric" not in M.registered()


def test_unknown_and_unimportable_metrics_are_one_line(capsys):
    from matbench.errors import InputError
    from matbench.trust import TrustError

    with pytest.raises(InputError, match="unknown metric 'fidd'"):
        M.parse_metrics("fid,fidd")
    with pytest.raises(TrustError, match="refused to import 'no_such_mod'"):  # not trusted: not even tried
        M.parse_metrics("no_such_mod:x")
    with pytest.raises(TrustError, match="standard-library"):
        M.parse_metrics("os:system")
    with pytest.raises(InputError, match="registers no metric 'nope'"):
        M.parse_metrics("matbench.metrics.fid:nope")


def test_derived_lists_come_from_the_declarations():
    reg = M.registered()
    assert M.default_metrics() == ("fid", "pids", "uids", "lpips", "pr", "kid", "psnr", "ssim", "l1")
    assert M.outputs_of(["pr", "ids_dinov2"]) == ["precision", "recall", "pids_dinov2", "uids_dinov2"]
    assert M.per_image_metrics() == ("lpips", "psnr", "ssim", "l1")
    assert list(M.METRIC_INFO)[:10] == ["fid", "kid", "pids", "uids", "lpips", "precision", "recall", "psnr",
                                        "ssim", "l1"]
    assert reg["pids"].group == reg["uids"].group == "ids" and reg["kid"].interval == "subset-normal"
    assert M.METRIC_INFO["pids"].scale == 100.0 and not M.METRIC_INFO["fid"].higher_is_better
    assert "diversity" in M.METRIC_INFO and "diversity" not in M.known_metrics()  # computed by run, not eval
