"""Silent wrong numbers, data side (issue 21): statistics that record and check their preprocessing, statistics
validated on load, datasets never padded or upscaled unless asked, symlinked subfolders followed, LPIPS bounded,
corrupt feature-cache entries and NaN batch records recomputed."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from runner_helpers import make_images, standin_opts

from matbench import features as F
from matbench.cli import main
from matbench.data.datasets import Dataset
from matbench.data.preprocess import enlargement, prepare
from matbench.errors import InputError, SpecError
from matbench.evaluate import BatchResult
from matbench.features import refstats
from matbench.features.cache import FeatureCache, extract_cached
from matbench.metrics import lpips as lpips_mod
from matbench.metrics.fd import fd
from matbench.runner import dry_run, run
from matbench.runner.state import load_finished
from matbench.spec import load_spec


def _images(d: Path, n: int, size: int, seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    return d


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --------------------------------------------------------------------------- 1. statistics record their preprocessing

STATS = ["--extractor", "clip-vitb32", "--smoke", "--no-cache", "--device", "cpu"]


def test_stats_make_refuses_to_pad_a_small_set_by_default(tmp_path: Path, capsys) -> None:
    ds = _images(tmp_path / "ds", 3, 32)
    assert main(["stats", "make", str(ds), *STATS, "-o", str(tmp_path / "ref.npz")]) == 2  # default 512 px
    err = _one_line(capsys)
    assert "3 of 3 images are smaller than 512x512" in err and "reflect-padded into a mosaic" in err
    assert "--resolution 32" in err and "--allow-upscale" in err
    assert not (tmp_path / "ref.npz").exists()


def test_same_images_against_their_own_statistics_give_fd_zero(tmp_path: Path) -> None:
    ds = _images(tmp_path / "ds", 4, 32)
    ref = tmp_path / "ref.npz"
    assert main(["stats", "make", str(ds), *STATS, "--resolution", "32", "-o", str(ref)]) == 0
    assert refstats.load(ref).meta["enlarged"] == "0"
    assert main(["stats", "fd", str(ds), "--ref", str(ref), "--smoke", "--device", "cpu", "--bootstrap", "0",
                 "-o", str(tmp_path / "fd.json")]) == 0
    assert abs(json.loads((tmp_path / "fd.json").read_text())["fd"]) < 1e-3


def test_stats_fd_refuses_images_of_another_size_naming_the_difference(tmp_path: Path, capsys) -> None:
    ds = _images(tmp_path / "ds", 3, 32)
    ref = tmp_path / "ref.npz"
    assert main(["stats", "make", str(ds), *STATS, "--resolution", "64", "--allow-upscale", "-o", str(ref)]) == 0
    st = refstats.load(ref)
    assert st.meta["enlarged"] == "3" and st.meta["resolution"] == "64" and st.meta["preprocess"] == "mat-val"
    capsys.readouterr()
    assert main(["stats", "fd", str(ds), "--ref", str(ref), "--smoke", "--device", "cpu", "--bootstrap", "0"]) == 2
    err = _one_line(capsys)
    assert "im0.png: 32x32 image" in err and "ref.npz was made from images prepared at 64x64 (mat-val)" in err


# --------------------------------------------------------------------------- 2. statistics validated on load


def _stats_file(tmp_path: Path, edit) -> Path:
    rng = np.random.default_rng(0)
    st = refstats.stats_from_features(rng.normal(size=(30, 5)), {"extractor": "clip-vitb32", "resize": "legacy-tf"})
    edit(st)
    return refstats.save(st, tmp_path / "ref.npz")


@pytest.mark.parametrize(("edit", "phrase"), [
    (lambda s: s.mu.__setitem__(2, np.nan), "mu has 1 non-finite value(s) (NaN)"),
    (lambda s: s.sigma.__setitem__((1, 1), np.inf), "sigma has 1 non-finite value(s) (inf)"),
    (lambda s: setattr(s, "sigma", -s.sigma), "sigma is not positive semi-definite"),
    (lambda s: s.sigma.__setitem__((0, 1), s.sigma[0, 1] + 0.5), "sigma is not symmetric"),
])
def test_invalid_statistics_are_refused_on_load(tmp_path: Path, capsys, edit, phrase: str) -> None:
    path = _stats_file(tmp_path, edit)
    with pytest.raises(InputError, match="ref.npz: invalid reference statistics: " + phrase.replace("(", r"\(")
                       .replace(")", r"\)")):
        refstats.load(path)
    _images(tmp_path / "gen", 2, 16)
    assert main(["stats", "fd", str(tmp_path / "gen"), "--ref", str(path), "--smoke", "--device", "cpu"]) == 2
    assert phrase in _one_line(capsys)


def test_rank_deficient_covariance_of_few_samples_is_valid(tmp_path: Path) -> None:
    # 4 samples in 20 dimensions: rank 3, eigenvalues zero up to rounding (some slightly negative)
    feats = np.random.default_rng(1).normal(size=(4, 20))
    st = refstats.stats_from_features(feats, {"extractor": "clip-vitb32"})
    assert np.linalg.eigvalsh(st.sigma)[0] <= 1e-12
    back = refstats.load(refstats.save(st, tmp_path / "ref.npz"))
    other = np.random.default_rng(2).normal(size=(6, 20))
    assert back.fd(other, "torch-fidelity") == pytest.approx(fd(feats, other, "torch-fidelity"), rel=1e-8)


# --------------------------------------------------------------------------- 3. no padding / upscaling unless asked


def test_enlargement_names_what_prepare_does() -> None:
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = prepare(img, 64, "mat-val")
    # the "mosaic": BORDER_REFLECT repeats the edge pixel, so the padding is the image mirrored
    assert np.array_equal(out[32:, :32], img[::-1]) and np.array_equal(out[:32, 32:], img[:, ::-1])
    assert enlargement(32, 32, 64, "mat-val") == "reflect-padded into a mosaic"
    assert enlargement(40, 48, 64, "mat-val") == "reflect-padded"
    assert enlargement(40, 48, 64, "resize-crop") == "upscaled"
    assert enlargement(64, 80, 64, "mat-val") is None and enlargement(64, 80, 64, "resize-crop") is None


SPEC = """
name = "up"
output = "run"
batch_size = 4
resolutions = [32, 64]
metrics = ["l1"]
smoke = true
[[datasets]]
name = "tiny"
path = "imgs"
{extra}
[[masksets]]
kind = "mat-large"
[[models]]
name = "mean-fill"
"""


def test_run_refuses_to_pad_small_images_unless_the_spec_asks(tmp_path: Path, capsys) -> None:
    make_images(tmp_path / "imgs", 3)  # 40x48: fine at 32, padded at 64
    p = tmp_path / "spec.toml"
    p.write_text(SPEC.format(extra=""))
    spec = load_spec(p)
    want = "datasets[tiny]: 3 of 3 images are smaller than 64x64 and would be reflect-padded by the mat-val policy"
    with pytest.raises(SpecError, match=r"datasets\[tiny\]: 3 of 3 images are smaller than 64x64"):
        dry_run(spec)
    with pytest.raises(SpecError, match="allow_upscale = true"):
        run(spec, standin_opts())
    assert not (spec.output / "jobs").exists()  # refused before any job
    assert main(["run", "--dry-run", str(p)]) == 2
    assert want in _one_line(capsys)

    p.write_text(SPEC.format(extra="allow_upscale = true"))
    spec = load_spec(p)
    assert spec.to_json()["datasets"][0]["allow_upscale"] is True
    plan = dry_run(spec)
    assert "enlarged images:" in plan and want in plan and "(allowed: allow_upscale = true)" in plan
    run(spec, standin_opts())
    assert want in (spec.output / "run.log").read_text()


def test_images_large_enough_need_no_permission(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", 2, size=(64, 70))
    p = tmp_path / "spec.toml"
    p.write_text(SPEC.format(extra=""))
    assert "enlarged" not in dry_run(load_spec(p))


# --------------------------------------------------------------------------- 4. symlinked subfolders


def _tree_with_links(root: Path) -> Path:
    _images(root / "top", 2, 16)
    _images(root / "elsewhere", 3, 16, seed=1)
    (root / "top" / "linked").symlink_to(root / "elsewhere", target_is_directory=True)
    (root / "top" / "linked" / "loop").symlink_to(root / "top", target_is_directory=True)  # back to the root
    return root / "top"


def test_symlinked_subfolders_are_listed_once_with_a_loop_guard(tmp_path: Path) -> None:
    top = _tree_with_links(tmp_path)
    want = ["im0", "im1", "linked/im0", "linked/im1", "linked/im2"]
    assert sorted(F.list_images(top)) == want
    assert Dataset.open(top).ids == want


def test_eval_of_a_symlinked_tree_scores_every_pair(tmp_path: Path) -> None:
    top = _tree_with_links(tmp_path)
    assert main(["eval", "--results", str(top), "--gt", str(top), "--metrics", "l1", "--bootstrap", "0",
                 "--no-progress", "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]["l1"]["n"] == 5


# --------------------------------------------------------------------------- 5. LPIPS size guard


def test_lpips_refuses_images_over_its_pixel_limit(monkeypatch) -> None:
    assert lpips_mod.MAX_PIXELS == 4096 * 4096
    m = lpips_mod.LPIPS("alex", smoke=True)
    monkeypatch.setattr(lpips_mod, "MAX_PIXELS", 40 * 40)
    ok = torch.zeros((1, 3, 40, 40), dtype=torch.uint8)
    assert m(ok, ok).shape == (1,)
    big = torch.zeros((2, 3, 40, 41), dtype=torch.uint8)
    with pytest.raises(InputError, match=r"^photo7: 41x40 is over the LPIPS limit of 1,600 pixels .*resize"):
        m(big, big, ["photo7", "photo8"])


# --------------------------------------------------------------------------- 6. feature cache and batch records


def _extractor() -> tuple[F.FeatureExtractor, list[int]]:
    seen: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return x.float().mean(dim=(2, 3)) / 7.0 + 0.1

    return F.FeatureExtractor("count", forward, 3, "a" * 64, smoke=False), seen


def test_corrupt_cache_entries_are_dropped_and_recomputed(tmp_path: Path, caplog) -> None:
    ext, seen = _extractor()
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    cache = FeatureCache(tmp_path / "c")
    want = extract_cached(ext, x, cache)
    hashes = [F.image_sha256(im) for im in x]
    with sqlite3.connect(cache.path) as con:  # truncate one blob, NaN another
        (blob,) = con.execute("SELECT data FROM features WHERE image=?", (hashes[0],)).fetchone()
        con.execute("UPDATE features SET data=? WHERE image=?", (blob[:5], hashes[0]))
        con.execute("UPDATE features SET data=?, dtype=? WHERE image=?",
                    (np.full(3, np.nan).tobytes(), "<f8", hashes[1]))
    con.close()
    seen.clear()
    with caplog.at_level(logging.WARNING, logger="matbench"):
        got = extract_cached(ext, x, FeatureCache(tmp_path / "c"))
    assert np.array_equal(got, want) and seen == [2]  # only the two corrupt entries went through the network
    msg = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{cache.path}: 2 corrupt feature cache entries (NaN/inf, truncated) dropped; recomputing them" in msg
    seen.clear()
    assert np.array_equal(extract_cached(ext, x, cache), want) and seen == []  # stored again, valid


def test_nan_features_are_never_cached(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    cache.put_many("k", ["h1", "h2"], np.array([[1.0, np.nan], [1.0, 2.0]]))
    assert cache.count("k") == 1 and set(cache.get_many("k", ["h1", "h2"])) == {"h2"}


def test_batch_record_with_nan_features_is_discarded_and_recomputed(tmp_path: Path, caplog) -> None:
    path = tmp_path / "jobs" / "j" / "batches" / "0.npz"
    path.parent.mkdir(parents=True)
    feats = np.ones((2, 4))
    BatchResult(["a", "b"], [{"id": "a"}, {"id": "b"}], {"inception_fake": feats}).save(path)
    assert load_finished(tmp_path, "j", 0, False, BatchResult.load) is not None  # a valid record is kept
    feats[1, 2] = np.nan
    BatchResult(["a", "b"], [{"id": "a"}, {"id": "b"}], {"inception_fake": feats}).save(path)
    with caplog.at_level(logging.WARNING, logger="matbench"):
        assert load_finished(tmp_path, "j", 0, False, BatchResult.load) is None
    assert not path.exists()
    assert "corrupt batch record (ValueError: NaN/inf features (inception_fake))" in caplog.text
