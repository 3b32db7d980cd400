"""Weights resolution order, hash checks, download with hash check, and `matbench weights`."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from matbench import weights as W
from matbench.cli import main
from matbench.errors import WeightsError

_counter = itertools.count()
CONTENT = b"pretend weights\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty MATBENCH_WEIGHTS and hub cache under tmp_path; offline."""
    wdir, hub = tmp_path / "wdir", tmp_path / "hub" / "checkpoints"
    wdir.mkdir()
    hub.mkdir(parents=True)
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(wdir))
    monkeypatch.setenv("MATBENCH_OFFLINE", "1")
    monkeypatch.setattr(W, "hub_checkpoints_dir", lambda: hub)
    return wdir, hub


def _entry(**kw) -> W.WeightsFile:
    n = next(_counter)
    fields = {"name": f"test-weights-{n}", "filename": f"test-weights-{n}.bin",
              "url": f"https://example.org/test-weights-{n}.bin", "sha256": SHA}
    fields.update(kw)
    return W.register_weights(W.WeightsFile(**fields))


def test_resolution_order(places, tmp_path):
    wdir, hub = places
    e = _entry()
    # nothing anywhere: one-line error naming the file, the URL and both places
    with pytest.raises(WeightsError) as err:
        W.resolve(e.name)
    msg = str(err.value)
    assert e.filename in msg and e.url in msg and str(wdir) in msg and str(hub) in msg and "\n" not in msg
    # hub cache
    (hub / e.filename).write_bytes(CONTENT)
    assert W.resolve(e.name) == hub / e.filename
    # MATBENCH_WEIGHTS wins over the hub cache
    (wdir / e.filename).write_bytes(CONTENT)
    assert W.resolve(e.name) == wdir / e.filename
    # an explicit path wins over both
    explicit = tmp_path / "elsewhere.bin"
    explicit.write_bytes(CONTENT)
    assert W.resolve(e.name, explicit) == explicit
    with pytest.raises(WeightsError, match="does not exist"):
        W.resolve(e.name, tmp_path / "nope.bin")


def test_hash_mismatch(places, tmp_path):
    wdir, _ = places
    e = _entry()
    (wdir / e.filename).write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="does not match the expected"):
        W.resolve(e.name)
    p = _entry(sha256=None, hash_prefix="deadbeef")
    (wdir / p.filename).write_bytes(CONTENT)
    with pytest.raises(WeightsError, match="deadbeef"):
        W.resolve(p.name)
    ok = _entry(sha256=None, hash_prefix=SHA[:8])
    (wdir / ok.filename).write_bytes(CONTENT)
    assert W.resolve(ok.name) == wdir / ok.filename


def test_download_with_hash_check(places, tmp_path, monkeypatch):
    wdir, _ = places
    src = tmp_path / "server.bin"
    src.write_bytes(CONTENT)
    monkeypatch.delenv("MATBENCH_OFFLINE")
    e = _entry(url=src.as_uri())
    assert W.resolve(e.name) == wdir / e.filename and (wdir / e.filename).read_bytes() == CONTENT
    bad = _entry(url=src.as_uri(), sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        W.resolve(bad.name)
    assert not (wdir / bad.filename).exists() and not list(wdir.glob(".*"))  # no partial file left


def test_cli_list_verify_fetch(places, tmp_path, monkeypatch, capsys):
    wdir, _ = places
    e = _entry()
    assert main(["weights", "list", e.name]) == 0
    out = capsys.readouterr().out
    assert e.filename in out and "missing" in out and e.url in out
    assert main(["weights", "verify", e.name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and e.filename in err[0]
    src = tmp_path / "server.bin"
    src.write_bytes(CONTENT)
    monkeypatch.delenv("MATBENCH_OFFLINE")
    f = _entry(url=src.as_uri())
    assert main(["weights", "fetch", f.name]) == 0
    assert (wdir / f.filename).read_bytes() == CONTENT
    assert main(["weights", "list", f.name]) == 0
    out = capsys.readouterr().out
    assert "found" in out and str(wdir / f.filename) in out
    assert main(["weights", "verify", f.name]) == 0
    assert "ok" in capsys.readouterr().out
    (wdir / f.filename).write_bytes(b"corrupted")
    assert main(["weights", "verify", f.name]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_cli_manual_instructions_and_unknown_name(places, capsys):
    m = _entry(url=None, manual="open the share link in a browser")
    assert main(["weights", "list", m.name]) == 0
    assert "open the share link in a browser" in capsys.readouterr().out
    assert main(["weights", "fetch", m.name]) == 1
    assert main(["weights", "list", "no-such-weights"]) == 2
    assert "no-such-weights" in capsys.readouterr().err


def test_registry_knows_the_feature_extractor_files():
    names = {e.name for e in W.all_weights()}
    assert {"inception-v3-compat", "inception-nvidia", "torchvision-vgg16"} <= names
    inc = W.get("inception-v3-compat")
    assert inc.hash_prefix == "6726825d" and inc.filename.endswith("-6726825d.pth")
    assert W.get("inception-nvidia").url.endswith("/inception-2015-12-05.pt")


def test_cli_convert_errors(tmp_path, capsys):
    assert main(["weights", "convert", str(tmp_path / "missing.pkl"), "-o", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pkl" in err[0]


def test_cli_convert_calls_the_mat_converter(tmp_path, monkeypatch, capsys):
    calls = []

    def convert_to_safetensors(src, dst):
        calls.append((src, dst))
        dst.write_bytes(b"st")
        return dst

    import matbench.commands.weights as weights_cmd

    monkeypatch.setattr(weights_cmd, "convert_to_safetensors", convert_to_safetensors)
    src = tmp_path / "Places_512.pkl"
    src.write_bytes(b"pkl")
    dst = tmp_path / "out.safetensors"
    assert main(["weights", "convert", str(src), "-o", str(dst)]) == 0
    assert calls == [(src, dst)] and str(dst) in capsys.readouterr().out
