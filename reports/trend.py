"""Report pages from outside the run directories: the results-history trend page and the user-study page.

trend.html: per (dataset, mask set, resolution, protocol) and metric, the metric against time with one line per
model, its 95 % interval as a band, points labelled by git commit (+ when the tree was dirty). A protocol change
starts a new plot: numbers of different protocols are never drawn on one line. Smoke records are drawn hollow
and named "(smoke)".
study.html: the Bradley–Terry ranking, pair preferences, attention checks and metric agreement of a
`matbench study analyze` result.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from matbench.history import History, HistoryRow

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matbench.reports import plots as plots_mod  # noqa: E402
from matbench.reports.tables import SMOKE_NOTE  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import matbench  # noqa: E402
from matbench.metrics import METRIC_INFO  # noqa: E402

TREND_PAGE = "trend.html"
SAME_TIME = _dt.timedelta(minutes=1)  # records closer than this are drawn at one time
HALF_DAY = _dt.timedelta(hours=12)
STUDY_PAGE = "study.html"


def _time(s: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        return _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _commit(c: str | None, dirty: bool | None) -> str:
    return (c[:7] + ("+" if dirty else "")) if c else "?"


def add_nav_links(page: Path, links: Sequence[tuple[str, str]]) -> None:
    """Add header links (href, label) to a rendered page, before its first </nav>; links already there are kept
    once. (Done on the written HTML so the shared templates need no change.)"""
    import html as _html

    text = page.read_text(encoding="utf-8")
    add = "".join(f'<a href="{_html.escape(h)}">{_html.escape(label)}</a>' for h, label in links
                  if f'href="{_html.escape(h)}"' not in text)
    if add and "</nav>" in text:
        page.write_text(text.replace("</nav>", add + "\n  </nav>", 1), encoding="utf-8")


def metric_figure(rows: Sequence[HistoryRow], metric: str) -> Figure:
    """One metric of one trend block against time: a line per model, its 95 % band, points labelled by commit."""
    info = METRIC_INFO[metric]
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    times: list[_dt.datetime] = []
    values: list[float] = []
    for k, name in enumerate(sorted({r.model for r in rows})):
        pts = [(r, r.record.metrics[metric]) for r in rows if r.model == name and metric in r.record.metrics
               and r.record.metrics[metric].value is not None]
        if not pts:
            continue
        color = f"C{k % 10}"
        xs = [_time(r.created) for r, _ in pts]
        ys = [v.value * info.scale for _, v in pts]
        lo = [(v.ci_low if v.ci_low is not None else v.value) * info.scale for _, v in pts]
        hi = [(v.ci_high if v.ci_high is not None else v.value) * info.scale for _, v in pts]
        smoke = any(r.smoke for r, _ in pts)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
        ax.plot(xs, ys, "-o", color=color, label=name + (" (smoke)" if smoke else ""), markersize=4,
                markerfacecolor="none" if smoke else color)
        for (r, _), x, y in zip(pts, xs, ys, strict=True):
            ax.annotate(_commit(r.git_commit, r.git_dirty), (x, y), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7, color=color)
        times += xs
        values += ys + lo + hi
    ax.set_ylabel(info.label + (" ↑" if info.higher_is_better else " ↓"))
    plots_mod.set_value_range(ax, values, info.digits)
    if times:
        _time_axis(ax, times)
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _time_axis(ax: Any, times: Sequence[_dt.datetime]) -> None:
    """x range and ticks for the records' times. One time (a single record, or records of one run) gets a day
    around it and one tick naming it; matplotlib's own choice for a zero-width date range spans years."""
    t0, t1 = min(times), max(times)
    if t1 - t0 < SAME_TIME:
        ax.set_xlim(mdates.date2num(t0 - HALF_DAY), mdates.date2num(t0 + HALF_DAY))
        ax.set_xticks([mdates.date2num(t0)], [t0.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")])
        return
    pad = (t1 - t0) * 0.08
    ax.set_xlim(mdates.date2num(t0 - pad), mdates.date2num(t1 + pad))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def render_trend(history_path: str | os.PathLike, out_dir: str | os.PathLike, env: Any, model: str | None = None,
                 metrics: Sequence[str] | None = None, title: str = "matbench report") -> Path:
    """Write OUT/trend.html (and its plots) from the history database; returns the page's path."""

    out = Path(out_dir)
    rows = History(history_path).rows(model=model)
    groups: dict[tuple[str, str, Any, str], list[Any]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.maskset, r.resolution, r.protocol_id), []).append(r)
    sections = []
    for (ds, ms, res, pid), grp in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]),
                                                                          _time(kv[1][-1].created))):
        present = [m for m in METRIC_INFO if any(m in r.record.metrics for r in grp)
                   and (metrics is None or m in metrics)]
        plots = []
        for m in present:
            info = METRIC_INFO[m]
            fig = metric_figure(grp, m)
            stem = plots_mod.slug("trend", ds, ms, res, pid, m)
            plots.append(plots_mod.save(fig, out, stem, f"{info.label} over time",
                                        "band: 95 % interval; labels: git commit (+ = uncommitted changes)"))
        table = []
        for r in reversed(grp):  # newest first
            cells = []
            for m in present:
                v = r.record.metrics.get(m)
                info = METRIC_INFO[m]
                cells.append("–" if v is None or v.value is None else f"{v.value * info.scale:.{info.digits}f}")
            table.append({"created": r.created[:19].replace("T", " "), "commit": _commit(r.git_commit, r.git_dirty),
                          "model": r.model, "smoke": r.smoke, "source": r.source, "cells": cells, "id": r.id})
        sections.append({"title": f"{ds} / {ms} @ {res}", "protocol": pid, "plots": plots,
                         "labels": [METRIC_INFO[m].label for m in present], "rows": table,
                         "smoke": any(r.smoke for r in grp)})
    html = env.get_template("trend.html.j2").render(
        title=title, root="", smoke=any(r.smoke for r in rows), smoke_note=SMOKE_NOTE,
        version=matbench.__version__, sections=sections, history=str(history_path),
        n_records=len(rows))
    page = out / TREND_PAGE
    page.write_text(html, encoding="utf-8")
    return page


def render_study(analysis: dict[str, Any], out_dir: str | os.PathLike, env: Any,
                 title: str = "matbench report") -> Path:
    """Write OUT/study.html from a `matbench study analyze` result."""
    page = Path(out_dir) / STUDY_PAGE
    html = env.get_template("study.html.j2").render(
        title=title, root="", smoke=bool(analysis.get("smoke")), smoke_note=SMOKE_NOTE,
        version=matbench.__version__, a=analysis,
        metric_labels={m: i.label for m, i in METRIC_INFO.items()})
    page.write_text(html, encoding="utf-8")
    return page
