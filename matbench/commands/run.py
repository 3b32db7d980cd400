"""`matbench run SPEC`: every job of a benchmark spec, resumable; `--dry-run` shows what would run.

Under torchrun (`torchrun --nproc_per_node=G -m matbench run SPEC`) the same command shards the
batches over the processes and computes the metrics once on rank 0.
"""

from __future__ import annotations

import argparse

from matbench.commands.history import add_history_options
from matbench.devices import DEVICE_HELP
from matbench.errors import SpecError
from matbench.io import check_output, shown_path
from matbench.metrics import METRIC_INFO
from matbench.progress import add_progress_option
from matbench.runner import EXIT_NOT_REAL, RunOptions, dry_run, not_real, run
from matbench.spec import load_spec
from matbench.trust import add_trust_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run a benchmark spec (TOML): models x datasets x mask sets x resolutions",
        description="Run every (dataset, mask set, model, resolution) job of SPEC into its output directory. "
                    "Finished batches are kept on disk: rerunning after a crash or kill resumes where it stopped. "
                    "Works unchanged under torchrun (batches sharded over ranks, metrics on rank 0).")
    p.add_argument("spec", metavar="SPEC", help="benchmark spec (TOML); see docs/runner.md and examples/specs/")
    p.add_argument("--dry-run", action="store_true",
                   help="list the jobs, image counts and what will be smoke (models, metric networks); "
                   "run nothing. Exit 3 if a network that should be real has no weights on this machine")

    add_history_options(p)
    p.add_argument("-o", "--out", "--output", dest="output", metavar="DIR",
                   help="run directory (overrides the spec's output)")
    p.add_argument("--device", help="override the spec's device: " + DEVICE_HELP)
    p.add_argument("--batch-size", type=int, help="override the spec's batch size")
    p.add_argument("--smoke", action="store_true", help="metric networks on random weights (numbers NOT comparable)")
    p.add_argument("--restart", action="store_true",
                   help="discard stored jobs whose configuration differs from the spec (default: refuse)")
    add_progress_option(p)  # --progress/--no-progress: matbench.progress
    p.add_argument("--serial", action="store_true",
                   help="run the stages of each batch one after the other (spec: pipeline = false); same results")
    p.add_argument("--workers", metavar="IN[,OUT]",
                   help="threads of the input and output stages (default: from the available cores)")
    add_trust_option(p)  # a spec or --model naming code: matbench.trust
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:

    spec = load_spec(args.spec, output=args.output)
    if args.device:
        spec.device = args.device
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise SpecError(f"--batch-size: must be >= 1, got {args.batch_size}")
        spec.batch_size = args.batch_size
    if args.smoke:
        spec.smoke = True
    if args.serial:
        spec.pipeline = False
    if args.workers:
        spec.input_workers, spec.output_workers = _workers(args.workers)
    if args.dry_run:
        print(dry_run(spec))
        return EXIT_NOT_REAL if not_real(spec) else 0

    inputs = [d.path for d in getattr(spec, "datasets", [])] + [m.path for m in getattr(spec, "masksets", [])]
    check_output(spec.output, inputs)
    info = run(spec, RunOptions(restart=args.restart, progress=args.progress))
    if info:  # rank 0
        print(summary_table(info))
        from matbench.commands.history import append_after

        append_after(args, [spec.output], "run")
        shown = shown_path(spec.output)
        print(f"run directory: {shown}  (matbench report {shown} -o REPORT_DIR)")
    return 0


def _workers(text: str) -> tuple[int, int]:

    parts = text.split(",")
    try:
        vals = [int(x) for x in parts]
    except ValueError:
        vals = []
    if len(vals) not in (1, 2) or min(vals) < 1:
        raise SpecError(f"--workers: expected N or IN,OUT (positive integers), got {text!r}")
    return vals[0], vals[-1]


def summary_table(info: dict) -> str:
    """One line per job with its headline metrics (display scale from METRIC_INFO)."""

    summary = info.get("summary", {})
    names = [m for m in METRIC_INFO if any(m in v for v in summary.values())]
    width = max([len(j) for j in summary] + [3])
    lines = ["job".ljust(width) + "".join(f"  {METRIC_INFO[m].label:>12}" for m in names)]
    for job, vals in summary.items():
        cells = []
        for m in names:
            v = vals.get(m)
            cells.append(f"  {'-':>12}" if v is None else f"  {v * METRIC_INFO[m].scale:>12.{METRIC_INFO[m].digits}f}")
        lines.append(job.ljust(width) + "".join(cells))
    lines += smoke_summary(info)
    return "\n".join(lines)


def smoke_summary(info: dict) -> list[str]:
    """Which part of a run was smoke: the metric networks (every number), and/or named models (their rows)."""
    if not info.get("smoke"):
        return []
    out = []
    models = [m.get("label") or m.get("name") for m in (info.get("spec") or {}).get("models", []) if m.get("smoke")]
    if info.get("metric_smoke"):
        out.append("SMOKE metric networks: random weights (no released Inception/LPIPS/... weights here): every "
                   "number above is not comparable with real results")
    if models:
        out.append(f"SMOKE models: {', '.join(models)} ran on random weights: not inpaintings, marked "
                   "'(random weights)' in tables and never ranked")
    if not out:  # smoke recorded without saying where (an older run.json)
        out.append("SMOKE: random weights were used (metric networks or models): not comparable numbers")
    return out
