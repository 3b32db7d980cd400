"""Faults and bad input (issue 13): file modes, disk full, 0/1 masks, model option typos, refused pickles."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matbench.cli import main
from matbench.io import save_png, write_json_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _inputs(tmp_path: Path, n: int = 2, size: int = 32, mask_values: tuple[int, int] = (0, 255)) -> tuple[Path, Path]:
    """n random images and plain MAT-polarity masks (known = mask_values[1], hole = mask_values[0])."""
    rng = np.random.default_rng(0)
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(img_dir / f"im{i}.png")
        m = np.full((size, size), mask_values[1], np.uint8)
        m[4:20, 6 + i:24] = mask_values[0]
        Image.fromarray(m).save(mask_dir / f"im{i}.png")
    return img_dir, mask_dir


# --------------------------------------------------------------------------- file modes


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_umask_mode(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    write_text_atomic(tmp_path / "b.txt", "x")
    save_png(tmp_path / "c.png", np.zeros((4, 4), np.uint8))
    plain = tmp_path / "plain.txt"
    plain.write_text("reference: what open() gives")
    assert _mode(plain) == expected
    for name in ("a.json", "b.txt", "c.png"):
        assert _mode(tmp_path / name) == expected, name


def test_inpaint_outputs_and_report_links_are_readable(tmp_path: Path, umask) -> None:
    from reports.render import _place

    umask(0o022)
    img_dir, mask_dir = _inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
                 "--mask-polarity", "known=255", "-o", str(out)]) == 0
    assert _mode(out / "im0.png") == 0o644
    _place(out / "im0.png", tmp_path / "report" / "img" / "im0.png")  # the report's hard link shares the mode
    assert _mode(tmp_path / "report" / "img" / "im0.png") == 0o644


# --------------------------------------------------------------------------- disk full


def _enospc(*_a, **_k):
    raise OSError(28, "No space left on device")  # errno.ENOSPC, as the kernel reports it


def test_disk_full_in_an_atomic_write_is_one_line_naming_path_and_size(tmp_path: Path, monkeypatch) -> None:
    from matbench.errors import DiskFullError
    from matbench.io import write_bytes_atomic

    monkeypatch.setattr(Path, "write_bytes", _enospc)
    with pytest.raises(DiskFullError) as ei:
        write_bytes_atomic(tmp_path / "x.bin", b"\0" * 123_456)
    msg = str(ei.value)
    assert "\n" not in msg and str(tmp_path / "x.bin") in msg
    assert "no space left" in msg and "needs about 123.5 KB" in msg and " free there" in msg
    assert not list(tmp_path.iterdir())  # the partial temporary file is gone


def test_disk_full_while_saving_pngs_ends_the_cli_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    real_save = Image.Image.save

    def save_then_fail(self, fp, *a, **k):  # half a file written, then the disk fills up
        real_save(self, fp, *a, **k)
        _enospc()

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    out = tmp_path / "out"
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"matbench: error: {out / 'im0.png'}: no space left") and "needs about 3.1 KB" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_disk_full_elsewhere_is_caught_at_the_cli_boundary(tmp_path: Path, monkeypatch, capsys) -> None:
    import matbench.io

    img_dir, mask_dir = _inputs(tmp_path)

    def full(path, *_a):  # e.g. a library writing its own file: an OSError with errno 28 and a filename
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(matbench.io, "save_png", full)
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(tmp_path / "out" / "im0.png") in err and "no space left" in err


class _FullConnection:
    """A sqlite connection on a full disk: reads work, every write fails as sqlite reports it."""

    def __init__(self, con):
        self.con = con

    def execute(self, *a):
        return self.con.execute(*a)

    def executemany(self, *a):
        import sqlite3

        raise sqlite3.OperationalError("database or disk is full")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def close(self):
        self.con.close()


def test_full_feature_cache_warns_once_and_carries_on(tmp_path: Path, monkeypatch, caplog) -> None:
    import torch

    from matbench.features import FeatureCache, extract_cached

    calls = []

    class Extractor:
        name, key, dim = "toy", "toy/1", 3

        def __call__(self, images):
            calls.append(len(images))
            return images.double().mean(dim=(2, 3)).numpy()

    cache = FeatureCache(tmp_path / "cache")
    connect = cache._connect
    monkeypatch.setattr(cache, "_connect", lambda: _FullConnection(connect()))
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    expected = images.double().mean(dim=(2, 3)).numpy()
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert np.array_equal(extract_cached(Extractor(), images, cache), expected)
    assert calls == [2, 2, 2]  # computed every time: nothing could be stored
    full = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(full) == 1 and str(cache.path) in full[0].getMessage()
    assert cache.count() == 0


# --------------------------------------------------------------------------- 0/1 masks, degenerate mask sets


@pytest.mark.parametrize("polarity", ["known=255", "hole=255"])
def test_inpaint_refuses_01_masks(tmp_path: Path, capsys, polarity: str) -> None:
    img_dir, mask_dir = _inputs(tmp_path, mask_values=(0, 1))  # a 0/1 mask saved as 8-bit
    out = tmp_path / "out"
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", polarity, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, "0/1 masks must not inpaint everything or nothing with exit 0"
    assert f"{mask_dir / 'im0.png'}: mask holds only the values 0 and 1" in err
    assert "--binarize 1" in err and "rescale" in err
    assert not out.exists()  # refused before any output


def test_inpaint_refuses_a_set_without_holes(tmp_path: Path, capsys) -> None:
    img_dir, mask_dir = _inputs(tmp_path)
    # every file white: all hole read as hole=255, hole-free read as known=255 (a wrong polarity or an empty export)
    for p in mask_dir.iterdir():
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(p)
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "hole=255", "-o", str(tmp_path / "o1")])
    err = capsys.readouterr().err
    assert rc == 2 and "every one of the 2 masks is all hole (hole ratio 1" in err and "polarity" in err
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(tmp_path / "o2")])
    assert rc == 2 and "every one of the 2 masks is hole-free (hole ratio 0" in capsys.readouterr().err


def _maskset_01(tmp_path: Path) -> Path:
    """A mask set whose maskset.json is valid but whose files were rewritten as 0/1 (e.g. by a script)."""
    from matbench.data.maskset import make_maskset
    from matbench.io import sha256_file, write_json_atomic

    d = tmp_path / "ms"
    ms = make_maskset("mat-large", 2, 32, 0, d)
    for e in ms.entries:
        p = d / e["file"]
        Image.fromarray((np.asarray(Image.open(p)) // 255).astype(np.uint8)).save(p)
        e["sha256"] = sha256_file(p)
    write_json_atomic(d / "maskset.json", ms.meta)
    return d


def test_01_mask_set_refused_by_inpaint_and_by_spec_validation(tmp_path: Path, capsys) -> None:
    from matbench.errors import SpecError
    from matbench.spec import parse_spec

    d = _maskset_01(tmp_path)
    img_dir, _ = _inputs(tmp_path)
    rc = main(["inpaint", "--model", "mean-fill", "--images", str(img_dir), "--masks", str(d),
               "-o", str(tmp_path / "out")])
    assert rc == 2 and "000000.png: mask holds only the values 0 and 1" in capsys.readouterr().err
    spec = {"output": "run", "datasets": [{"path": str(img_dir)}], "masksets": [{"path": str(d)}],
            "models": [{"name": "mean-fill"}]}
    with pytest.raises(SpecError, match=r"masksets\[0\]\.path: .*000000\.png: mask holds only the values 0 and 1"):
        parse_spec(spec, base_dir=tmp_path)
    rc = main(["run", str(_write_spec(tmp_path, spec)), "--dry-run"])
    assert rc == 2 and "only the values 0 and 1" in capsys.readouterr().err


def _write_spec(tmp_path: Path, spec: dict) -> Path:
    import json

    p = tmp_path / "spec.toml"
    lines = [f'output = "{spec["output"]}"']
    for table in ("datasets", "masksets", "models"):
        for item in spec[table]:
            lines.append(f"[[{table}]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in item.items() if not isinstance(v, dict)]
            for k, v in item.items():
                if isinstance(v, dict):
                    lines.append(f"{k} = {{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items()) + " }")
    p.write_text("\n".join(lines) + "\n")
    return p
