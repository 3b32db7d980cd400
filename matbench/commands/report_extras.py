"""Options that `matbench report` and `matbench table` gain from the results history and the user study.

Kept apart from commands/report.py so that file stays as it is: `report --history [PATH]` adds the trend page,
`report --study ANALYSIS_JSON` the user-study page (both linked from the pages' headers), `table --study
ANALYSIS_JSON` appends the study's ranking and metric agreement to the tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matbench.doctor import read_saved
from matbench.errors import SpecError
from matbench.history import resolve_path
from matbench.reports.doctor_page import doctor_runs, page_name, render_doctor
from matbench.reports.render import _env
from matbench.reports.trend import STUDY_PAGE, TREND_PAGE, add_nav_links, render_study, render_trend
from matbench.study.analyze import read_analysis, render_tables


def add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", nargs="?", const="default", metavar="PATH",
                   help="add a trend page from the results history (PATH, or $MATBENCH_HISTORY / the default file)")
    p.add_argument("--study", metavar="ANALYSIS_JSON", help="add the user-study page (`matbench study analyze`)")
    p.add_argument("--doctor", metavar="FILE", help="add the doctor's page from a saved report (`matbench doctor ... "
                   "--save FILE`); without it the report runs the doctor on each job whose run names a protocol")
    p.add_argument("--no-doctor", action="store_true", help="do not run the doctor on jobs that name a protocol")
    base = p.get_default("func")

    def cmd(args: argparse.Namespace) -> int:
        _check_inputs(args)
        rc = base(args)
        if rc == 0:
            _extra_pages(args)
        return rc

    p.set_defaults(func=cmd)


def add_table_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--study", metavar="ANALYSIS_JSON", help="append the user study's ranking and metric agreement")
    base = t.get_default("func")

    def cmd(args: argparse.Namespace) -> int:
        if not args.study:
            return base(args)

        study = render_tables(read_analysis(args.study), args.format)  # fails before anything is written
        rc = base(args)
        if rc != 0:
            return rc
        sep = "\n" if args.format == "csv" else "\n\n"
        if args.output:
            from matbench.io import write_text_atomic

            write_text_atomic(args.output, Path(args.output).read_text().rstrip("\n") + sep + study)
        else:
            sys.stdout.write(sep + study)
        return 0

    t.set_defaults(func=cmd)


def _history_path(args: argparse.Namespace) -> Path:

    path = resolve_path(None if args.history == "default" else args.history)
    if path is None or not path.is_file():
        raise SpecError(f"--history: no results history at {path}")
    return path


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse a missing history or analysis before the (longer) site rendering starts."""
    if args.history:
        _history_path(args)
    if args.study:
        from matbench.study.analyze import read_analysis

        read_analysis(args.study)
    if args.doctor:
        read_saved(args.doctor)


def _extra_pages(args: argparse.Namespace) -> None:
    # a saved doctor report wins; else the doctor runs on the jobs that name a protocol (unless --no-doctor)
    doctors = [read_saved(args.doctor)] if args.doctor else []
    if not args.doctor and not args.no_doctor:
        doctors, notes = doctor_runs(args.run_dirs)
        for note in notes:
            print(note)
    if not (args.history or args.study or doctors):
        return

    out = Path(args.output)
    links = ([(TREND_PAGE, "Trend")] if args.history else []) + ([(STUDY_PAGE, "User study")] if args.study else [])
    many = len(doctors) > 1
    links += [(page_name(k), f"Doctor ({d.get('job', k + 1)})" if many else "Doctor") for k, d in enumerate(doctors)]
    pages = [out / "index.html"]
    if args.history:
        pages.append(render_trend(_history_path(args), out, _env(), title=args.title))
    if args.study:
        pages.append(render_study(read_analysis(args.study), out, _env(), title=args.title))
    for k, d in enumerate(doctors):
        pages.append(render_doctor(d, out, _env(), title=args.title, page=page_name(k)))
    for page in pages:
        add_nav_links(page, links)
    print(f"added: {', '.join(str(p) for p in pages[1:])}")
