"""`matbench demo`: an embedded benchmark that runs out of the box, offline, on a CPU.

Bundled real photographs (scikit-image's data folder), MAT's large and small masks, the weight-free
baselines, every model whose released weights are already on this machine, and the HTML report.
Metric networks (Inception, LPIPS) come from the weights cache; when they are missing and cannot be
downloaded, the demo runs them on random weights (smoke mode) and says so in its output and report.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from matbench import weights
from matbench.data.demo import demo_images
from matbench.errors import MatbenchError
from matbench.models.base import get_model_info
from matbench.runner import RunOptions, run
from matbench.spec import Spec, parse_spec

log = logging.getLogger("matbench.demo")

DEMO_RESOLUTION = 512  # 8 photos x 2 mask sets x 3 baselines: 142 s on 2 CPU cores (docs/runner.md)
DEMO_IMAGES = 8
BASELINES = ("mean-fill", "opencv-telea", "opencv-ns")
WEIGHTED_MODELS = ("mat", "lama", "comodgan")  # included when their default weights are found locally

DEFAULT_SPEC: dict[str, Any] = {
    "name": "demo",
    "seed": 0,
    "batch_size": 4,
    "device": "auto",
    "resolutions": [DEMO_RESOLUTION],
    "metrics": ["fid", "pids", "uids", "lpips", "psnr", "ssim", "l1"],
    "smoke": "auto",
    "n_bootstrap": 50,
    "datasets": [{"name": "photos", "preset": "folder", "path": "photos", "policy": "resize-crop",
                  "allow_upscale": True}],  # chelsea, coffee and rocket are under 512 px on a side
    "masksets": [{"kind": "mat-large"}, {"kind": "mat-small"}],
    "models": [{"name": m} for m in BASELINES],
}


def available_weighted_models() -> list[str]:
    """Built-in models whose default weights are all present locally (no download is attempted)."""

    out = []
    for name in WEIGHTED_MODELS:
        try:
            req = get_model_info(name).requires.weights
            if req and all(weights.find(w) is not None for w in req):
                out.append(name)
        except MatbenchError:
            continue
    return out


def demo_spec(out_dir: Path, resolution: int = DEMO_RESOLUTION, n_images: int = DEMO_IMAGES,
              extra_models: list[str] | None = None) -> Spec:
    """The demo spec rooted at out_dir (photos in out_dir/photos, run in out_dir/run)."""
    data = {**DEFAULT_SPEC, "resolutions": [resolution], "output": "run"}
    data["datasets"] = [{**DEFAULT_SPEC["datasets"][0], "limit": n_images}]
    models = [dict(m) for m in DEFAULT_SPEC["models"]]
    models += [{"name": m} for m in (available_weighted_models() if extra_models is None else extra_models)]
    data["models"] = models
    return parse_spec(data, base_dir=out_dir, source=None, check_paths=False)


def run_demo(out_dir: str | Path = "demo_out", resolution: int = DEMO_RESOLUTION, n_images: int = DEMO_IMAGES,
             extra_models: list[str] | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Run the demo into out_dir; returns {"run_dir", "report_dir", "smoke", "seconds", "info"}.

    The HTML report is not rendered here (the core does not import reports/): `matbench demo` renders
    run_dir into report_dir (matbench.commands.demo.render)."""

    t0 = time.perf_counter()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    demo_images(out / "photos", n=n_images)
    spec = demo_spec(out, resolution, n_images, extra_models)
    _write_spec_toml(spec, out / "demo.toml")
    info = run(spec, RunOptions(progress=progress))
    return {"run_dir": spec.output, "report_dir": out / "report", "smoke": bool(info.get("metric_smoke")),
            "seconds": time.perf_counter() - t0, "info": info}


def _write_spec_toml(spec: Spec, path: Path) -> None:
    """The spec that ran, as TOML, so `matbench run demo_out/demo.toml` reproduces (and resumes) the demo."""
    j = spec.to_json()
    lines = ["# written by `matbench demo`; rerun with: matbench run " + str(path), ""]
    for k in ("name", "output", "seed", "batch_size", "device", "resolutions", "metrics", "smoke", "n_bootstrap"):
        lines.append(f"{k} = {_toml(j[k])}")
    for table, items in (("datasets", j["datasets"]), ("masksets", j["masksets"]), ("models", j["models"])):
        for it in items:
            lines += ["", f"[[{table}]]"]
            lines += [f"{k} = {_toml(v)}" for k, v in it.items() if v is not None and v != {}]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
