"""`matbench power PILOT [B]`: images needed to detect a delta with a paired test, and the smallest delta this
run detects (docs/statistics.md, matbench.power)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from matbench.comparison import JOB_SEP, check_comparable, contributions, load_side
from matbench.errors import SpecError
from matbench.metrics import METRIC_INFO
from matbench.power import Power, power_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("power", help="sample size: images needed to detect a delta (paired test)",
                              description="From a pilot evaluation: the number of images a two-sided paired "
                                          "test at --alpha needs to detect --delta with --power, and the "
                                          "smallest delta the pilot's own n detects (normal approximation on "
                                          "the per-image sd). With two results (A B) the sd is that of the "
                                          "paired differences; with one it is sqrt(2) x the result's own "
                                          "per-image spread, a conservative proxy. Arguments as for compare: "
                                          f"eval folders, RUN_DIR/jobs/JOB or RUN_DIR{JOB_SEP}JOB.")
    p.add_argument("a", metavar="PILOT", help="pilot result (baseline A of a pair)")
    p.add_argument("b", metavar="B", nargs="?", help="the other model of a pilot pair (optional)")
    p.add_argument("--delta", metavar="SPEC", help="deltas to size for, in stored units: fid=0.1,lpips=0.002")
    p.add_argument("--metrics", help="comma-separated metrics (default: every metric with per-image "
                                     "contributions, plus those in --delta)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level of the paired test (default 0.05)")
    p.add_argument("--power", type=float, default=0.8, help="power to reach (default 0.8)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_power)


def parse_deltas(spec: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, val = part.partition("=")
        name = name.strip().lower()
        try:
            x = float(val) if sep else float("nan")
        except ValueError:
            x = float("nan")
        if not sep or not math.isfinite(x) or x == 0.0:
            raise SpecError(f"--delta: '{part}' is not NAME=VALUE with a non-zero number")
        if name not in METRIC_INFO:
            raise SpecError(f"--delta: unknown metric '{name}'; known: {', '.join(METRIC_INFO)}")
        out[name] = abs(x)
    return out


def cmd_power(args: argparse.Namespace) -> int:
    for k, v in (("--alpha", args.alpha), ("--power", args.power)):
        if not 0.0 < v < 1.0:
            raise SpecError(f"{k} must be in (0, 1), got {v}")
    deltas = parse_deltas(args.delta)
    a = load_side(args.a)
    b = load_side(args.b) if args.b else None
    perm = check_comparable(a, b) if b is not None else None
    names = [m.strip().lower() for m in args.metrics.split(",") if m.strip()] if args.metrics else \
        [m for m in a.record.metrics if b is None or m in b.record.metrics]
    names = list(dict.fromkeys([*names, *deltas]))
    results: dict[str, Power] = {}
    skipped: dict[str, str] = {}
    for name in names:
        missing = [s.label for s in (a, b) if s is not None and name not in s.record.metrics]
        if missing:
            raise SpecError(f"{name} is not in {' and '.join(missing)}'s metrics.json")
        c = contributions(name, a, b, perm)
        if isinstance(c, str):
            skipped[name] = c
            continue
        d = [deltas[name]] if name in deltas else []
        results[name] = power_of(c, b is not None, d, args.alpha, args.power)
    n = len(a.rows)
    if args.json:
        for name, why in skipped.items():
            print(f"matbench: not covered: {name}: {why}", file=sys.stderr)
        out = {"a": args.a, "b": args.b, "n": n, "paired": b is not None, "alpha": args.alpha, "power": args.power,
               "metrics": {k: v.to_json() for k, v in results.items()}}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        sys.stdout.write(render(args, n, results, skipped) + "\n")
    return 0


def _fmt(name: str, v: float) -> str:
    return f"{v:.4g}"  # stored units, as --delta and metrics.json (P-IDS as a fraction)


def render(args: argparse.Namespace, n: int, results: dict[str, Power], skipped: dict[str, str]) -> str:
    pct = f"{round(100 * args.power, 6):g}"
    head = (f"pilot: {args.a} vs {args.b}, paired over n = {n} images" if args.b else
            f"pilot: {args.a} alone, n = {n} images: the paired sd is taken as sqrt(2) x its own per-image "
            "spread (conservative when the two models' per-image values are not negatively correlated; a pilot "
            "pair, `matbench power A B`, gives a sharper answer)")
    lines = [head, f"two-sided paired test at alpha = {args.alpha:g}, power {pct} %; normal approximation "
             "n = ((z(1 - alpha/2) + z(power)) * sd / delta)^2, assuming images like the pilot's", ""]
    rows = [["metric", "sd per image", f"detectable at n = {n}", "delta", "images needed"]]
    for name, r in results.items():
        asked = next(iter(r.needed.items()), None)
        rows.append([METRIC_INFO[name].label, _fmt(name, r.sd), _fmt(name, r.detectable),
                     _fmt(name, asked[0]) if asked else "–", str(asked[1]) if asked else "–"])
    if len(rows) > 1:
        widths = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(f"{x:<{w}}" if i == 0 else f"{x:>{w}}" for i, (x, w) in enumerate(zip(r, widths,
                                                                                              strict=True)))
                  for r in rows]
    else:
        lines.append("no metric has per-image contributions")
    lines += [f"not covered: {k}: {v}" for k, v in skipped.items()]
    lines.append("sd, deltas: in the units of metrics.json (as --delta)")
    return "\n".join(lines)
