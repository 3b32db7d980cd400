"""`matbench doctor`: inputs that deviate in one factor each are flagged on exactly that factor, with effects of
the right sign; clean inputs built to a small test protocol pass (smoke networks, 8 images of 64 px)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matbench.reports.doctor_page import DOCTOR_PAGE, render_doctor
from matbench.reports.render import _env
from PIL import Image
from runner_helpers import StandinBatch, make_images, standin_factory
from scipy.stats import ks_2samp  # the independent reference for the KS test (matbench does not import scipy.stats)
from spec_helpers import write_spec

from matbench import doctor as D
from matbench.cli import main
from matbench.data.datasets import Dataset
from matbench.data.manifest import write_manifest
from matbench.data.maskset import MaskSet, make_maskset
from matbench.errors import InputError
from matbench.layout import RunLayout
from matbench.metrics import fdinf
from matbench.metrics.fd import fd, fd_in_dtype
from matbench.runner import RunOptions
from matbench.runner import run as run_spec
from matbench.spec import load_spec

N, S = 8, 64
CHECKS = ("image count", "file format", "image size", "color mode", "exif orientation", "mask kind", "hole ratios",
          "mask polarity", "pairing")


def _photo(rng: np.random.Generator, s: int) -> np.ndarray:
    yy, xx = np.mgrid[0:s, 0:s] / s
    c, f = rng.uniform(0, 255, 3), rng.uniform(1, 6, 2)
    img = np.stack([0.5 * c[j] + 60 * np.sin(2 * np.pi * (f[0] * xx + f[1] * yy + j)) + rng.normal(0, 10, (s, s))
                    for j in range(3)], -1)
    return np.clip(img + 64, 0, 255).astype(np.uint8)


def make_case(root: Path, n: int = N, s: int = S, kind: str = "mat-large", fmt: str = "PNG", quality: int = 75,
              gray: tuple[str, ...] = (), protocol_res: int = S, protocol_n: int = N, conv: str = "mat") -> Path:
    """ground truths, a mask set, results that keep every known pixel (the hole filled with the known mean),
    a manifest of the ground truths and a protocol TOML (test-proto) the clean case follows."""
    rng = np.random.default_rng(0)
    ids = [f"img{i:02d}" for i in range(n)]
    for d in ("gt", "res"):
        (root / d).mkdir(parents=True, exist_ok=True)
    ms = make_maskset(kind, n, s, 0, root / "masks", names=ids)
    for iid in ids:
        g = _photo(rng, s)
        hole = ms.hole(iid)
        r = g.copy()
        r[hole] = g[~hole].mean(0).astype(np.uint8)
        mode = "L" if iid in gray else "RGB"
        if mode == "L":  # the pair in gray: known pixels still agree
            g = np.asarray(Image.fromarray(g).convert("L").convert("RGB"))
            r = g.copy()
            r[hole] = g[~hole].mean(0).astype(np.uint8)
        Image.fromarray(g).convert(mode).save(root / "gt" / f"{iid}.png")
        if fmt == "JPEG":
            Image.fromarray(r).convert(mode).save(root / "res" / f"{iid}.jpg", quality=quality)
        else:
            Image.fromarray(r).convert(mode).save(root / "res" / f"{iid}.png")
    write_manifest(Dataset.open(root / "gt"), root / "manifest.json")
    (root / "proto.toml").write_text(f"""[test-proto]
