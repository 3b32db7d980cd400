"""Paper tables from result records: Markdown, LaTeX (booktabs) and CSV, built on pandas frames.

Layout follows MAT's Table 2: one table per dataset and resolution, rows = models, FID↓ / P-IDS↑ /
U-IDS↑ per mask set (small before large), then the further metrics (LPIPS, precision, recall, PSNR,
SSIM, L1, ...) per mask set. Values are shown in display units (METRIC_INFO scale and digits); the best
value of each column is bold (compared at display precision; no bold with a single row). With `ci`
every value carries its confidence interval as `reports.intervals` decides: ± half-width when symmetric,
[lo, hi] when asymmetric, a dagger and a footnote when the sample size cannot support one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matbench.reports import intervals, ranks
from matbench.reports.leaderboard import Table

from matbench.io import csv_safe_text
from matbench.metrics import METRIC_INFO
from matbench.results import MetricValue

FORMATS = ("md", "latex", "csv")
SMOKE_NOTE = "SMOKE: computed with random weights or stand-ins; not comparable to published numbers."


def arrow(metric: str) -> str:
    return "↑" if METRIC_INFO[metric].higher_is_better else "↓"


def fmt_value(metric: str, v: float) -> str:
    info = METRIC_INFO[metric]
    return f"{v * info.scale:.{info.digits}f}"


def ci_halfwidth(metric: str, mv: MetricValue) -> str | None:
    """± half the CI width in display units, or None when the CI is unknown."""
    if mv.ci_low is None or mv.ci_high is None:
        return None
    return fmt_value(metric, (mv.ci_high - mv.ci_low) / 2)


def frame(table: Table) -> pd.DataFrame:
    """Display-scaled numeric values: index = model rows, columns = MultiIndex (mask set, metric)."""
    cols = pd.MultiIndex.from_tuples(table.columns, names=["maskset", "metric"])
    data = [[(table.cells[(r, ms, m)].value * METRIC_INFO[m].scale) if (r, ms, m) in table.cells else None
             for ms, m in table.columns] for r in table.rows]
    return pd.DataFrame(data, index=pd.Index(table.rows, name="model"), columns=cols, dtype=float)


def _cell_parts(table: Table, row: str, ms: str, m: str, ci: bool
                ) -> tuple[str, intervals.Interval, bool] | None:
    mv = table.cells.get((row, ms, m))
    if mv is None or mv.value is None:
        return None
    iv = intervals.of(m, mv) if ci else intervals.Interval("none")
    return fmt_value(m, mv.value), iv, row in table.best(ms, m)


def _row_label(table: Table, row: str) -> str:
    return table.row_label(row)


# ---------------------------------------------------------------- Markdown

def to_markdown(tables: Sequence[Table], ci: bool = False) -> str:
    out: list[str] = []
    for t in tables:
        out.append(f"### {t.title}")
        out.append("")
        if t.smoke:
            out.append(f"> **{SMOKE_NOTE}**")
            out.append("")
        header = ["Model"] + [f"{ms} {METRIC_INFO[m].label}{arrow(m)}" for ms, m in t.columns]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join([":---"] + ["---:"] * len(t.columns)) + "|")
        reasons: list[str] = []
        for r in t.rows:
            cells = [_row_label(t, r).replace("|", "\\|")]
            for ms, m in t.columns:
                parts = _cell_parts(t, r, ms, m, ci)
                if parts is None:
                    cells.append("–")
                    continue
                val, iv, best = parts
                s = f"**{val}**" if best else val
                if iv.reason:
                    reasons.append(iv.reason)
                mark = f" {ranks.MARK}" if ci and ranks.marked(t, r, ms, m) else ""
                cells.append(s + (f" {iv.text}" if iv.text else "") + mark)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        if reasons:
            out.append(intervals.footnote(reasons))
            out.append("")
        for note in _rank_notes(t, ci):
            out += [note, ""]
    return "\n".join(out)


def _rank_notes(t: Table, ci: bool) -> list[str]:
    """The ‡ footnote and the columns without rank confidence; nothing when no column has any (output as before)."""
    if not ci:
        return []
    return [x for x in (ranks.footnote(t), ranks.missing_note(t)) if x]


# ---------------------------------------------------------------- LaTeX

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in s)


def latex_label(metric: str) -> str:
    label = latex_escape(METRIC_INFO[metric].label).replace("×10³", r"$\times10^3$")
    return label + (r"$\uparrow$" if METRIC_INFO[metric].higher_is_better else r"$\downarrow$")


def to_latex(tables: Sequence[Table], ci: bool = False) -> str:
    """booktabs tabulars (needs \\usepackage{booktabs}); one per dataset and resolution."""
    out: list[str] = []
    for t in tables:
        out.append(f"% {t.title}")
        out.append(r"\begin{tabular}{l" + "c" * len(t.columns) + "}")
        out.append(r"\toprule")
        # Mask-set header: one \multicolumn per contiguous run of columns with the same mask set.
        runs: list[tuple[str, int, int]] = []  # (maskset, first col (1-based after label), last col)
        for i, (ms, _) in enumerate(t.columns, start=2):
            if runs and runs[-1][0] == ms:
                runs[-1] = (ms, runs[-1][1], i)
            else:
                runs.append((ms, i, i))
        out.append(" & " + " & ".join(rf"\multicolumn{{{b - a + 1}}}{{c}}{{{latex_escape(ms)}}}"
                                       for ms, a, b in runs) + r" \\")
        out.append(" ".join(rf"\cmidrule(lr){{{a}-{b}}}" for _, a, b in runs))
        out.append("Method & " + " & ".join(latex_label(m) for _, m in t.columns) + r" \\")
        out.append(r"\midrule")
        reasons: list[str] = []
        for r in t.rows:
            cells = [latex_escape(_row_label(t, r))]
            for ms, m in t.columns:
                parts = _cell_parts(t, r, ms, m, ci)
                if parts is None:
                    cells.append("--")
                    continue
                val, iv, best = parts
                s = rf"\textbf{{{val}}}" if best else val
                cells.append(s + _latex_interval(iv) + (r"$^\ddagger$" if ci and ranks.marked(t, r, ms, m) else ""))
                if iv.reason:
                    reasons.append(iv.reason)
            out.append(" & ".join(cells) + r" \\")
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
        # Notes are printed text below the tabular (visible in the PDF), not % comments.
        notes = ([r"\textbf{" + latex_escape(SMOKE_NOTE.split(":")[0]) + ":}"
                  + latex_escape(SMOKE_NOTE.split(":", 1)[1])] if t.smoke else [])
        if reasons:
            notes.append(r"$^\dagger$" + latex_escape(intervals.footnote(reasons)[1:]))
        notes += [(r"$^\ddagger$" + latex_escape(n[1:]) if n.startswith(ranks.MARK) else latex_escape(n))
                  .replace("α", r"$\alpha$") for n in _rank_notes(t, ci)]
        for note in notes:
            out.append(r"\par{\footnotesize " + note + r"\par}")
        out.append("")
    return "\n".join(out)


def _latex_interval(iv: intervals.Interval) -> str:
    if iv.kind == "symmetric":
        return rf"{{\scriptsize$\pm${iv.half}}}"
    if iv.kind == "asymmetric":
        return rf"{{\scriptsize[{iv.lo}, {iv.hi}]}}"
    if iv.kind == "unsupported":
        return r"$^\dagger$"
    return ""


# ---------------------------------------------------------------- CSV

CSV_COLUMNS = ["dataset", "resolution", "maskset", "model", "metric", "label", "value", "ci_low", "ci_high",
               "n", "best", "smoke", "ci_kind", "ci_note", *ranks.CSV_COLUMNS]


def long_frame(tables: Sequence[Table]) -> pd.DataFrame:
    """Tidy rows (one per cell) in display units, for spreadsheets and pivot tables."""
    recs = []
    for t in tables:
        smoke_rows = t.smoke_rows()
        for r in t.rows:
            for ms, m in t.columns:
                mv = t.cells.get((r, ms, m))
                if mv is None or mv.value is None:
                    continue
                sc = METRIC_INFO[m].scale

                def disp(x: float | None, sc: float = sc) -> float | None:
                    return None if x is None else round(x * sc, 6)

                iv = intervals.of(m, mv)
                # An unsupported interval's bounds are left empty so no spreadsheet takes them as exact;
                # ci_note keeps them with the reason.
                keep = iv.kind in ("symmetric", "asymmetric")
                note = f"recorded [{iv.lo}, {iv.hi}]; {iv.reason}" if iv.kind == "unsupported" else ""
                recs.append({"dataset": t.dataset, "resolution": t.resolution, "maskset": ms, "model": r,
                             "metric": m, "label": METRIC_INFO[m].label, "value": disp(mv.value),
                             "ci_low": disp(mv.ci_low) if keep else None,
                             "ci_high": disp(mv.ci_high) if keep else None, "n": mv.n,
                             "best": r in t.best(ms, m), "smoke": r in smoke_rows, "ci_kind": iv.kind,
                             "ci_note": note, **ranks.csv_fields(t, r, ms, m)})
    df = pd.DataFrame(recs, columns=CSV_COLUMNS)
    return df.astype({"n": "Int64", "rank_lo": "Int64", "rank_hi": "Int64"}) if len(df) else df


def to_csv(tables: Sequence[Table], ci: bool = True) -> str:
    """CSV always carries the CI bounds (empty when unknown); `ci` is accepted for symmetry."""
    return csv_safe_text(long_frame(tables)).to_csv(index=False, lineterminator="\n")  # no formulas


def render(tables: Sequence[Table], fmt: str, ci: bool = False) -> str:
    if fmt == "md":
        return to_markdown(tables, ci)
    if fmt == "latex":
        return to_latex(tables, ci)
    if fmt == "csv":
        return to_csv(tables, ci)
    raise ValueError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")
