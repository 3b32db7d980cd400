"""Plumbing of `bench.py eval-vs-official`: the official-script driver on a stand-in checkout, and wait4 measuring.

MAT's code is never part of this repository; the checkout here is a tiny stand-in written for the test with the
same module names, function names and hard-wired habits (pyspng import, torch.device('cuda:0')).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from PIL import Image

from benchmarks import mat_official
from benchmarks.suite_eval_vs_official import measure

STAND_IN = '''
import glob
import numpy as np
import pyspng
import torch


def calculate_metrics(folder1, folder2):
    device = torch.device("cuda:0")
    l1 = sorted(glob.glob(folder1 + "/*.png"))
    l2 = sorted(glob.glob(folder2 + "/*.png"))
    d = []
    for a, b in zip(l1, l2):
        x = pyspng.load(open(a, "rb").read()).astype(np.float64)
        y = pyspng.load(open(b, "rb").read()).astype(np.float64)
        print(a)
        d.append(float(torch.tensor(np.abs(x - y).mean(), device=device)))
    return sum(d) / len(d), float(device.type == "cpu"), 0.0
'''


def test_driver_runs_a_checkout_script_on_this_machine(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "MAT"
    (repo / "evaluatoin").mkdir(parents=True)
    (repo / "evaluatoin" / "cal_psnr_ssim_l1.py").write_text(STAND_IN)
    rng = np.random.default_rng(0)
    for d in ("res", "gt"):
        (tmp_path / d).mkdir()
    diffs = []
    for i in range(3):
        a = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        b = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(a).save(tmp_path / "res" / f"{i}.png")
        Image.fromarray(b).save(tmp_path / "gt" / f"{i}.png")
        diffs.append(np.abs(a.astype(float) - b).mean())
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "cal_psnr_ssim_l1", raising=False)
    import torch

    out = mat_official.run(repo, "psnr_ssim_l1", tmp_path / "res", tmp_path / "gt", None, True)
    assert out["psnr"] == sum(diffs) / 3  # the script's own arithmetic, on the same decoded pixels
    assert out["ssim"] == (0.0 if torch.cuda.is_available() else 1.0)  # cuda:0 became the CPU only without a GPU
    assert capsys.readouterr().out == ""  # per-image prints go to stderr, stdout stays one JSON line


def test_measure_reports_child_cpu_and_memory():
    m = measure([sys.executable, "-c", "import json; x = bytearray(64 << 20); s = sum(range(3_000_000)); "
                 "print(json.dumps(len(x)))"])
    assert json.loads(m["stdout"]) == 64 << 20
    assert m["peak_mib"] >= 64 and m["user_s"] + m["sys_s"] > 0 and m["wall_s"] > 0
