"""Protocol presets (published numbers as in their sources, refusal naming the field) and reference
statistics files (FD against a file equals FD against the features; mismatched files are refused)."""

from __future__ import annotations

import numpy as np
import pytest

from matbench import protocols as P
from matbench.cli import main
from matbench.errors import InputError, SpecError
from matbench.features import refstats
from matbench.metrics.fd import fd


def test_presets_exist_with_sources_and_readme_numbers():
    for name in ("mat-places512-large", "mat-places512-small", "mat-celebahq512", "lama-places512-thick",
                 "lama-places512-medium", "lama-places512-thin", "comodgan-places512"):
        p = P.get(name)
        assert p.sources and p.require["resolution"] == 512 and "deviation" in p.description
    # MAT README (News 2022.06.21), large masks, MAT 8M row
    assert P.get("mat-places512-large").published["MAT (8M)"] == {"fid": 1.96, "pids": 0.2342, "uids": 0.3834}
    assert P.get("mat-places512-small").published["LaMa-Big (4.5M)"]["fid"] == 0.99
    with pytest.raises(SpecError, match="unknown protocol 'x'"):
        P.get("x")


def test_mismatched_run_is_refused_naming_the_field():
    run = {"resolution": 512, "n_images": 36500, "fid_convention": "torch-fidelity",
           "feature_extractor": "inception-v3-compat", "resize": "legacy-tf", "mask_kind": "mat-large"}
    with pytest.raises(SpecError, match="fid_convention is 'torch-fidelity', protocol mat-places512-large needs 'mat'"):
        P.check("mat-places512-large", run)
    run["fid_convention"] = "mat"
    assert P.check("mat-places512-large", run).name == "mat-places512-large"
    with pytest.raises(SpecError, match="feature_extractor is 'inception-v3-compat'.*'pt-inception'"):
        P.check("lama-places512-thin", {"feature_extractor": "inception-v3-compat"})


def test_compare_difference_and_interval():
    c = P.compare(1.96, 2.10, 1.90, 2.30)
    assert c["diff"] == pytest.approx(0.14) and c["inside_ci"] is True
    assert P.compare(1.96, 2.5, 2.2, 2.8)["inside_ci"] is False
    assert P.compare(1.96, 2.5, None, None)["inside_ci"] is None
    # a zero-width interval (all resamples equal) is no evidence of agreement, even when it sits on the value
    assert P.compare(0.0, 0.0, 0.0, 0.0)["inside_ci"] is None
    assert P.compare(0.0, 0.0, 0.0, 1e-9)["inside_ci"] is True


def test_protocols_command_lists_presets(capsys):
    assert main(["protocols", "mat-places512-large"]) == 0
    out = capsys.readouterr().out
    assert "1.96" in out and "23.42" in out and "fenglinglwb/MAT" in out


def test_refstats_roundtrip_fd_and_refusal(tmp_path):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(50, 6)), rng.normal(size=(40, 6)) + 0.3
    st = refstats.stats_from_features(real, {"extractor": "clip-vitb32", "weights_sha256": "a" * 64,
                                             "resize": "legacy-tf", "smoke": "false"})
    path = refstats.save(st, tmp_path / "ref.npz")
    back = refstats.load(path)
    assert back.n == 50 and back.meta["extractor"] == "clip-vitb32"
    for conv in ("mat", "torch-fidelity"):
        assert back.fd(fake, conv) == pytest.approx(fd(real, fake, conv), rel=1e-10)
    back.check("clip-vitb32", "a" * 64, "legacy-tf")
    with pytest.raises(InputError, match="ref.npz: reference statistics have resize 'legacy-tf', these features "
                                         "have 'clean'"):
        back.check("clip-vitb32", "a" * 64, "clean")
    with pytest.raises(InputError, match="weights_sha256"):
        back.check("clip-vitb32", "b" * 64, "legacy-tf")
    with pytest.raises(InputError, match="extractor"):
        back.check("dinov2-vitl14", "a" * 64, "legacy-tf")
    np.savez(tmp_path / "other.npz", mu=np.zeros(3))
    with pytest.raises(InputError, match="other.npz: not a matbench reference statistics file"):
        refstats.load(tmp_path / "other.npz")


def test_stats_make_command_smoke_records_identity(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "ds").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ds" / f"{i}.png")
    out = tmp_path / "ref.npz"
    assert main(["stats", "make", str(tmp_path / "ds"), "--extractor", "clip-vitb32", "--smoke", "--resolution",
                 "64", "--no-cache", "--device", "cpu", "-o", str(out)]) == 0
    st = refstats.load(out)
    assert st.n == 3 and st.mu.shape == (512,) and st.meta["smoke"] == "true"
    assert st.meta["resize"] == "legacy-tf" and st.meta["weights_sha256"].startswith("smoke-")
    assert len(st.meta["dataset_manifest_sha256"]) == 64
    assert "SMOKE" in capsys.readouterr().out
