"""`matbench eval` with the feature-space metrics: values with their extractor identity, hole-ratio bins,
features.npz in per_image.csv order, protocol refusal before any network runs, published values in tables,
and FD of a folder against reference statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from matbench import protocols as P
from matbench.cli import main
from matbench.errors import SpecError
from matbench.metrics.fd import fd
from matbench.results import MetricValue, ResultRecord, write_record


def _folders(tmp_path, n: int = 6, size: int = 48):
    from PIL import Image

    rng = np.random.default_rng(0)
    gt, res, masks = (tmp_path / d for d in ("gt", "res", "masks"))
    for d in (gt, res, masks):
        d.mkdir()
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        hole = np.zeros((size, size), bool)
        hole[: (i // 2 + 1) * size // 8] = True  # two images per hole-ratio bin
        out = img.copy()
        out[hole] = rng.integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
        Image.fromarray(img).save(gt / f"im{i}.png")
        Image.fromarray(out).save(res / f"im{i}.png")
        Image.fromarray(np.where(hole, 0, 255).astype(np.uint8)).save(masks / f"im{i}.png")
    return gt, res, masks


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ev")
    gt, res, masks = _folders(tmp)
    out = tmp / "out"
    rc = main(["eval", "--results", str(res), "--gt", str(gt), "--masks", str(masks), "--mask-polarity",
               "known=255", "--metrics", "clip_fid,dc_clipb32,psnr", "--smoke", "--save-features", "--no-cache",
               "--bootstrap", "20", "--device", "cpu", "--workers", "0", "-o", str(out)])
    assert rc == 0
    return out


def test_values_carry_extractor_identity_and_bins(evaluated):
    d = json.loads((evaluated / "metrics.json").read_text())
    assert d["smoke"] is True
    for key in ("clip_fid", "density_clipb32", "coverage_clipb32"):
        mv = d["metrics"][key]
        assert mv["extra"]["extractor"] == "clip-vitb32" and mv["extra"]["resize"] == "legacy-tf"
        assert mv["extra"]["weights_sha256"].startswith("smoke-") and mv["n"] == 6
    assert d["metrics"]["clip_fid"]["ci_low"] is not None
    assert d["protocol"]["feature_spaces"]["clip-vitb32"]["resize"] == "legacy-tf"
    assert any("clip_fid" in b["metrics"] for b in d["bins"])


def test_features_npz_rows_follow_per_image_csv(evaluated):
    ids = pd.read_csv(evaluated / "per_image.csv")["id"].tolist()
    z = np.load(evaluated / "features.npz")
    assert sorted(z.files) == ["clip-vitb32.fake", "clip-vitb32.real"]
    real, fake = z["clip-vitb32.real"], z["clip-vitb32.fake"]
    assert real.dtype == np.float32 and real.shape == (len(ids), 512)
    d = json.loads((evaluated / "metrics.json").read_text())
    # the saved features reproduce the reported value
    assert fd(real.astype(np.float64), fake.astype(np.float64), "mat") == pytest.approx(
        d["metrics"]["clip_fid"]["value"], rel=1e-5)
    # row i is image ids[i]: the extractor on that image gives that row
    from matbench.features import get_extractor
    from matbench.io import read_image

    ex = get_extractor("clip-vitb32", smoke=True)
    gt_dir = evaluated.parent / "gt"
    im = torch.from_numpy(read_image(gt_dir / f"{ids[3]}.png")).permute(2, 0, 1)[None]
    np.testing.assert_allclose(ex(im)[0], real[3], rtol=1e-5, atol=1e-5)


def test_protocol_mismatch_refused_before_computing(tmp_path, capsys):
    gt, res, masks = _folders(tmp_path, n=3, size=16)
    rc = main(["eval", "--results", str(res), "--gt", str(gt), "--masks", str(masks), "--mask-polarity",
               "known=255", "--metrics", "fid", "--smoke", "--fid-convention", "torch-fidelity", "--protocol",
               "mat-places512-large", "--no-cache", "-o", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "fid_convention is 'torch-fidelity', protocol mat-places512-large needs 'mat'" in err
    assert "n_images is 3" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_published_values_beside_ours_in_tables(tmp_path, capsys):
    rec = ResultRecord(job={"dataset": "places365-val", "maskset": "mat-large", "model": "mat", "resolution": 512},
                       metrics={"fid": MetricValue(2.10, 1.90, 2.30, 36500), "pids": MetricValue(0.20, 0.19, 0.21,
                                                                                                 36500)},
                       protocol={"n_images": 36500, "resolution": 512, "fid_convention": "mat"})
    assert P.annotate(rec, "mat-places512-large") is None  # "mat" matches two rows: nothing chosen by itself
    with pytest.raises(SpecError, match="publishes 'MAT \\(8M\\)'"):
        P.annotate(rec, "mat-places512-large", "MAT (9M)")
    assert P.annotate(rec, "mat-places512-large", "MAT (8M)") == "MAT (8M)"
    pub = rec.metrics["fid"].extra["published"]
    assert pub["value"] == 1.96 and pub["diff"] == pytest.approx(0.14) and pub["inside_ci"] is True
    assert rec.metrics["pids"].extra["published"]["inside_ci"] is False  # 23.42 % outside [19, 21] %
    write_record(tmp_path, rec)
    assert main(["table", str(tmp_path), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "Published values beside ours" in out and "| 2.1 | 1.96 | +0.14 | yes |" in out
    assert main(["table", str(tmp_path), "--format", "csv"]) == 0
    csv = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    row = csv[csv.metric == "pids"].iloc[0]
    assert row["published"] == pytest.approx(23.42) and row["published_diff"] == pytest.approx(-3.42)


def test_stats_fd_of_a_folder_equals_fd_on_features(evaluated, tmp_path, capsys):
    gt, res = evaluated.parent / "gt", evaluated.parent / "res"
    ref = tmp_path / "ref.npz"
    assert main(["stats", "make", str(gt), "--extractor", "clip-vitb32", "--smoke", "--resolution", "48",
                 "--no-cache", "--device", "cpu", "-o", str(ref)]) == 0
    assert main(["stats", "fd", str(res), "--ref", str(ref), "--smoke", "--device", "cpu", "--bootstrap", "10",
                 "-o", str(tmp_path / "fd.json")]) == 0
    got = json.loads((tmp_path / "fd.json").read_text())
    z = np.load(evaluated / "features.npz")
    assert got["fd"] == pytest.approx(fd(z["clip-vitb32.real"].astype(float), z["clip-vitb32.fake"].astype(float),
                                         "mat"), rel=1e-4)
    assert got["extractor"] == "clip-vitb32" and got["smoke"] is True and "SMOKE" in capsys.readouterr().out


def test_report_shows_published_section(tmp_path):
    from matbench.reports.render import render_site

    rec = ResultRecord(job={"dataset": "places365-val", "maskset": "mat-large", "model": "mat", "resolution": 512},
                       metrics={"fid": MetricValue(2.10, 1.90, 2.30, 36500)},
                       protocol={"n_images": 36500, "resolution": 512, "fid_convention": "mat"})
    P.annotate(rec, "mat-places512-large", "MAT (8M)")
    write_record(tmp_path / "run", rec)
    html = render_site([tmp_path / "run"], tmp_path / "rep").read_text()
    assert "Published values beside ours" in html and "mat-places512-large (MAT (8M))" in html
