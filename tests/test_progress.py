"""The one progress policy (matbench.progress): a bar on a terminal, plain lines (never a cursor code) elsewhere;
--progress/--no-progress > $MATBENCH_PROGRESS > on. Commands run with stderr on a pipe/file and on a pty."""

from __future__ import annotations

import dataclasses
import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runner_helpers import make_images, standin_opts
from spec_helpers import write_spec

from matbench import progress as P
from matbench.cli import main
from matbench.errors import SpecError
from matbench.runner import run
from matbench.spec import load_spec

CURSOR = re.compile(r"[\r\x1b]")  # a carriage-return redraw or any escape sequence (ESC[A moves the cursor up)


class _Pty:
    """A pseudo-terminal: `file` is the terminal end a program writes to, read() what arrived."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        # a real terminal has a width; tqdm sizes its bar from it (a 0x0 pty would get an empty bar)
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.file = os.fdopen(self.slave, "w", buffering=1)

    def read(self) -> str:
        self.file.flush()
        out = b""
        os.set_blocking(self.master, False)
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def close(self) -> None:
        self.file.close()
        os.close(self.master)


@pytest.fixture()
def tty():
    t = _Pty()
    yield t
    t.close()


def test_policy_flag_then_env_then_on(monkeypatch) -> None:
    monkeypatch.delenv(P.ENV, raising=False)
    assert P.wanted() is True
    monkeypatch.setenv(P.ENV, "0")
    assert P.wanted() is False
    assert P.wanted(True) is True  # the command's flag wins over the environment
    monkeypatch.setenv(P.ENV, "1")
    assert P.wanted(False) is False
    assert P.wanted() is True
    monkeypatch.setenv(P.ENV, "sometimes")
    with pytest.raises(SpecError, match="MATBENCH_PROGRESS"):
        P.wanted()


def test_non_terminal_gets_plain_lines_and_never_a_cursor_code() -> None:
    log = io.StringIO()
    b = P.bar(5, "evaluate", "img", stream=log)
    assert isinstance(b, P.LineProgress)
    b.interval = 0.0  # every update is due
    with b:
        for _ in range(5):
            b.update(1)
    text = log.getvalue()
    assert not CURSOR.search(text)
    lines = text.splitlines()
    assert lines[0].startswith("evaluate: 1/5 img (20%), 0:00 elapsed")
    assert lines[-1].startswith("evaluate: 5/5 img (100%)")
    assert len(lines) == 5  # no extra 'done' line repeating the count the last line showed


def test_short_work_writes_nothing_to_a_log_and_off_writes_nothing_anywhere(tty) -> None:
    log = io.StringIO()
    with P.bar(3, "x", stream=log) as b:  # well under LINE_INTERVAL_S
        b.update(3)
    assert log.getvalue() == ""
    with P.bar(3, "x", enabled=False, stream=tty.file) as b:
        b.update(3)
    assert tty.read() == ""


def test_terminal_gets_a_bar(tty) -> None:
    with P.bar(4, "features", "img", stream=tty.file) as b:
        b.update(4)
    text = tty.read()
    assert "features" in text and "4/4" in text and "\r" in text  # tqdm redraws in place on a terminal


def _images(d: Path, n: int = 3, size: int = 32) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    img, msk = d / "images", d / "masks"
    img.mkdir(parents=True)
    msk.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(img / f"{i}.png")
        known = np.full((size, size), 255, np.uint8)
        known[8:20, 6:24] = 0
        Image.fromarray(known).save(msk / f"{i}.png")
    return img, msk


def _inpaint_args(tmp_path: Path, out: str) -> list[str]:
    img, msk = (tmp_path / "images", tmp_path / "masks") if (tmp_path / "images").is_dir() else _images(tmp_path)
    return ["inpaint", "--model", "opencv-telea", "--images", str(img), "--masks", str(msk),
            "--mask-polarity", "known=255", "-o", str(tmp_path / out), "--batch-size", "2"]


def test_inpaint_shows_progress_on_a_terminal_and_no_cursor_codes_in_a_log(tmp_path, tty, monkeypatch) -> None:
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(sys, "stderr", tty.file)
    assert main(_inpaint_args(tmp_path, "a")) == 0
    text = tty.read()
    assert "inpaint opencv-telea" in text and "3/3" in text
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert main(_inpaint_args(tmp_path, "b")) == 0
    assert not CURSOR.search(log.getvalue())
    monkeypatch.setattr(sys, "stderr", tty.file)
    assert main([*_inpaint_args(tmp_path, "c"), "--no-progress"]) == 0
    assert "inpaint opencv-telea" not in tty.read()


def test_masks_make_redirected_to_a_file_has_no_cursor_codes(tmp_path) -> None:
    # a child process with stderr on a file, as `matbench masks make ... 2> log`; progress forced on
    err = tmp_path / "err.log"
    env = {**os.environ, P.ENV: "1"}
    with err.open("w") as f:
        r = subprocess.run([sys.executable, "-m", "matbench", "masks", "make", "--kind", "mat-large", "-n", "4",
                            "--res", "32", "-o", str(tmp_path / "m")], stderr=f, stdout=subprocess.PIPE, env=env,
                           timeout=120)
    assert r.returncode == 0, err.read_text()
    assert not CURSOR.search(err.read_text())
    assert "4 mat-large masks" in r.stdout.decode()


def test_masks_make_on_a_terminal_shows_its_bar(tmp_path, tty, monkeypatch) -> None:
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(sys, "stderr", tty.file)
    assert main(["masks", "make", "--kind", "mat-large", "-n", "3", "--res", "32", "-o", str(tmp_path / "m")]) == 0
    assert "masks mat-large" in tty.read()


def test_run_writes_no_cursor_codes_into_a_log_and_draws_its_bars_on_a_terminal(tmp_path, tty, monkeypatch) -> None:
    # the run's two bars (all jobs, this job) use tqdm positions, which move the cursor up (ESC[A) on a terminal
    monkeypatch.delenv(P.ENV, raising=False)
    make_images(tmp_path / "imgs", 4)
    opts = dataclasses.replace(standin_opts(), progress=None)
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert run(load_spec(write_spec(tmp_path, "a")), opts)["status"] == "complete"
    assert not CURSOR.search(log.getvalue())
    monkeypatch.setattr(sys, "stderr", tty.file)
    assert run(load_spec(write_spec(tmp_path, "b")), opts)["status"] == "complete"
    assert "all jobs" in tty.read()
