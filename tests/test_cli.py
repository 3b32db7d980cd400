"""CLI conventions (issue 25): one device resolution for every --device, quiet broken pipes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matbench.cli import EXIT_BROKEN_PIPE, main
from matbench.devices import resolve_device
from matbench.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _pairs(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    res, gt = tmp_path / "res", tmp_path / "gt"
    res.mkdir()
    gt.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(gt / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(res / f"im{i}.png")
    return res, gt


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_device_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device(None) == "cuda:0" and resolve_device("auto", local_rank=1) == "cuda:1"
    assert resolve_device("cuda", local_rank=1) == "cuda:1" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InputError, match=r"--device cuda:2: there is no GPU 2 \(this machine has 2"):
        resolve_device("cuda:2")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="device cuda: no CUDA GPU is visible"):
        resolve_device("cuda", where="device")


def test_eval_device_cuda_without_gpu_is_one_line_and_writes_nothing(tmp_path: Path, no_gpu, capsys) -> None:
    res, gt = _pairs(tmp_path)
    out = tmp_path / "out"
    rc = main(["eval", "--results", str(res), "--gt", str(gt), "--metrics", "psnr", "--device", "cuda",
               "--bootstrap", "0", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--device cuda: no CUDA GPU is visible" in err
    assert not out.exists()  # nothing recorded as run on a GPU
    # auto on a machine without a GPU: provenance names where the work ran
    assert main(["eval", "--results", str(res), "--gt", str(gt), "--metrics", "psnr", "--bootstrap", "0",
                 "-o", str(out)]) == 0
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["provenance"]["device"] == "cpu"


@pytest.mark.parametrize("argv", [
    ["inpaint", "--model", "mean-fill", "--images", "I", "--masks", "M", "-o", "O", "--device", "cuda:0"],
    ["stats", "fd", "F", "--ref", "R.npz", "--device", "cuda"],
])
def test_other_device_commands_refuse_a_missing_gpu_in_one_line(argv: list[str], tmp_path: Path, no_gpu,
                                                                capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for d in ("I", "M", "F"):
        (tmp_path / d).mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "I" / "a.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "M" / "a.png")
    (tmp_path / "R.npz").write_bytes(b"")
    rc = main(argv + (["--mask-polarity", "known=255"] if argv[0] == "inpaint" else []))
    err = capsys.readouterr().err
    assert rc == 2 and "no CUDA GPU is visible" in err and "Traceback" not in err


def test_run_device_cuda_without_gpu_is_one_line(tmp_path: Path, no_gpu, capsys) -> None:
    res, _ = _pairs(tmp_path)
    spec = tmp_path / "s.toml"
    spec.write_text(f'output = "out"\nmetrics = ["psnr"]\n[[datasets]]\npath = "{res}"\n'
                    '[[masksets]]\nkind = "mat-large"\n[[models]]\nname = "mean-fill"\n')
    rc = main(["run", str(spec), "--device", "cuda", "--no-history", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "device (spec or --device) cuda: no CUDA GPU is visible" in err


def test_a_closed_stdout_pipe_ends_quietly_with_141() -> None:
    """`matbench weights list | head`: the reader is gone before anything is written."""
    r, w = os.pipe()
    os.close(r)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "matbench", "weights", "list"], stdout=w, stderr=subprocess.PIPE,
                       text=True, env=env, cwd=ROOT, timeout=120)
    os.close(w)
    assert p.returncode == EXIT_BROKEN_PIPE == 141
    assert p.stderr == ""


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_argument_of_every_command_has_help_and_help_exits_0(capsys) -> None:
    from matbench.cli import build_parser

    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 30  # every command and subcommand is walked
    missing = [(" ".join(path), a.option_strings or [a.dest]) for path, p in parsers for a in p._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []
    for path, _ in parsers:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0, path
        capsys.readouterr()


def test_one_spelling_for_output_files_with_the_old_ones_kept() -> None:
    """-o/--out everywhere (--output kept as an alias); `-n`/`--n` for counts in `data demo` and `masks make`."""
    from matbench.cli import build_parser

    for path, p in _parsers(build_parser()):
        for a in p._actions:
            if "-o" in a.option_strings:
                assert a.option_strings[:3] == ["-o", "--out", "--output"], path
    parser = build_parser()
    for flag in ("-o", "--out", "--output"):
        assert parser.parse_args(["inpaint", "--model", "m", "--images", "i", "--masks", "m", flag, "X"]).output == "X"
        assert parser.parse_args(["eval", "--results", "r", "--gt", "g", flag, "X"]).out == "X"
    for flag in ("-n", "--n"):
        assert parser.parse_args(["data", "demo", "-o", "d", flag, "3"]).n == 3
        assert parser.parse_args(["masks", "make", "--kind", "mat-large", "-o", "m", flag, "3"]).n == 3
    assert parser.parse_args(["history", "--json"]).format == "json"
    assert parser.parse_args(["history", "--format", "json"]).format == "json"


def test_weights_list_json(capsys) -> None:
    assert main(["weights", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    inc = next(w for w in data["weights"] if w["name"] == "inception-v3-compat")
    assert inc["status"] in ("found", "missing") and inc["url"].startswith("https://") and data["searched"]


def test_printed_paths_are_normalized(tmp_path: Path, monkeypatch) -> None:
    from matbench.io import shown_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples" / "specs").mkdir(parents=True)
    assert shown_path(tmp_path / "examples" / "specs" / ".." / ".." / "runs" / "quick") == os.path.join("runs",
                                                                                                          "quick")
    assert shown_path("/a/b/../c") == os.path.normpath("/a/c")


def test_cli_dispatch_is_lazy_and_its_table_matches_the_commands():
    """`matbench --help` loads no command module (the one lazy import is the dispatch); the one-line helps of
    cli.COMMANDS are the ones the commands register."""
    import argparse
    import importlib
    import subprocess
    import sys

    from matbench.cli import COMMANDS

    for name, (mod, help_text) in COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(mod).register(sub)
        assert {a.dest: a.help for a in sub._choices_actions}[name] == help_text, name
    code = ("import sys; from matbench.cli import build_parser; build_parser(None); "
            "print(sorted(m for m in sys.modules if m.startswith('matbench.commands') or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