title = "test protocol"
dataset = "8 synthetic images"
manifest = "manifest.json"
[test-proto.require]
resolution = {protocol_res}
n_images = {protocol_n}
fid_convention = "{conv}"
feature_extractor = "inception-v3-compat"
resize = "legacy-tf"
mask_kind = "mat-large"
[test-proto.published."M"]
fid = 1.0
""", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")  # ground-truth features shared by the tests


def run(root: Path, cache: Path, what_ifs=("n", "jpeg"), **kw) -> D.DoctorReport:
    return D.diagnose(root / "res", root / "gt", str(root / "proto.toml"), root / "masks", smoke=True,
                      cache_dir=cache, what_ifs=what_ifs, **kw)


def flagged(report: D.DoctorReport) -> list[str]:
    return [f.factor for f in report.factors if not f.ok]


# ------------------------------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("q", [30, 75, 95])
def test_jpeg_quality_recovered_from_the_quantization_tables(q):
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(buf, format="JPEG", quality=q)
    with Image.open(buf) as im:
        assert D.jpeg_quality(im.quantization) == (q, True)
    assert D.jpeg_quality(None) == (None, False)


def test_fid_vs_n_recovers_a_line_in_one_over_n(monkeypatch):
    # FID = 2 + 16/N exactly (and no sampling spread): the fit is that line, its value at N = 1000 is 2.016
    monkeypatch.setattr(D.fdinf, "fd_value", lambda r, f, c, stat: 2.0 + 16.0 / r.shape[0])
    monkeypatch.setattr(D, "fd_influence", lambda r, f, c: np.zeros(r.shape[0]))
    x = np.random.default_rng(0).normal(size=(40, 4))
    out = D.fid_vs_n(x, x, "mat", 1000)
    assert [s for s, _ in out["points"]] == [4, 9, 14, 19, 24, 29, 34, 40]  # fdinf.subset_sizes(40, 8)
    assert out["estimate"] == pytest.approx(2.016) and out["why"] is None
    assert out["low"] == pytest.approx(2.016) and out["high"] == pytest.approx(2.016)
    assert out["at_n"] == pytest.approx(2.4)


def _gaussians(d: int, n: int, shift2: float, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = np.zeros(d)
    mu[0] = np.sqrt(shift2)
    return rng.normal(size=(n, d)), mu + scale * rng.normal(size=(n, d))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("d", "n", "shift2", "scale", "conv"), [(8, 600, 0.0, 1.0, "torch-fidelity"),
                                                                 (8, 600, 1.0, 1.5, "mat"),
                                                                 (16, 1000, 1.0, 1.5, "mat")])
def test_fid_at_the_protocol_n_from_subsets_of_gaussians(d, n, shift2, scale, conv, seed):
    # N(0, I) against N(mu, s^2 I): FID at infinitely many images is |mu|^2 + D (1 - s)^2, and at 36,500 images
    # the plug-in bias (order D / N) is below 0.002 here; FID(N) itself is biased upward
    real, fake = _gaussians(d, n, shift2, scale, seed)
    truth = shift2 + d * (1.0 - scale) ** 2
    out = D.fid_vs_n(real, fake, conv, 36_500, seed)
    assert out["why"] is None
    assert out["low"] <= truth <= out["high"]
    assert out["at_n"] > out["estimate"]  # the effect of N is positive: fewer images, more FID
    if truth == 0.0:  # the same distribution: FID(N) is all bias, the estimate removes most of it
        assert abs(out["estimate"]) < 0.3 * out["at_n"]


def test_fid_vs_n_says_when_n_is_too_small():
    # below the feature dimension: nothing to say
    real, fake = _gaussians(64, 40, 1.0, 1.2, 0)
    out = D.fid_vs_n(real, fake, "mat", 36_500)
    assert out["estimate"] is None and "fewer than the 64 feature dimensions" in out["why"]
    # 300 pairs of 64-d Gaussians: FID(N) = 12.8 against 3.56, far from linear in 1/N over 30..300 pairs
    real, fake = _gaussians(64, 300, 1.0, 1.2, 0)
    out = D.fid_vs_n(real, fake, "mat", 36_500)
    assert out["estimate"] is not None and "not linear in 1/N" in out["why"]
    assert not out["low"] <= 3.56 <= out["high"]  # the line alone would have been wrong


def test_hole_ratio_comparison_against_the_generator():
    same = D.compare_hole_ratios([0.0] * 0 + [float(r) for r in np.linspace(0.3, 0.9, 40)], "mat-large", 64)
    small = D.compare_hole_ratios([0.05] * 40, "mat-large", 64)
    assert small["ks"] > same["ks"]
    assert small["p"] < D.KS_ALPHA
    assert sum(small["yours"]["histogram"]["fraction"][:1]) == 1.0  # every mask in the 0-10 % bin


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.4])
def test_ks_two_sample_against_scipy(shift):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 1, 30), rng.uniform(shift, 1 + shift, 200)
    d, p = D.ks_two_sample(a, b)
    ref = ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, abs=0.03)


# ------------------------------------------------------------------------------------------------- one factor each


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return make_case(tmp_path_factory.mktemp("clean"))


def test_clean_inputs_pass_with_exit_0(clean, cache, capsys):
    rc = main(["doctor", "--results", str(clean / "res"), "--gt", str(clean / "gt"), "--masks", str(clean / "masks"),
               "--protocol", str(clean / "proto.toml"), "--smoke", "--device", "cpu", "--cache-dir", str(cache),
               "--what-if", "convention,lpips", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert set(out) == {"protocol", "factors"} and out["protocol"] == "test-proto"
    for f in out["factors"]:
        assert set(f) == {"factor", "yours", "protocol", "ok", "effect", "fix"}
        assert f["ok"] is True
    names = [f["factor"] for f in out["factors"]]
    assert names == [*CHECKS, "fid covariance", "lpips input range"]
    effects = {f["factor"]: f["effect"] for f in out["factors"]}
    # the same features under 1/(N-1): every covariance term grows by N/(N-1), the FID differs
    assert effects["fid covariance"]["fid"] != 0.0
    assert effects["lpips input range"]["lpips"] != 0.0


def test_jpeg_results_flag_the_file_format(tmp_path, cache):
    r = run(make_case(tmp_path, fmt="JPEG", quality=60), cache)
    assert flagged(r) == ["file format"]
    f = r.factor("file format")
    assert f.yours["results"] == {"JPEG q60": N}
    # JPEG results against PNG ground truths: worse than against ground truths encoded the same way
    assert f.effect["fid"] > 0 and f.effect["psnr"] < 0
    assert "quality 60" in f.cost


def test_a_subset_flags_the_image_count(tmp_path, cache):
    root = make_case(tmp_path, conv="torch-fidelity")
    for iid in ("img06", "img07"):
        (root / "gt" / f"{iid}.png").unlink()
        (root / "res" / f"{iid}.png").unlink()
    r = run(root, cache)
    assert flagged(r) == ["image count"]
    f = r.factor("image count")
    assert f.yours["n"] == 6 and f.yours["missing_ids"] == ["img06", "img07"]
    # 6 images, 2048 feature dimensions: FID on subsets is listed, but N is too small to estimate its bias
    assert set(f.yours["fid_by_n"]) == {"2", "3", "4", "5", "6"}
    assert f.effect is None and "too small to say anything" in f.yours["n_effect"]


def test_swapped_files_flag_the_pairing_with_the_ids(tmp_path, cache):
    root = make_case(tmp_path)
    a, b = root / "res" / "img01.png", root / "res" / "img02.png"
    tmp = root / "swap.png"
    shutil.move(a, tmp), shutil.move(b, a), shutil.move(tmp, b)
    r = run(root, cache)
    assert flagged(r) == ["pairing"]
    f = r.factor("pairing")
    assert f.yours["ids"] == ["img01", "img02"]
    assert f.yours["fits_other_gt"] == {"img01": "img02", "img02": "img01"}
    # the mis-paired results look worse than they are: PSNR lower, LPIPS higher
    assert f.effect["psnr"] < 0 and f.effect["lpips"] > 0
    assert "img01 -> img02" in f.fix
    # without masks the swap is still found, from whole-image thumbnails (and the missing masks are a deviation)
    r = D.diagnose(root / "res", root / "gt", str(root / "proto.toml"), smoke=True, cache_dir=cache, what_ifs=())
    assert flagged(r) == ["masks", "pairing"]
    assert r.factor("pairing").yours["fits_other_gt"] == {"img01": "img02", "img02": "img01"}


def test_small_masks_in_a_large_mask_set_flag_the_hole_ratios(tmp_path, cache):
    root = make_case(tmp_path, kind="mat-small")
    js = root / "masks" / "maskset.json"
    meta = json.loads(js.read_text())
    meta["generator"] = "mat-large"  # MAT#46: a set that calls itself large and holds small holes
    js.write_text(json.dumps(meta))
    assert MaskSet.open(root / "masks").meta["generator"] == "mat-large"
    r = run(root, cache, what_ifs=())
    assert flagged(r) == ["hole ratios"]
    f = r.factor("hole ratios")
    assert f.yours["mean"] < f.protocol["mean"] and f.yours["p"] < D.KS_ALPHA


def test_256px_images_flag_the_image_size(tmp_path, cache):
    r = run(make_case(tmp_path, s=256, protocol_res=512), cache, what_ifs=())
    assert flagged(r) == ["image size"]
    f = r.factor("image size")
    assert f.yours == {"256x256": N} and f.protocol["size"] == "512x512"
    assert "--res 512" in f.fix


def test_a_grayscale_image_flags_the_color_mode_exit_1(tmp_path, cache, capsys):
    root = make_case(tmp_path, gray=("img03",))
    r = run(root, cache, what_ifs=())
    assert flagged(r) == ["color mode"]
    f = r.factor("color mode")
    assert f.yours["gt"] == {"RGB": N - 1, "L": 1}
    assert "gt:img03 (L)" in f.fix and "results:img03 (L)" in f.fix
    rc = main(["doctor", "--results", str(root / "res"), "--gt", str(root / "gt"), "--masks", str(root / "masks"),
               "--protocol", str(root / "proto.toml"), "--smoke", "--device", "cpu", "--cache-dir", str(cache),
               "--what-if", "none"])
    out = capsys.readouterr().out
    assert rc == 1 and "1 of 9 factors deviate: color mode" in out


def test_a_pinned_mask_set_hash(tmp_path, cache):
    root = make_case(tmp_path)
    sha = MaskSet.open(root / "masks").sha256
    proto = root / "proto.toml"
    text = proto.read_text()
    pin = 'manifest = "manifest.json"\nmaskset_sha256 = '
    proto.write_text(text.replace('manifest = "manifest.json"', f'{pin}"{sha}"'))
    assert "mask-set hash" not in flagged(run(root, cache, what_ifs=()))
    proto.write_text(text.replace('manifest = "manifest.json"', f'{pin}"0"'))
    assert flagged(run(root, cache, what_ifs=())) == ["mask-set hash"]


def test_inverted_polarity_and_stated_conventions(clean, cache, tmp_path):
    # the masks as a plain folder read with the wrong polarity: known pixels are where the model filled
    r = D.diagnose(clean / "res", clean / "gt", str(clean / "proto.toml"), clean / "masks", mask_polarity="hole=255",
                   smoke=True, cache_dir=cache, what_ifs=("convention",), stated={"fid_convention": "torch-fidelity"})
    bad = flagged(r)
    assert "mask polarity" in bad and "fid covariance" in bad
    f = r.factor("fid covariance")
    assert f.yours == "torch-fidelity" and f.fix == "--fid-convention mat"


def test_published_row_verdict_and_table(clean, cache, capsys):
    rc = main(["doctor", "--results", str(clean / "res"), "--gt", str(clean / "gt"), "--masks", str(clean / "masks"),
               "--protocol", str(clean / "proto.toml"), "--smoke", "--device", "cpu", "--cache-dir", str(cache),
               "--what-if", "none", "--published-row", "M"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("SMOKE")
    assert "0 of 9 factors deviate" in out
    assert "gap to M: FID" in out


def test_unusable_input_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "res").mkdir()
    (tmp_path / "gt").mkdir()
    rc = main(["doctor", "--results", str(tmp_path / "res"), "--gt", str(tmp_path / "gt"), "--protocol",
               "mat-places512-large", "--smoke"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "match a ground truth" in err
    with pytest.raises(InputError, match="no such protocol file"):
        D.load_protocol(str(tmp_path / "nope.toml"))


def test_builtin_protocol_knows_its_dataset_ids():
    dp = D.load_protocol("mat-places512-large")
    assert dp.ids_source == "preset places365-val" and len(dp.ids) == 36500 and dp.policy == "mat-val"


def test_a_run_directory_job(clean, cache, tmp_path, capsys):
    lay = RunLayout(tmp_path / "run")
    job = "ds__ms__m__64"
    shutil.copytree(clean / "res", lay.outputs_dir(job))
    shutil.copy(clean / "res" / "img00.png", lay.output_image(job, "img00", 1))  # a second sample: not an extra id
    shutil.copytree(clean / "gt", lay.inputs_dir("ds", 64))
    shutil.copytree(clean / "masks", lay.maskset_dir("ms", 64))
    lay.job_dir(job).mkdir(parents=True)
    lay.state_file(job).write_text(json.dumps({"fingerprint": {"dataset": {"name": "ds"}, "maskset": {"name": "ms"},
                                                               "resolution": 64}}))
    assert D.job_inputs(lay.job_dir(job)) == (lay.outputs_dir(job), lay.inputs_dir("ds", 64),
                                               lay.maskset_dir("ms", 64), None)
    rc = main(["doctor", "--job", str(lay.job_dir(job)), "--protocol", str(clean / "proto.toml"), "--smoke",
               "--device", "cpu", "--cache-dir", str(cache), "--what-if", "none"])
    assert rc == 0, capsys.readouterr().out
    shutil.rmtree(lay.inputs_dir("ds", 64))
    assert main(["doctor", "--job", str(lay.job_dir(job)), "--protocol", str(clean / "proto.toml"), "--smoke"]) == 2
    assert "save_inputs" in capsys.readouterr().err


def test_exif_orientation_and_jpeg_ground_truths(tmp_path, cache):
    root = make_case(tmp_path)
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees on display
    p = root / "gt" / "img05.png"
    Image.open(p).save(p, exif=exif)
    r = run(root, cache, what_ifs=())
    assert flagged(r) == ["exif orientation"] and r.factor("exif orientation").yours == ["gt:img05 (6)"]
    # ground truths saved as JPEG (the results built from the decoded JPEGs, as a model reading them would)
    for g in sorted((root / "gt").glob("*.png")):
        Image.open(g).convert("RGB").save(g.with_suffix(".jpg"), quality=80)
        g.unlink()
        dec = np.asarray(Image.open(g.with_suffix(".jpg")).convert("RGB"))
        hole = MaskSet.open(root / "masks").hole(g.stem)
        out = dec.copy()
        out[hole] = dec[~hole].mean(0).astype(np.uint8)
        Image.fromarray(out).save(root / "res" / g.name)
    r = run(root, cache, what_ifs=("jpeg",))
    assert flagged(r) == ["file format"]
    f = r.factor("file format")
    assert f.yours["gt"] == {"JPEG q80": N} and "ground truths prepared losslessly" in f.fix
    assert f.effect is not None and set(f.effect) == {"fid", "psnr"}


def test_saved_report_and_its_html_page(clean, cache, tmp_path, capsys):
    saved = tmp_path / "doctor.json"
    args = ["doctor", "--results", str(clean / "res"), "--gt", str(clean / "gt"), "--masks", str(clean / "masks"),
            "--protocol", str(clean / "proto.toml"), "--smoke", "--device", "cpu", "--cache-dir", str(cache),
            "--what-if", "convention", "--published-row", "M", "--save", str(saved), "--json"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    doc = D.read_saved(saved)
    assert {k: doc[k] for k in ("protocol", "factors")} == printed  # the --json form, plus what a page needs
    assert doc["smoke"] is True and doc["n"] == N and doc["verdict"].startswith("SMOKE")
    assert main(args) == 2 and "does not overwrite" in capsys.readouterr().err
    out = tmp_path / "site"
    out.mkdir()
    page = render_doctor(doc, out, _env())
    html = page.read_text()
    assert page.name == DOCTOR_PAGE and 'id="smoke-banner"' in html
    rows = html.count("<tr><td>") + html.count('<tr class="bad"><td>')
    assert rows == len(doc["factors"]) and "fid covariance" in html and "Verdict:" in html
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a `matbench doctor --save` file"):
        D.read_saved(tmp_path / "bad.json")


def test_batch_size_and_precision_what_ifs(clean, cache, monkeypatch):
    monkeypatch.setattr(D, "PASS_SAMPLE", 2)  # 2 of the 8 pairs recomputed: the what-if's own cost
    # features stated to come from a bf16 network with float32 statistics (one diagnosis: the networks are slow)
    r = D.diagnose(clean / "res", clean / "gt", str(clean / "proto.toml"), clean / "masks", smoke=True,
                   cache_dir=cache, what_ifs=("statistics", "precision", "batch"),
                   stated={"precision": "bf16", "statistics": "float32"})
    fid0 = r.metrics["fid"]
    b = r.factor("batch size")
    # on the CPU an eval-mode network gives the same features at batch size 8 and 1: no effect, ok
    assert b.ok and b.yours["batch_size"] == 8 and b.yours["compared_with"] == 1
    assert abs(b.effect["fid"]) <= D.EQUAL_RTOL * fid0 and "2 pairs of 8" in b.cost
    s = r.factor("statistics precision")
    assert s.protocol == "float64" and s.effect["fid"] != 0.0  # float32 moments round differently
    assert abs(s.effect["fid"]) <= 1e-3 * fid0
    assert s.ok == (abs(s.effect["fid"]) <= D.EQUAL_RTOL * fid0)  # stated float32: ok only if it makes no difference
    p = r.factor("network precision")
    # bf16 moves the (smoke) FID far beyond 1e-5 relative: the stated bf16 network is a deviation
    assert abs(p.effect["fid"]) > D.EQUAL_RTOL * fid0 and "bf16" in p.cost and not p.ok
    assert p.fix.startswith("compute the features in float32")
    assert [f for f in flagged(r) if f != "statistics precision"] == ["network precision"]


@pytest.mark.parametrize(("n", "d"), [(6, 16), (40, 16)])  # the N x N form and the D x D one
@pytest.mark.parametrize("conv", ["mat", "torch-fidelity"])
def test_fd_in_dtype_against_fd(n, d, conv):
    real, fake = _gaussians(d, n, 1.0, 1.3, 4)
    ref = fd(real, fake, conv)
    assert fd_in_dtype(real, fake, conv, torch.float64) == pytest.approx(ref, rel=1e-7)
    v32 = fd_in_dtype(real, fake, conv, torch.float32)
    assert v32 == pytest.approx(ref, rel=1e-4)


def test_linear_fit_value_at_n_matches_the_intercept_at_infinity():
    sizes, vals = np.array([10, 20, 40, 80]), np.array([3.1, 2.4, 2.3, 2.05])
    fit = fdinf.linear_fit(sizes, vals, at=1e300)
    assert fit["at"] == pytest.approx(fit["intercept"]) and fit["at_se"] == pytest.approx(fit["se"])
    # at the mean of 1/N the line's standard error is s / sqrt(k), written out
    xm = np.mean(1.0 / sizes)
    fit = fdinf.linear_fit(sizes, vals, at=1.0 / xm)
    resid = vals - (fit["intercept"] + fit["slope"] / sizes)
    assert fit["at_se"] == pytest.approx(np.sqrt((resid ** 2).sum() / 2) / 2)


def test_report_runs_the_doctor_on_a_job_that_names_a_protocol(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    make_images(tmp_path / "imgs", 3, size=(32, 32))  # 3 pairs: few network passes
    spec = load_spec(write_spec(tmp_path, "r"))
    run_spec(spec, RunOptions(evaluator_factory=standin_factory, batch_loader=StandinBatch.load, progress=False))
    [m] = (tmp_path / "r" / "jobs").glob("*/metrics.json")
    rec = json.loads(m.read_text())
    rec["protocol"]["protocol"] = "mat-places512-large"  # what a run whose spec names the protocol records
    m.write_text(json.dumps(rec))
    site = tmp_path / "site"
    assert main(["report", str(tmp_path / "r"), "-o", str(site)]) == 0
    html = (site / DOCTOR_PAGE).read_text()
    assert "matbench report ran the doctor on job" in html and "image count" in html
    assert "36,500" in html or "36500" in html  # the protocol's image count, against the 3 of the run
    assert DOCTOR_PAGE in (site / "index.html").read_text()  # linked from the pages' headers
    # --no-doctor: no page; a job without saved outputs: a note, the report still written
    assert main(["report", str(tmp_path / "r"), "-o", str(tmp_path / "s2"), "--no-doctor"]) == 0
    assert not (tmp_path / "s2" / DOCTOR_PAGE).exists()
    shutil.rmtree(tmp_path / "r" / "outputs")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "r"), "-o", str(tmp_path / "s3")]) == 0
    assert "skipped" in capsys.readouterr().out and not (tmp_path / "s3" / DOCTOR_PAGE).exists()
    # a saved doctor report wins over running it
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps({"schema": D.SAVE_SCHEMA, "protocol": "x", "title": "t", "factors": [], "n": 2,
                                 "metrics": {}, "costs": {}, "verdict": None, "seconds": 1.5}))
    assert main(["report", str(tmp_path / "r"), "-o", str(tmp_path / "s4"), "--doctor", str(saved)]) == 0
    assert "From a saved doctor report (1.5 s)" in (tmp_path / "s4" / DOCTOR_PAGE).read_text()
