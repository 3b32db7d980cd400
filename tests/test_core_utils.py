"""Atomic writes, image decoding errors, per-image seeding, result record round trips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matbench.errors import InputError
from matbench.io import atomic_path, read_image, write_json_atomic
from matbench.results import MetricValue, ResultRecord, find_records, read_record, write_record
from matbench.seeding import derive_seed, randn


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]  # no temporary file left behind


def test_read_image_gray_and_alpha(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 5), 9, np.uint8), "L").save(tmp_path / "g.png")
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (4, 5, 3) and (g == 9).all()
    a = read_image(tmp_path / "a.png")
    assert a.shape == (4, 5, 3) and (a[..., 0] == 200).all() and (a[..., 1:] == 0).all()


def test_read_image_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"broken\.png: cannot decode image"):
        read_image(bad)
    with pytest.raises(InputError, match=r"missing\.png: cannot read"):
        read_image(tmp_path / "missing.png")


def test_seeds_depend_on_id_and_purpose_only() -> None:
    assert derive_seed(0, "a/b", "z") == derive_seed(0, "a/b", "z")
    assert len({derive_seed(0, "a", "z"), derive_seed(1, "a", "z"), derive_seed(0, "b", "z"),
                derive_seed(0, "a", "drop")}) == 4
    assert 0 <= derive_seed(123, "x") < 2**63
    np.testing.assert_array_equal(randn((3,), 5, "img"), randn((3,), 5, "img"))


def test_result_record_round_trip(tmp_path: Path) -> None:
    rec = ResultRecord(
        job={"dataset": "d", "maskset": "m", "model": "mean-fill", "resolution": 256, "sample": 0},
        metrics={"fid": MetricValue(12.5, 11.0, 14.0, n=10, convention="mat")},
        bins=[{"lo": 0.0, "hi": 0.1, "n": 3, "metrics": {"l1": MetricValue(0.1, n=3)}}],
        protocol={"n_images": 10}, provenance={"device": "cpu"}, smoke=True,
    )
    write_record(tmp_path / "job", rec)
    back = read_record(tmp_path / "job")
    assert back.to_json() == rec.to_json()
    assert [r.job["model"] for r in find_records([tmp_path])] == ["mean-fill"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="contains no metrics.json"):
        find_records([tmp_path / "empty"])


def test_weights_find_accepts_unpacked_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matbench import weights

    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    assert weights.status("big-lama") == ("missing", None)
    (tmp_path / "big-lama" / "models").mkdir(parents=True)
    assert weights.status("big-lama") == ("found", tmp_path / "big-lama")
    assert weights.resolve("big-lama", allow_download=False) == tmp_path / "big-lama"
