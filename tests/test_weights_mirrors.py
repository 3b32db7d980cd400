"""Hugging Face mirror sources (`matbench weights fetch NAME --source hf`) against a fake local hub cache:
huggingface_hub itself resolves the file offline; the sha256 is checked when pinned, recorded otherwise."""

from __future__ import annotations

import hashlib
import json

import pytest

from matbench import weights as W
from matbench.cli import main
from matbench.errors import WeightsError

hf = pytest.importorskip("huggingface_hub")
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def fake_hub(tmp_path, monkeypatch):
    """An HF cache holding one snapshot per repo we write into, offline; empty matbench weight folders."""
    import huggingface_hub.constants as C

    cache = tmp_path / "hf"
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    wdir, hub = tmp_path / "wdir", tmp_path / "torchhub" / "checkpoints"
    wdir.mkdir()
    hub.mkdir(parents=True)
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(wdir))
    monkeypatch.setattr(W, "hub_checkpoints_dir", lambda: hub)

    def put(repo: str, filename: str, content: bytes) -> None:
        base = cache / ("models--" + repo.replace("/", "--"))
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / "main").write_text(REV)
        f = base / "snapshots" / REV / filename
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content)

    return put, wdir


def _entry(**kw) -> W.WeightsFile:
    base = dict(name="test-mirror", filename="model.pt", url=None, manual="a browser link", used_by="test",
                hf_repo="someone/model-mirror", hf_filename="sub/model.pt")
    base.update(kw)
    e = W.WeightsFile(**base)
    W._REGISTRY[e.name] = e
    return e


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    W._REGISTRY.pop("test-mirror", None)


def test_fetch_records_hash_then_checks_it(fake_hub, capsys):
    put, wdir = fake_hub
    e = _entry()
    assert W.find(e.name) is None
    put(e.hf_repo, e.hf_filename, b"weights v1")
    digest = hashlib.sha256(b"weights v1").hexdigest()
    assert main(["weights", "fetch", e.name, "--source", "hf"]) == 0
    out = capsys.readouterr().out
    assert "recorded" in out and digest in out
    rec = json.loads((wdir / "matbench-recorded-sha256.json").read_text())
    assert rec[e.name] == {"sha256": digest, "source": "hf:someone/model-mirror/sub/model.pt"}
    found = W.find(e.name)  # the HF cache is now a place weights are found, without network
    assert found is not None and found.read_bytes() == b"weights v1"
    assert W.verify(e, found) == digest
    assert main(["weights", "fetch", e.name, "--source", "hf"]) == 0  # again: checked against the record
    assert "matches the value recorded" in capsys.readouterr().out
    # the mirror now serves different bytes: refused against the recorded hash
    put(e.hf_repo, e.hf_filename, b"weights v2")
    with pytest.raises(WeightsError, match="recorded on first download"):
        W.fetch_hf(e)
    with pytest.raises(WeightsError, match="recorded on first download"):
        W.verify(e, W.find(e.name))


def test_pinned_hash_is_checked(fake_hub):
    put, _ = fake_hub
    e = _entry(sha256=hashlib.sha256(b"good").hexdigest())
    put(e.hf_repo, e.hf_filename, b"bad")
    with pytest.raises(WeightsError, match="pinned"):
        W.fetch_hf(e)
    put(e.hf_repo, e.hf_filename, b"good")
    path, note = W.fetch_hf(e)
    assert path.read_bytes() == b"good" and "pinned" in note


def test_missing_mirror_file_and_no_mirror(fake_hub, capsys):
    e = _entry()
    assert main(["weights", "fetch", e.name, "--source", "hf"]) == 2  # offline, not in the cache
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hf:someone/model-mirror/sub/model.pt" in err[0]
    _entry(hf_repo=None)
    assert main(["weights", "fetch", "test-mirror", "--source", "hf"]) == 2
    assert "no Hugging Face mirror" in capsys.readouterr().err


def test_registered_mirrors():
    assert (W.get("mat-places512-fulldata").hf_repo, W.get("big-lama").hf_repo) == (
        "Icar/mat_places512_full", "smartywu/big-lama")
    assert W.get("big-lama").hf_filename == "big-lama.zip"
    assert W.get("migan-512-places2").hf_repo is None  # only an ONNX pipeline is mirrored (not our format)
