"""`matbench demo [-o DIR]`: the embedded demo benchmark (offline, CPU, a few minutes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matbench.commands.run import summary_table
from matbench.demo import DEMO_IMAGES, DEMO_RESOLUTION, run_demo
from matbench.errors import SpecError
from matbench.io import check_output, shown_path
from matbench.progress import add_progress_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run the built-in demo: bundled photos, MAT masks, baselines (+ local models), HTML report",
        description="Runs offline on a CPU: bundled real photographs, MAT large and small masks, the weight-free "
                    "baselines and every model whose weights are already on this machine, then renders the HTML "
                    "report. Metric networks missing from the weights cache are run on random weights (smoke "
                    "mode), which the output and the report say loudly. Rerunning resumes.")
    p.add_argument("-o", "--out", "--output", dest="out", default="demo_out", metavar="DIR",
                   help="output directory (default demo_out)")
    p.add_argument("--resolution", type=int, default=None,
                   help="image size (default 512, MAT's evaluation size; 256 is faster)")
    p.add_argument("--images", type=int, default=None, help="number of photos (default 8, at most 8)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    add_progress_option(p)  # --progress/--no-progress: matbench.progress
    p.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:

    res = args.resolution or DEMO_RESOLUTION
    n = args.images or DEMO_IMAGES
    if res < 16 or n < 2:
        raise SpecError("--resolution must be >= 16 and --images >= 2")

    check_output(args.out)
    out = run_demo(args.out, resolution=res, n_images=n, progress=args.progress)
    out["report"] = None if args.no_report else render(out["run_dir"], out["report_dir"])
    print(summary_table(out["info"]))
    print(f"\nrun directory: {shown_path(out['run_dir'])}")
    if out["report"]:
        print(f"report: {shown_path(out['report'])}")
    if out["smoke"]:
        print("\n*** SMOKE MODE: Inception/LPIPS weights were not found (and could not be downloaded), so the metric "
              "networks ran on random weights. The numbers above only show that the pipeline works; they are NOT "
              "comparable to any paper. Put the weights in the cache (`matbench weights fetch`) and rerun. ***")
    print(f"demo finished in {out['seconds']:.0f} s")
    return 0


def render(run_dir: Path, report_dir: Path) -> Path | None:
    """The HTML report, if the reports package is present (else None, with a note)."""
    try:
        from matbench.reports import render as r
    except ImportError as e:
        print(f"note: HTML report skipped (reports package not available: {e})", file=sys.stderr)
        return None
    fn = getattr(r, "render_report", None) or getattr(r, "render_site", None)
    if fn is None:
        print("note: HTML report skipped (reports.render has no render_report)", file=sys.stderr)
        return None
    return Path(fn([run_dir], report_dir))
