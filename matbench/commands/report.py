"""`matbench report | table | leaderboard | check`: turn result directories into a site, tables, a gate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matbench.commands.report_extras import add_report_options, add_table_options
from matbench.errors import InputError, SpecError
from matbench.io import check_output
from matbench.metrics import METRIC_INFO
from matbench.paired import Resampling
from matbench.ranking import ROBUSTNESS_METRICS, RankConfidence
from matbench.reports import intervals, ranks
from matbench.reports.check import GateStats, compare, format_json, format_text, parse_tolerance
from matbench.reports.leaderboard import build_tables, leaderboard, load_entries, overlapping_leader
from matbench.reports.published import attach
from matbench.reports.render import render_site
from matbench.reports.tables import fmt_value, render
from matbench.results import find_records


def _metrics(s: str | None) -> list[str] | None:
    return [m.strip().lower() for m in s.split(",") if m.strip()] if s else None


def _write(text: str, out: str | None) -> None:
    if out:
        from matbench.io import check_output, write_text_atomic

        check_output(out, kind="file")
        write_text_atomic(out, text)
    else:
        sys.stdout.write(text)


def cmd_report(args: argparse.Namespace) -> int:

    check_output(args.output, args.run_dirs)
    index = render_site(args.run_dirs, args.output, per_page=args.per_page, max_images=args.max_images,
                        title=args.title, hole_overlay=args.hole_overlay)
    print(f"report written: {index}")
    return 0


def cmd_table(args: argparse.Namespace) -> int:

    tables = build_tables(load_entries(args.run_dirs), metrics=_metrics(args.metrics))
    if args.ci or args.format == "csv":  # rank confidence: md/LaTeX mark it with --ci, CSV always has its columns
        ranks.attach(tables)

    _write(attach(tables, args.format, render(tables, args.format, ci=args.ci)), args.output)
    return 0


def _rank_lines(rows: list, sort: str, rs: Resampling) -> tuple[RankConfidence | None, list[str]]:
    """Rank confidence of the sort metric for a group and the lines under its table; without it, why not and the
    old overlap note as the fallback."""
    label = METRIC_INFO[sort].label
    r = ranks.group_ranks([row.entry for row in rows], [sort], rs)[sort]
    if isinstance(r, RankConfidence):
        pairs = [f"{a}–{b}" for a, b, sep in zip(r.order[:-1], r.order[1:], r.separated[:-1], strict=True)
                 if not sep]
        lines = [f"{ranks.MARK} separated from the next model by {label} at α = {r.alpha:g} (paired bootstrap over the "
                 f"same {r.n} images, {r.n_resamples} resamples, Holm-corrected over {len(r.order) - 1} neighbour "
                 f"pair(s)). P(#1): probability of ranking first; rank: its {1 - r.alpha:.0%} interval."]
        if pairs:
            lines.append(f"Not separated: {', '.join(pairs)}.")
        return r, lines + [""]
    lines = [f"No rank confidence for {label}: {r}."]
    close = overlapping_leader(rows, sort)
    if close:
        lines.append(f"Not separated from #1 at 95 % (fallback: separate intervals, a weaker test than the paired "
                     f"one): the {label} interval of {', '.join(close)} overlaps #1's, so their order against #1 is "
                     "not established.")
    return None, lines + [""]


def cmd_leaderboard(args: argparse.Namespace) -> int:

    entries = load_entries(args.run_dirs)
    board = leaderboard(entries, sort_by=args.sort)
    metrics = _metrics(args.metrics) or [m for m in METRIC_INFO if any(m in e.record.metrics for e in entries)]
    if not 0.0 < args.alpha < 1.0:
        raise SpecError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.n_resamples < 1:
        raise SpecError(f"--n-resamples must be >= 1, got {args.n_resamples}")
    rs = Resampling(args.n_resamples, 0, args.alpha)
    lines: list[str] = []
    for (dataset, maskset, res), rows in board.items():
        rc, rank_lines = _rank_lines(rows, args.sort, rs) if args.ci else (None, [])
        lines.append(f"## {dataset} / {maskset} @ {res}  (sorted by {args.sort})")
        lines.append("")
        header = ["#", "Model", "n"] + (["P(#1)", "rank"] if rc else []) + [
            METRIC_INFO[m].label + ("↑" if METRIC_INFO[m].higher_is_better else "↓") for m in metrics] + ["Run"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---:", ":---", "---:"] + ["---:"] * (len(metrics) + (2 if rc else 0))
                                    + [":---"]) + "|")
        reasons: list[str] = []
        for row in rows:
            e = row.entry
            n = max((v.n for v in row.values.values()), default=0)
            vals = []
            for m in metrics:
                mv = row.values.get(m)
                if mv is None or mv.value is None:
                    vals.append("–")
                    continue
                iv = intervals.of(m, mv) if args.ci else intervals.Interval("none")
                if iv.reason:
                    reasons.append(iv.reason)
                vals.append(f"{fmt_value(m, mv.value)} {iv.text}".rstrip())
            label = e.row_label + e.smoke_mark
            conf = rc.of(e.row_label) if rc and row.rank is not None else None
            extra = []
            if rc:
                extra = ["–", "–"] if conf is None else [
                    f"{conf['p_rank1']:.2f}", f"[{conf['rank_lo']}, {conf['rank_hi']}]"]
                if conf and conf["separated_from_next"]:
                    label += f" {ranks.MARK}"
            rank = "–" if row.rank is None else str(row.rank)  # a model on random weights is not ranked
            lines.append("| " + " | ".join([rank, label, str(n)] + extra + vals + [str(e.run_dir)]) + " |")
        lines.append("")
        if args.ci:
            if reasons:
                lines += [intervals.footnote(reasons), ""]
            lines += rank_lines
        if args.robustness:
            ranked = [row.entry for row in rows if row.rank is not None]
            rob = [m for m in metrics if m in ROBUSTNESS_METRICS or m == args.sort]
            lines += ranks.robustness_markdown(ranks.group_robustness(ranked, args.sort, rob), args.sort)
    _write("\n".join(lines), args.output)
    return 0


def cmd_check(args: argparse.Namespace) -> int:

    if args.baseline.startswith("history:"):
        from matbench.commands.history import check_against_history

        return check_against_history(args, parse_tolerance(args.tolerance))
    for p in (args.current, args.baseline):
        if not Path(p).exists():
            raise InputError(f"{p}: no such file or directory")
    current, baseline = find_records([args.current]), find_records([args.baseline])
    tol = parse_tolerance(args.tolerance)  # after reading: records describe metrics of user modules
    if not 0.0 < args.alpha < 0.5:
        raise SpecError(f"--alpha must be in (0, 0.5), got {args.alpha}")
    if args.n_resamples < 1:
        raise SpecError(f"--n-resamples must be >= 1, got {args.n_resamples}")
    stats = GateStats(args.alpha, args.n_resamples, args.seed) if args.paired else None
    res = compare(current, baseline, tol, stats)
    print(format_json(res) if args.json else format_text(res, verbose=args.verbose_diff))
    return res.exit_code


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="render a static HTML report (leaderboards, plots, image pages)",
                              description="Render a self-contained static site from run/result directories. "
                                          "Open REPORT_DIR/index.html in a browser (works from file://).")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or eval folders")
    p.add_argument("-o", "--out", "--output", dest="output", required=True, metavar="REPORT_DIR",
                   help="folder to write the site into")
    p.add_argument("--per-page", type=int, default=50, help="images per comparison page (default 50)")
    p.add_argument("--max-images", type=int, default=None,
                   help="at most this many images per comparison (worst first); default all")
    p.add_argument("--title", default="matbench report", help="page title (default 'matbench report')")
    p.add_argument("--hole-overlay", choices=("tint", "opaque"), default="tint",
                   help="comparison pages' default hole overlay: 65%% magenta over the ground truth (tint) or solid "
                        "magenta (opaque); both are rendered and the page can switch (default tint)")
    p.set_defaults(func=cmd_report)

    add_report_options(p)

    t = subparsers.add_parser("table", help="paper table (MAT Table 2 layout) as Markdown, LaTeX or CSV",
                              description="One table per dataset and resolution: FID↓ P-IDS↑ U-IDS↑ per mask "
                                          "set, then the further metrics; best value bold.")
    t.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or eval folders")
    t.add_argument("--format", choices=("md", "latex", "csv"), default="md", help="Markdown (default), LaTeX "
                   "booktabs or CSV")
    # on by default, as in `leaderboard` (issue 25): a value without its spread invites over-reading
    t.add_argument("--ci", action=argparse.BooleanOptionalAction, default=True,
                   help="show ± half the confidence-interval width (md, latex; default on; --no-ci: values only)")
    t.add_argument("--metrics", help="comma-separated metrics to show (default: all present)")
    t.add_argument("-o", "--out", "--output", dest="output", help="write to this file instead of stdout")
    t.set_defaults(func=cmd_table)
    add_table_options(t)

    lb = subparsers.add_parser("leaderboard", help="merge many runs into ranked tables (refuses mixed protocols)",
                               description="Merge results from many runs; one ranked table per dataset × mask "
                                           "set × resolution. Refuses to put numbers side by side whose protocol "
                                           "(dataset manifest, mask set, FID convention, extractor, image count, "
                                           "resolution) differs, naming the field (exit 2).")
    lb.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or eval folders")
    lb.add_argument("--sort", default="fid", help="metric to rank by (default fid)")
    lb.add_argument("--metrics", help="comma-separated metrics to show (default: all present)")
    lb.add_argument("--ci", action=argparse.BooleanOptionalAction, default=True,
                    help="95%% intervals beside the values, and the rank confidence of --sort: P(rank 1), rank "
                         "interval, which rows are separated from the next (paired, Holm-corrected; default on)")
    lb.add_argument("--alpha", type=float, default=0.05, help="level of the separation tests (default 0.05)")
    lb.add_argument("--n-resamples", type=int, default=2000, help="paired resamples (default 2000)")
    lb.add_argument("--robustness", action="store_true",
                    help="add per group: Kendall τ between the rankings by each metric family and rank stability "
                         "under N/2 and N/4 subsets, with a one-line verdict")
    lb.add_argument("-o", "--out", "--output", dest="output",
                    help="write Markdown to this file instead of stdout")
    lb.set_defaults(func=cmd_leaderboard)

    c = subparsers.add_parser(
        "check", help="regression gate: compare CURRENT with --baseline (exit 0 ok, 1 regression, 2 mismatch)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare every metric of every job in CURRENT with the same job in BASELINE.\n\n"
                    "Tolerances are ABSOLUTE, in the units stored in metrics.json (P-IDS/U-IDS as fractions:\n"
                    "pids=0.005 allows 0.5 percentage points; fid=0.05 allows 0.05 FID points). Direction-aware:\n"
                    "only a move in the worse direction beyond the tolerance fails; a better value never does.\n\n"
                    "Paired gate: when a job has per-image rows (per_image.csv; features.npz for FID/FD) for the\n"
                    "same images and masks on both sides, a metric with a paired interval fails only if it is\n"
                    "worse beyond the tolerance AND significantly so (one-sided paired bootstrap, --alpha); the\n"
                    "output gives delta, the interval and the p-value, and names the jobs/metrics that used the\n"
                    "tolerance alone (docs/statistics.md).\n\n"
                    "Exit codes: 0 all within tolerance; 1 regression, or a job/metric of the baseline missing;\n"
                    "2 protocol mismatch (field named), smoke-vs-real comparison, or no job in common.")
    c.add_argument("current", metavar="CURRENT", help="run/result directory or metrics.json")
    c.add_argument("--baseline", required=True, metavar="BASELINE", help="run/result directory or metrics.json, "
                   "or history:last | history:best[:N] (the results history: the latest record of each job, or "
                   "each metric's best over the last N records of the job's latest protocol)")
    c.add_argument("--history", metavar="PATH", help="history database for --baseline history:... (default "
                   "$MATBENCH_HISTORY or the project's file under ~/.local/share/matbench/projects/)")
    c.add_argument("--tolerance", metavar="SPEC",
                   help="absolute tolerances, e.g. fid=0.05,pids=0.005,default=0.01 (defaults: fid=0.05, "
                        "kid=0.0005, pids=uids=0.005, lpips=0.002, precision=recall=0.005, psnr=0.05, "
                        "ssim=0.002, l1=0.001, diversity=0.005)")
    c.add_argument("--alpha", type=float, default=0.05, help="paired gate: one-sided significance level "
                   "(default 0.05; about this share of false alarms when nothing changed and the tolerance is 0)")
    c.add_argument("--n-resamples", type=int, default=2000, metavar="B", help="paired gate: bootstrap resamples "
                   "(default 2000)")
    c.add_argument("--seed", type=int, default=0, help="paired gate: seed of the image draws (default 0)")
    c.add_argument("--paired", action=argparse.BooleanOptionalAction, default=True,
                   help="use the paired test where both sides have per-image rows (default on; --no-paired: "
                        "tolerances only)")
    c.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    c.add_argument("--verbose-diff", action="store_true", help="list every compared metric, not only failures")
    c.set_defaults(func=cmd_check)
