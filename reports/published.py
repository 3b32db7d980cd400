"""Published values beside ours (`matbench eval --protocol NAME`): one extra table after the paper tables
(Markdown, LaTeX) or three extra CSV columns. A result carries its comparison in
``metrics[m].extra["published"]`` = {protocol, row, value, diff, inside_ci} (stored units, diff = ours - published).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matbench.reports.tables import latex_escape

from matbench.metrics import METRIC_INFO


def rows(tables: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for t in tables:
        for (row, ms, m), mv in t.cells.items():
            pub = (mv.extra or {}).get("published") if mv is not None else None
            if not pub:
                continue
            sc, dg = METRIC_INFO[m].scale, METRIC_INFO[m].digits
            out.append({"dataset": t.dataset, "resolution": t.resolution, "maskset": ms, "model": row, "metric": m,
                        "label": METRIC_INFO[m].label, "ours": round(mv.value * sc, dg),
                        "published": round(pub["value"] * sc, dg), "diff": round(pub["diff"] * sc, dg),
                        "inside_ci": pub.get("inside_ci"), "protocol": pub.get("protocol", ""),
                        "row": pub.get("row", "")})
    return out


def _inside(v: bool | None) -> str:
    return "–" if v is None else ("yes" if v else "no")


def to_markdown(rs: list[dict[str, Any]]) -> str:
    lines = ["### Published values beside ours", "",
             "| Model | Mask set | Metric | Ours | Published | Δ (ours − published) | Inside our 95% CI "
             "| Protocol (row) |",
             "|:---|:---|:---|---:|---:|---:|:---:|:---|"]
    for r in rs:
        lines.append(f"| {r['model']} | {r['maskset']} | {r['label']} | {r['ours']} | {r['published']} | "
                     f"{r['diff']:+} | {_inside(r['inside_ci'])} | {r['protocol']} ({r['row']}) |")
    return "\n".join(lines) + "\n"


def to_latex(rs: list[dict[str, Any]]) -> str:

    lines = ["% Published values beside ours", r"\begin{tabular}{lllrrrc}", r"\toprule",
             r"Method & Mask set & Metric & Ours & Published & $\Delta$ & In CI \\", r"\midrule"]
    for r in rs:
        lines.append(" & ".join([latex_escape(str(r["model"])), latex_escape(str(r["maskset"])),
                                 latex_escape(r["label"]), str(r["ours"]), str(r["published"]), f"{r['diff']:+}",
                                 _inside(r["inside_ci"])]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _csv(text: str, rs: list[dict[str, Any]]) -> str:
    import pandas as pd

    df = pd.read_csv(io.StringIO(text), dtype={"maskset": str, "model": str, "metric": str,
                                               "rank_lo": "Int64", "rank_hi": "Int64"})  # empty where no ranks
    key = {(str(r["maskset"]), str(r["model"]), r["metric"]): r for r in rs}
    get = lambda row, f: key.get((str(row["maskset"]), str(row["model"]), row["metric"]), {}).get(f)  # noqa: E731
    df["published"] = [get(row, "published") for _, row in df.iterrows()]
    df["published_diff"] = [get(row, "diff") for _, row in df.iterrows()]
    df["published_inside_ci"] = [get(row, "inside_ci") for _, row in df.iterrows()]
    return df.to_csv(index=False, lineterminator="\n")


def attach(tables: Sequence[Any], fmt: str, text: str) -> str:
    """The rendered tables plus the published comparison (unchanged when no result names a protocol)."""
    rs = rows(tables)
    if not rs:
        return text
    if fmt == "md":
        return text.rstrip("\n") + "\n\n" + to_markdown(rs)
    if fmt == "latex":
        return text.rstrip("\n") + "\n\n" + to_latex(rs)
    if fmt == "csv":
        return _csv(text, rs)
    return text
