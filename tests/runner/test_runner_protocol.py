"""`matbench run` with a published protocol and `save_features` in the spec: a differing spec is refused before
anything runs (naming the key), a following run carries the published values beside ours, features.npz holds
the features behind the reported numbers, and reruns refinalize from the batch records instead of recomputing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runner_helpers import make_images
from spec_helpers import write_spec

from matbench import protocols as P
from matbench.cli import main
from matbench.errors import SpecError
from matbench.metrics.fd import fd
from matbench.runner import RunOptions, dry_run, run
from matbench.spec import load_spec

BASE = {"name": "p", "output": "run", "seed": 3, "resolutions": [512], "metrics": ["fid", "pids", "uids", "l1"],
        "n_bootstrap": 20,
        # 48x40 images at 512: these tests are about the protocol checks
        "datasets": [{"name": "tiny", "path": "imgs", "allow_upscale": True}]}


def write(tmp: Path, model: dict | None = None, maskset: str = "mat-large", **keys: object) -> Path:
    """tmp/spec.toml: BASE with `keys`, one mask set of `maskset` and the model mean-fill with `model` keys."""
    return write_spec(tmp, "spec", **{**BASE, **keys}, masksets=[{"kind": maskset}],
                      models=[{"name": "mean-fill", **(model or {})}])


@pytest.fixture()
def tmp(tmp_path: Path) -> Path:
    make_images(tmp_path / "imgs", 6)
    return tmp_path


@pytest.mark.parametrize(("change", "key", "phrase"), [
    ('fid_convention = "torch-fidelity"', "fid_convention", "fid_convention is 'torch-fidelity', protocol "
                                                            "mat-places512-large needs 'mat'"),
    ('inception = "pt-inception"', "inception", "feature_extractor is 'pt-inception'"),
    ("resolutions = [256]", "resolutions", "resolution is 256, protocol mat-places512-large needs 512"),
])
def test_differing_spec_refused_at_validation_naming_the_key(tmp: Path, change: str, key: str, phrase: str) -> None:
    write(tmp, protocol="mat-places512-large", **tomllib.loads(change))
    with pytest.raises(SpecError) as e:
        load_spec(tmp / "spec.toml")
    assert f"{key}: {phrase}" in str(e.value) and "does not follow protocol mat-places512-large" in str(e.value)


def test_mask_kind_row_and_unknown_protocol_refused(tmp: Path) -> None:
    write(tmp, {"published_row": "MAT"}, "mat-small", protocol="mat-places512-large")
    with pytest.raises(SpecError) as e:
        load_spec(tmp / "spec.toml")
    msg = str(e.value)
    assert "masksets[0].kind: mask_kind is 'mat-small', protocol mat-places512-large needs 'mat-large'" in msg
    assert "models[0].published_row: 'MAT' is not published by mat-places512-large ('MAT (8M)'" in msg
    write(tmp, protocol="mat-place")
    with pytest.raises(SpecError, match="protocol: unknown protocol 'mat-place'"):
        load_spec(tmp / "spec.toml")
    write(tmp, {"published_row": "MAT (8M)"})
    with pytest.raises(SpecError, match=r"models\[0\]\.published_row: set protocol"):
        load_spec(tmp / "spec.toml")


def test_image_count_refused_by_dry_run_and_run_before_any_job(tmp: Path, capsys) -> None:
    write(tmp, {"published_row": "MAT (8M)"}, protocol="mat-places512-large")
    spec = load_spec(tmp / "spec.toml")  # everything parsing can know follows the protocol
    with pytest.raises(SpecError, match=r"datasets\[0\]: n_images is 6, protocol mat-places512-large needs 36500"):
        dry_run(spec)
    assert main(["run", str(tmp / "spec.toml"), "--no-progress"]) == 2
    assert "datasets[0]: n_images is 6" in capsys.readouterr().err
    assert not (spec.output / "jobs").exists()  # refused before any job started


TINY = P.Protocol(name="tiny-test", title="test protocol",
                  require={"resolution": 64, "n_images": 6, "fid_convention": "mat", "resize": "legacy-tf",
                           "feature_extractor": ["inception-v3-compat", "inception-nvidia"], "mask_kind": "mat-large"},
                  published={"Mean fill (paper)": {"fid": 250.0, "pids": 0.0, "l1": 0.125},
                             "Other": {"fid": 1.0}})


@pytest.fixture()
def tiny_protocol(monkeypatch):
    known = dict(P._load())
    monkeypatch.setattr(P, "_load", lambda: {**known, TINY.name: TINY})


def test_protocol_run_publishes_values_and_saves_features(tmp: Path, tiny_protocol, capsys) -> None:
    write(tmp, {"published_row": "Mean fill (paper)"}, protocol="tiny-test", save_features=True, resolutions=[64])
    spec = load_spec(tmp / "spec.toml")
    assert "protocol: tiny-test (conventions checked; published rows: {'mean-fill': 'Mean fill (paper)'})" \
        in dry_run(spec)
    run(spec, RunOptions(progress=False))
    jd = spec.output / "jobs" / "tiny__mat-large__mean-fill__64"
    rec = json.loads((jd / "metrics.json").read_text())
    assert rec["protocol"]["protocol"] == "tiny-test" and rec["protocol"]["published_row"] == "Mean fill (paper)"
    assert rec["protocol"]["mask_kind"] == "mat-large" and rec["protocol"]["n_images"] == 6
    for m, published in (("fid", 250.0), ("pids", 0.0), ("l1", 0.125)):
        mv = rec["metrics"][m]
        pub = mv["extra"]["published"]
        assert pub["value"] == published and pub["diff"] == pytest.approx(mv["value"] - published, abs=1e-12)
        lo, hi = mv["ci_low"], mv["ci_high"]
        assert pub["inside_ci"] is (None if hi <= lo else bool(lo <= published <= hi))
    assert "published" not in (rec["metrics"]["uids"].get("extra") or {})  # the row publishes no U-IDS

    # features.npz: float32 rows in per_image.csv order that reproduce the reported FID
    ids = pd.read_csv(jd / "per_image.csv")["id"].tolist()
    z = np.load(jd / "features.npz")
    assert sorted(z.files) == ["inception-v3-compat.fake", "inception-v3-compat.real"]
    real, fake = z["inception-v3-compat.real"], z["inception-v3-compat.fake"]
    assert real.dtype == np.float32 and real.shape == (len(ids), 2048) == fake.shape
    assert fd(real.astype(np.float64), fake.astype(np.float64), "mat") == pytest.approx(
        rec["metrics"]["fid"]["value"], rel=1e-4)
    batch1 = np.load(jd / "batches" / "1.npz", allow_pickle=True)  # batch 1 = images 3..5, in that order
    got = {k for k in batch1.files if "inception" in k and "real" in k}
    assert got, batch1.files
    np.testing.assert_allclose(batch1[sorted(got)[0]], real[3:6], rtol=1e-6)

    assert main(["table", str(spec.output), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "Published values beside ours" in out and "tiny-test (Mean fill (paper))" in out
    assert main(["report", str(spec.output), "-o", str(tmp / "report")]) == 0
    html = (tmp / "report" / "index.html").read_text()
    assert "Published values beside ours" in html and "Mean fill (paper)" in html

    # rerun without features.npz: finalized again from the batch records, nothing recomputed
    (jd / "features.npz").unlink()
    run(spec, RunOptions(progress=False))
    again = json.loads((jd / "metrics.json").read_text())
    assert again["provenance"]["batches"]["computed"] == [] and again["provenance"]["batches"]["resumed"] == 2
    assert again["metrics"]["fid"]["value"] == rec["metrics"]["fid"]["value"]
    np.testing.assert_array_equal(np.load(jd / "features.npz")["inception-v3-compat.fake"], fake)

    # the protocol dropped from the spec: the record no longer claims it
    write(tmp, save_features=True, resolutions=[64])
    run(load_spec(tmp / "spec.toml"), RunOptions(progress=False))
    plain = json.loads((jd / "metrics.json").read_text())
    assert "protocol" not in plain["protocol"] and "published_row" not in plain["protocol"]
    assert "published" not in (plain["metrics"]["fid"].get("extra") or {})


def test_changed_inception_backend_is_a_different_configuration(tmp: Path) -> None:
    write(tmp, resolutions=[32], metrics=["l1"])
    run(load_spec(tmp / "spec.toml"), RunOptions(progress=False))
    write(tmp, resolutions=[32], metrics=["l1"], inception="pt-inception")
    with pytest.raises(SpecError, match="inception changed"):
        run(load_spec(tmp / "spec.toml"), RunOptions(progress=False))


def test_example_spec_follows_its_protocol() -> None:
    example = Path(__file__).parents[2] / "examples" / "specs" / "mat-places512-large.toml"
    spec = load_spec(example, check_paths=False)
    assert spec.protocol == "mat-places512-large" and spec.save_features
    assert [m.published_row for m in spec.models] == ["MAT (8M)", "CoModGAN (8M)", "LaMa-Big (4.5M)"]
    assert spec.to_json()["protocol"] == "mat-places512-large"
