"""`matbench study make | analyze`: a two-alternative forced-choice user study on a static page."""

from __future__ import annotations

import argparse
import glob
import sys

from matbench.errors import InputError
from matbench.io import check_output, write_json_atomic
from matbench.study.analyze import analyze, find_study, render_tables, render_text
from matbench.study.make import make_study


def cmd_make(args: argparse.Namespace) -> int:

    check_output(args.output, args.results)
    path = make_study(args.results, args.output, pairs=args.pairs, seed=args.seed, attention=args.attention,
                      title=args.title, attention_against=args.attention_against)
    out = path.parent
    print(f"study written: {out / 'index.html'} (open it from file:// or put {out} on any static host; "
          f"collect the exported files in {out / 'choices'}/, then `matbench study analyze "
          f"{out / 'choices'}/*.json`)")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from pathlib import Path


    files = []
    for pattern in args.choices:  # also expand globs the shell did not (Windows, quoted patterns)
        matched = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matched:  # say which pattern, not "no choice files given"
            raise InputError(f"{pattern}: matched no choice file")
        files.extend(matched)
    result = analyze(files, study=args.study, min_attention=args.min_attention, n_bootstrap=args.bootstrap,
                     seed=args.seed, prior=args.prior)
    out = Path(args.output) if args.output else find_study([Path(f) for f in files], args.study).parent / \
        "analysis.json"
    write_json_atomic(out, result)
    sys.stdout.write(render_text(result) if args.format == "text" else render_tables(result, args.format))
    print(f"\nanalysis written: {out} (matbench report RUN... --study {out}; matbench table RUN... --study {out})",
          file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="user study (2AFC): make a static page, analyse the choices",
                              description="Two-alternative forced-choice user study. `make` writes a static page "
                                          "(works from file://); `analyze` ranks the models from the exported "
                                          "choices.")
    sub = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND", required=True)
    m = sub.add_parser("make", help="write the study page",
                       description="Per trial: the masked input and two models' results for the same image, in "
                                   "random left/right order; plus attention checks (a result against a deliberately "
                                   "broken fill, or against the ground truth).")
    m.add_argument("results", nargs="+", metavar="RESULTS",
                   help="run directories or `matbench eval` output folders (at least two models on the same images)")
    m.add_argument("--pairs", type=int, required=True, metavar="N", help="number of comparison trials")
    m.add_argument("--seed", type=int, default=0, help="seed for pairs, images and left/right order")
    m.add_argument("--attention", type=int, default=None, metavar="K",
                   help="attention-check trials (default max(2, N/10))")
    m.add_argument("--attention-against", choices=("broken", "gt"), default="broken",
                   help="attention checks: a model's result against the same result with a broken fill (default; "
                        "the result is the answer), or a result against the ground truth (the ground truth is)")
    m.add_argument("--title", default="Which result looks better?", help="the question on the study page")
    m.add_argument("-o", "--out", "--output", dest="output", required=True, metavar="DIR",
                   help="study folder to write")
    m.set_defaults(func=cmd_make)

    a = sub.add_parser("analyze", help="preference rates, Bradley–Terry ranking, attention checks, metric agreement")
    a.add_argument("choices", nargs="+", metavar="CHOICES_JSON", help="exported choice files (DIR/choices/*.json)")
    a.add_argument("--study", metavar="DIR", help="the study folder (default: found next to the choice files)")
    a.add_argument("--min-attention", type=float, default=1.0, metavar="RATE",
                   help="exclude participants who pass fewer attention checks than this fraction (default 1.0)")
    a.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (0: none)")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a.add_argument("--prior", type=float, default=0.0,
                   help="virtual wins each way per compared pair (0: plain MLE; 0.5 when a model never won/lost)")
    a.add_argument("--format", choices=("text", "md", "latex", "csv"), default="text", help="output tables")
    a.add_argument("-o", "--out", "--output", dest="output", metavar="FILE",
                   help="analysis JSON (default DIR/analysis.json)")
    a.set_defaults(func=cmd_analyze)
