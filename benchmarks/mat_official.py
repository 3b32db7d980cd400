"""Run one of MAT's official evaluation scripts from a user's checkout, on CPU if need be (bench helper).

`python -m benchmarks.mat_official --mat-repo PATH --script psnr_ssim_l1|lpips|fid_pids_uids
 --results DIR --gt DIR [--detector FILE] [--lpips-smoke]` imports the script's module from the checkout
(nothing of MAT is copied into matbench), calls its own `calculate_metrics(results, gt)` and prints one JSON
line with its numbers. Only what stands between the script and this machine is replaced, never its
arithmetic: the hard-wired `cuda:0` becomes the CPU when there is no GPU; the NVIDIA detector URL opens
--detector instead; `lpips.LPIPS(net=...)` gets its ImageNet trunk from matbench's weights resolution (or the
same seeded smoke trunk matbench uses, with --lpips-smoke) instead of a torchvision download; a missing
`pyspng` is stood in by PIL (the same decoded pixels for PNG files).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import types
from pathlib import Path

SCRIPTS = {"psnr_ssim_l1": "cal_psnr_ssim_l1", "lpips": "cal_lpips", "fid_pids_uids": "cal_fid_pids_uids"}


def eval_dir(repo: Path) -> Path:
    """MAT's evaluation folder (spelled `evaluatoin` upstream)."""
    for name in ("evaluatoin", "evaluation"):
        if (repo / name / "cal_psnr_ssim_l1.py").is_file():
            return repo / name
    raise SystemExit(f"{repo}: no evaluatoin/ or evaluation/ folder with cal_psnr_ssim_l1.py (a fenglinglwb/MAT "
                     "checkout?)")


def _pyspng_stand_in() -> None:
    try:
        import pyspng  # noqa: F401
    except ImportError:
        import io

        import numpy as np
        from PIL import Image

        mod = types.ModuleType("pyspng")
        mod.load = lambda data: np.asarray(Image.open(io.BytesIO(data)))  # type: ignore[attr-defined]
        sys.modules["pyspng"] = mod


class _TorchOnThisMachine(types.ModuleType):
    """The script's `torch`, except that torch.device('cuda...') is the CPU when no GPU exists."""

    def __init__(self) -> None:
        import torch

        super().__init__("torch")
        self._torch = torch

    def __getattr__(self, name: str):
        return getattr(self._torch, name)

    def device(self, *args, **kwargs):
        d = self._torch.device(*args, **kwargs)
        return self._torch.device("cpu") if d.type == "cuda" and not self._torch.cuda.is_available() else d


def run(repo: Path, script: str, results: Path, gt: Path, detector: Path | None, lpips_smoke: bool) -> dict:
    folder = eval_dir(repo)
    sys.path[:0] = [str(folder), str(repo)]
    _pyspng_stand_in()
    mod = importlib.import_module(SCRIPTS[script])
    if hasattr(mod, "torch"):
        mod.torch = _TorchOnThisMachine()
    if script == "fid_pids_uids":
        if detector is None:
            raise SystemExit("--detector FILE is needed for fid_pids_uids (NVIDIA's inception-2015-12-05.pt or "
                             "a stand-in with its call signature)")
        mod.dnnlib.util.open_url = lambda url, *a, **k: open(detector, "rb")  # noqa: SIM115
    if script == "lpips":
        from matbench.metrics.lpips import LPIPS

        shim = types.ModuleType("lpips")
        shim.LPIPS = lambda net="alex", **k: LPIPS(net, "cpu", smoke=lpips_smoke).model  # type: ignore[attr-defined]
        mod.lpips = shim
    with contextlib.redirect_stdout(sys.stderr):  # the scripts print one line per image
        out = mod.calculate_metrics(str(results), str(gt))
    names = {"psnr_ssim_l1": ("psnr", "ssim", "l1"), "lpips": ("lpips",), "fid_pids_uids": ("fid", "pids", "uids")}
    vals = out if isinstance(out, tuple) else (out,)
    return {k: float(v) for k, v in zip(names[script], vals, strict=True)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mat_official", description=__doc__.splitlines()[0])
    p.add_argument("--mat-repo", required=True, type=Path)
    p.add_argument("--script", required=True, choices=sorted(SCRIPTS))
    p.add_argument("--results", required=True, type=Path)
    p.add_argument("--gt", required=True, type=Path)
    p.add_argument("--detector", type=Path)
    p.add_argument("--lpips-smoke", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(run(a.mat_repo, a.script, a.results, a.gt, a.detector, a.lpips_smoke)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
