"""`matbench compare A B`: paired verdicts for B against A on the same images and masks (docs/statistics.md)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from matbench.comparison import JOB_SEP, Comparison, compare_paths
from matbench.metrics import METRIC_INFO
from matbench.paired import Paired


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="paired verdicts: is B better than A on the same images?",
                              description="Paired bootstrap over image indices of delta = B - A for every metric "
                                          "both results have: values, a paired interval of delta, a p-value and "
                                          "a verdict for B (tie = the interval contains 0). A and B are `eval` "
                                          f"output folders, RUN_DIR/jobs/JOB, or RUN_DIR{JOB_SEP}JOB; they must "
                                          "have evaluated the same image ids with the same masks and conventions. "
                                          "Fréchet distances (FID, FD_*) need features.npz on both sides.")
    p.add_argument("a", metavar="A", help=f"baseline: eval folder, RUN_DIR/jobs/JOB or RUN_DIR{JOB_SEP}JOB")
    p.add_argument("b", metavar="B", help="the result judged against A (same forms)")
    p.add_argument("--metrics", help="comma-separated metrics to compare (default: every metric both have)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - interval level (default 0.05: 95 %% intervals)")
    p.add_argument("--bins", action="store_true", help="also compare per-image metrics per hole-ratio bin")
    p.add_argument("--n-resamples", type=int, default=2000, metavar="B", help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image draws (default 0)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON (docs/statistics.md)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    names = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    c = compare_paths(args.a, args.b, metrics=names, alpha=args.alpha, n_resamples=args.n_resamples,
                      seed=args.seed, bins=args.bins)
    if args.json:
        for name, why in c.skipped.items():  # stdout stays pure JSON
            print(f"matbench: not compared: {name}: {why}", file=sys.stderr)
        sys.stdout.write(json.dumps(c.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render(c) + "\n")
    return 0


def _num(name: str, v: float, signed: bool = False) -> str:
    info = METRIC_INFO[name]
    if not math.isfinite(v):
        return "–"
    return f"{v * info.scale:{'+' if signed else ''}.{info.digits + 1}f}"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _rows(metrics: dict[str, Paired]) -> list[list[str]]:
    out = []
    for name, r in metrics.items():
        ci = f"[{_num(name, r.ci[0], True)}, {_num(name, r.ci[1], True)}]"
        out.append([METRIC_INFO[name].label, _num(name, r.a), _num(name, r.b), _num(name, r.delta, True), ci,
                    _p(r.p_value), r.verdict])
    return out


def _table(rows: list[list[str]], level: str) -> list[str]:
    header = ["metric", "A", "B", "B - A", f"{level} % interval", "p", "verdict for B"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = [f"{{:<{widths[0]}}}", *[f"{{:>{w}}}" for w in widths[1:-1]], f"{{:<{widths[-1]}}}"]
    return ["  ".join(f.format(x) for f, x in zip(fmt, r, strict=True)).rstrip() for r in [header, *rows]]


def render(c: Comparison) -> str:
    """The human-readable comparison: one table (and one per bin with --bins), then what was not compared."""
    level_s = f"{round(100 * (1 - c.alpha), 6):g}"
    lines = [f"A: {c.a}", f"B: {c.b}",
             f"paired over n = {c.n} images ({c.n_resamples} resamples, seed {c.seed}); tie = the {level_s} % "
             "interval of B - A contains 0", ""]
    lines += _table(_rows(c.metrics), level_s) if c.metrics else ["no metric could be compared"]
    for b in c.bins:
        lines += ["", f"hole ratio {b['label']} (n = {b['n']}):"]
        lines += _table(_rows(b["metrics"]), level_s) if b["metrics"] else ["  (no metric: fewer than 2 images)"]
    if c.bins:
        lines.append("bins compare per-image metrics only; dataset-level metrics are compared on the whole set")
    for name, r in c.metrics.items():  # the per-image metrics' method (bootstrap of the mean) is in the header
        if r.method != "bootstrap":
            lines.append(f"method: {name}: {r.method}")
    for name, why in c.skipped.items():
        lines.append(f"not compared: {name}: {why}")
    return "\n".join(lines)
