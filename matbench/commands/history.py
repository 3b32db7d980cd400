"""`matbench history`: list the results history; `matbench history import RUN_DIR...` adds older runs.

Also the shared `--history PATH` / `--no-history` options that `run` and `eval` use to append their records.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from matbench.errors import InputError, MatbenchError, SpecError
from matbench.history import History, append_results, baseline_records, parse_baseline, resolve_path, table_rows
from matbench.reports.check import MISMATCH, CheckResult, compare, format_json, format_text
from matbench.results import find_records

log = logging.getLogger(__name__)
ENV_NAME = "MATBENCH_HISTORY"  # matbench.history.ENV, not imported at CLI start


def add_history_options(p: argparse.ArgumentParser) -> None:
    """--history PATH / --no-history on a command that appends results."""
    p.add_argument("--history", metavar="PATH", type=_history_arg,
                   help="results history database to append to (default $MATBENCH_HISTORY or the project's "
                        "file under ~/.local/share/matbench/projects/)")
    p.add_argument("--no-history", action="store_true", help="do not append the results to the history")


def _history_arg(s: str) -> str:
    """Refuse at parse time, before hours of computing, a name SQLite keeps in memory (matbench.history has the
    same rule for $MATBENCH_HISTORY and every other reader)."""
    if s.startswith("file:") or s == ":memory:":
        raise argparse.ArgumentTypeError(f"{s}: give the path of a history file, not an SQLite URI or in-memory "
                                         "database (nothing would be kept)")
    return s


def append_after(args: argparse.Namespace, paths: Sequence[str | Path], source: str) -> None:
    """Append the records below `paths` to the history chosen by args; never fails the command that made them."""

    path: Path | str | None = getattr(args, "history", None) or "$" + ENV_NAME
    try:
        path = resolve_path(getattr(args, "history", None), getattr(args, "no_history", False))
        if path is None:
            return
        n = append_results(paths, source, path)
    except (MatbenchError, OSError, ValueError) as e:  # sqlite3.Error is not among these: see below
        print(f"matbench: warning: results not added to the history {path}: {e}", file=sys.stderr)
        return
    except Exception as e:  # a locked/corrupt database must not turn a finished run into a failure
        import sqlite3

        if not isinstance(e, sqlite3.Error):
            raise
        print(f"matbench: warning: results not added to the history {path}: {e}", file=sys.stderr)
        return
    print(f"history: {n} new record(s) in {path}", file=sys.stderr)


def _history_path(args: argparse.Namespace) -> Path:

    path = resolve_path(args.history)
    if path is None:
        raise SpecError("the results history is off (MATBENCH_HISTORY=off); pass --history PATH")
    return path


def cmd_list(args: argparse.Namespace) -> int:

    path = _history_path(args)
    rows = History(path).rows(model=args.model, protocol=args.protocol, metric=args.metric,
                              dataset=args.dataset, maskset=args.maskset)
    header, table = table_rows(rows, args.metric)
    if args.format == "json":
        out = [dict(zip(header, r, strict=True)) for r in table]
        sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(table)
        sys.stdout.write(buf.getvalue())
    else:
        sys.stdout.write(_text_table(header, table, path) + "\n")
    return 0


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _text_table(header: list[str], rows: list[list[object]], path: Path) -> str:
    if not rows:
        return f"(no records in {path})"
    keep = [i for i, h in enumerate(header) if h not in ("source", "path", "dataset", "resolution")]
    cells = [[header[i] for i in keep]]
    for r in rows:
        c = [_fmt(r[i]) for i in keep]
        c[keep.index(header.index("commit"))] = (str(r[header.index("commit")])[:10]
                                                 if r[header.index("commit")] else "–")
        c[keep.index(header.index("created"))] = str(r[header.index("created")])[:19]
        c[keep.index(header.index("smoke"))] = "SMOKE" if r[header.index("smoke")] else ""
        c[keep.index(header.index("maskset"))] = f"{r[header.index('dataset')]}/{r[header.index('maskset')]}" \
                                                 f"@{r[header.index('resolution')]}"
        cells.append(c)
    cells[0][keep.index(header.index("maskset"))] = "job"
    widths = [max(len(row[i]) for row in cells) for i in range(len(keep))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    smoke = any(r[header.index("smoke")] for r in rows)
    if smoke:
        lines.append("SMOKE rows were computed with random weights somewhere: not comparable numbers")
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace) -> int:

    path = _history_path(args)
    records = find_records(args.run_dirs)
    # git state: what the record's provenance says, else the run directory's work tree (if it is in one)
    h = History(path)
    added = 0
    by_dir: dict[Path, list] = {}
    for r in records:
        by_dir.setdefault(Path(args.run_dirs[0]) if r.path is None else r.path.parent, []).append(r)
    for d, recs in by_dir.items():
        added += h.append(recs, source="import", cwd=d if args.git_from_dir else None,
                          git=None if args.git_from_dir else (None, None))
    print(f"imported {added} new record(s) of {len(records)} into {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "history", help="results history of every run/eval (list, import older runs)",
        description="Every `matbench run` and `matbench eval` appends its result records to a SQLite history "
                    "(--history PATH, $MATBENCH_HISTORY, default one file per project, the git top-level or the "
                    "directory: ~/.local/share/matbench/projects/NAME-HASH/history.db). "
                    "Without a subcommand: list it, one line per record and metric. "
                    "Gate against it with `matbench check CURRENT --baseline history:last|history:best[:N]`; "
                    "plot it with `matbench report RUN... -o DIR --history PATH`.")
    p.add_argument("--history", metavar="PATH", help="history database (default $MATBENCH_HISTORY or "
                   "the project's file under ~/.local/share/matbench/projects/)")
    p.add_argument("--model", help="only this model")
    p.add_argument("--protocol", metavar="P", help="only this protocol: protocol id (prefix) as listed, "
                   "DATASET/MASKSET@RES, or the protocol name a record states")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--maskset", help="only this mask set")
    p.add_argument("--metric", metavar="X", help="only this metric")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.add_argument("--json", action="store_const", dest="format", const="json", help="same as --format json")
    p.set_defaults(func=cmd_list)
    sub = p.add_subparsers(dest="history_command", metavar="SUBCOMMAND")
    imp = sub.add_parser("import", help="add the results of runs made before (run dirs, eval folders, "
                                        "metrics.json files)")
    imp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, eval folders or metrics.json "
                     "files")
    # SUPPRESS: `matbench history --history X import ...` must keep X (a subparser default would reset it)
    imp.add_argument("--history", metavar="PATH", default=argparse.SUPPRESS, help="history database (default as "
                     "above)")
    imp.add_argument("--git-from-dir", action="store_true",
                     help="record the git commit/dirty flag of the work tree holding each result (default: "
                          "only what the record's provenance says; unknown otherwise)")
    imp.set_defaults(func=cmd_import)


def check_against_history(args: argparse.Namespace, tolerance: dict[str, float]) -> int:
    """`matbench check CURRENT --baseline history:last|history:best[:N]` (same exit codes as a file baseline)."""

    mode, n = parse_baseline(args.baseline)  # type: ignore[misc]
    if not Path(args.current).exists():
        raise InputError(f"{args.current}: no such file or directory")
    current = find_records([args.current])
    path = _history_path(args)
    base, notes = baseline_records(History(path), current, mode, n)
    if base:
        res = compare(current, base, tolerance)
        res.notes[:0] = notes
    else:
        res = CheckResult(exit_code=MISMATCH, problems=[
            f"no job of the current run has an earlier record in the history {path}"])
    print(format_json(res) if args.json else format_text(res, verbose=args.verbose_diff))
    if not args.json:
        for note in notes:
            print(f"note       {note}", file=sys.stderr)
    return res.exit_code
