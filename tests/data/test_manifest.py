"""Manifests: build, write, verify (missing / extra / changed), CLI exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matbench.cli import main
from matbench.data.datasets import Dataset
from matbench.data.manifest import build_manifest, verify_manifest, write_manifest
from matbench.errors import InputError


@pytest.fixture()
def ds_dir(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "sub/c.png", "d.jpg"):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(p)
    return root


def test_manifest_records_every_file(ds_dir):
    m = build_manifest(Dataset.open(ds_dir))
    assert [f["id"] for f in m["files"]] == ["a", "b", "d", "sub/c"]
    for f in m["files"]:
        data = (ds_dir / f["file"]).read_bytes()
        assert f["bytes"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
    canonical = json.dumps({"files": m["files"], "format": m["format"]}, sort_keys=True, separators=(",", ":"))
    assert m["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert Dataset.open(ds_dir).manifest_sha256() == m["sha256"]


def test_verify_clean(ds_dir, tmp_path):
    write_manifest(Dataset.open(ds_dir), tmp_path / "m.json")
    r = verify_manifest(Dataset.open(ds_dir), tmp_path / "m.json")
    assert r.ok and r.checked == 4


def test_verify_catches_changed_missing_extra(ds_dir, tmp_path):
    write_manifest(Dataset.open(ds_dir), tmp_path / "m.json")
    # changed: same size, one byte different (so only the sha256 can tell)
    data = bytearray((ds_dir / "b.png").read_bytes())
    data[-20] ^= 0x01
    (ds_dir / "b.png").write_bytes(bytes(data))
    (ds_dir / "sub" / "c.png").unlink()  # missing
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(ds_dir / "e.png")  # extra
    r = verify_manifest(Dataset.open(ds_dir), tmp_path / "m.json")
    assert not r.ok
    assert (r.missing, r.extra, r.changed) == (["sub/c"], ["e"], ["b"])


def test_cli_manifest_and_verify(ds_dir, tmp_path, capsys):
    mj = tmp_path / "m.json"
    assert main(["data", "manifest", str(ds_dir), "-o", str(mj)]) == 0
    assert json.loads(mj.read_text())["count"] == 4
    assert main(["data", "verify", str(ds_dir), str(mj)]) == 0
    capsys.readouterr()
    (ds_dir / "a.png").write_bytes((ds_dir / "a.png").read_bytes() + b"x")
    (ds_dir / "d.jpg").unlink()
    (ds_dir / "new.png").write_bytes((ds_dir / "b.png").read_bytes())
    assert main(["data", "verify", str(ds_dir), str(mj)]) == 1
    cap = capsys.readouterr()
    assert cap.out.splitlines()[:3] == ["missing: d", "extra: new", "changed: a"]
    assert "1 missing, 1 extra, 1 changed" in cap.err


def test_bad_manifest_files(ds_dir, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        verify_manifest(Dataset.open(ds_dir), tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable manifest JSON"):
        verify_manifest(Dataset.open(ds_dir), tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"files": []}')
    with pytest.raises(InputError, match="not a matbench manifest"):
        verify_manifest(Dataset.open(ds_dir), tmp_path / "y.json")
