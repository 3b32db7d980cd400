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
