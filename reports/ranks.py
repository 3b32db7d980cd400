"""Rank confidence and ranking robustness for the leaderboard, the tables and the HTML report (the statistics are
in matbench.ranking): which leaderboard rows are loaded, the ‡ marker, and the notes that explain it.

A leaderboard group is one dataset, mask set and resolution: every model in it was evaluated on the same images
with the same masks (leaderboard.check_protocols), so the paired resamples are shared. Models on random weights
are not ranked and take no part.
"""

from __future__ import annotations

from collections.abc import Sequence

from matbench.reports.leaderboard import Entry, Table

from matbench.comparison import Side, load_side
from matbench.errors import InputError
from matbench.metrics import METRIC_INFO
from matbench.paired import Resampling
from matbench.ranking import (
    DEFAULT_RESAMPLING,
    ROBUSTNESS_METRICS,
    RankConfidence,
    Robustness,
    rank_metrics,
    robustness,
)

MARK = "‡"  # a row separated from the next-ranked row (the dagger † already marks unsupported intervals)
CSV_COLUMNS = ("p_rank1", "rank_lo", "rank_hi", "separated_from_next")


def sides(entries: Sequence[Entry]) -> list[Side] | str:
    """The ranked entries of one group as comparison sides labelled by row, or why they cannot be loaded."""
    out = []
    for e in entries:
        if e.model_smoke:
            continue
        if e.per_image_path() is None:
            return f"no per_image.csv in {e.result_dir} (rank confidence needs every ranked model's per-image rows)"
        try:
            s = load_side(str(e.result_dir))
        except InputError as err:
            return str(err)
        s.label = e.row_label
        out.append(s)
    return out


def group_ranks(entries: Sequence[Entry], metrics: Sequence[str], rs: Resampling
                ) -> dict[str, RankConfidence | str]:
    loaded = sides(entries)
    if isinstance(loaded, str):
        return {m: loaded for m in metrics}
    return rank_metrics(loaded, metrics, rs)


def group_robustness(entries: Sequence[Entry], reference: str, metrics: Sequence[str] | None = None,
                     seed: int = 0) -> Robustness | str:
    loaded = sides(entries)
    if isinstance(loaded, str):
        return loaded
    wanted = [m for m in (metrics if metrics is not None else ROBUSTNESS_METRICS) if m in METRIC_INFO]
    return robustness(loaded, wanted, reference, seed=seed)


def attach(tables: Sequence[Table], rs: Resampling = DEFAULT_RESAMPLING, with_robustness: bool = False) -> None:
    """Fill each table's ranks[(mask set, metric)] (and robustness[mask set], by the first column's metric)."""
    for t in tables:
        for ms, metrics in t.column_groups():
            entries = [e for (_, m), e in t.entries.items() if m == ms]
            for m, r in group_ranks(entries, metrics, rs).items():
                t.ranks[(ms, m)] = r
            if with_robustness and metrics:
                wanted = [m for m in metrics if m in ROBUSTNESS_METRICS]
                t.robustness[ms] = group_robustness(entries, metrics[0], wanted)


def marked(t: Table, row: str, maskset: str, metric: str) -> bool:
    """Whether the cell gets the ‡: its row is separated from the next-ranked row of the column."""
    r = t.ranks.get((maskset, metric))
    return isinstance(r, RankConfidence) and (r.of(row) or {}).get("separated_from_next") is True


def cell_title(t: Table, row: str, maskset: str, metric: str) -> str | None:
    """'P(rank 1) 0.93, 95 % rank interval [1, 2]' for a cell with rank confidence."""
    r = t.ranks.get((maskset, metric))
    d = r.of(row) if isinstance(r, RankConfidence) else None
    if d is None:
        return None
    sep = "; separated from the next" if d["separated_from_next"] else ""
    return f"P(rank 1) {d['p_rank1']:.2f}, {1 - r.alpha:.0%} rank interval [{d['rank_lo']}, {d['rank_hi']}]{sep}"


def has_ranks(t: Table) -> bool:
    return any(isinstance(r, RankConfidence) for r in t.ranks.values())


def footnote(t: Table) -> str | None:
    """The ‡ sentence, from the table's first rank confidence (every column uses the same resampling)."""
    r = next((r for r in t.ranks.values() if isinstance(r, RankConfidence)), None)
    if r is None:
        return None
    return (f"{MARK} separated from the next-ranked model of its column at α = {r.alpha:g}: paired bootstrap over "
            f"the same {r.n} images ({r.n_resamples} resamples shared by every model and metric), Holm-corrected "
            "over the column's neighbour pairs.")


def missing_note(t: Table) -> str | None:
    """'No rank confidence for mat-large FID, ...: why' per distinct reason; None when no column has ranks (the
    table then reads as before) or every column has them."""
    if not has_ranks(t):
        return None
    by_reason: dict[str, list[str]] = {}
    for (ms, m), r in t.ranks.items():
        if isinstance(r, str):
            by_reason.setdefault(r, []).append(f"{ms} {METRIC_INFO[m].label}")
    if not by_reason:
        return None
    return " ".join(f"No rank confidence for {', '.join(cols)}: {why}." for why, cols in by_reason.items())


def csv_fields(t: Table, row: str, maskset: str, metric: str) -> dict[str, object]:
    r = t.ranks.get((maskset, metric))
    d = r.of(row) if isinstance(r, RankConfidence) else None
    if d is None:
        return dict.fromkeys(CSV_COLUMNS)
    return {"p_rank1": round(float(d["p_rank1"]), 4), "rank_lo": d["rank_lo"], "rank_hi": d["rank_hi"],
            "separated_from_next": d["separated_from_next"]}


# ------------------------------------------------------------------ robustness as text

def _pct(x: float) -> str:
    return f"{x:.0%}"


def robustness_rows(rb: Robustness) -> list[dict[str, str]]:
    """Display rows: metric, order, Kendall τ, same top-1/top-2 as the reference, order and top-2 kept at N/2, N/4."""
    out = []
    for r in rb.rows:
        stab = {s.fraction: s for s in r.stability}
        row = {"metric": METRIC_INFO[r.metric].label, "order": " > ".join(r.order),
               "tau": "reference" if r.tau is None else ("–" if r.tau != r.tau else f"{r.tau:+.2f}"),
               "top1": "–" if r.same_top1 is None else ("yes" if r.same_top1 else "no"),
               "top2": "–" if r.same_top2 is None else ("yes" if r.same_top2 else "no"),
               "note": "" if r.stability and r.stability_note in ("subset means",) else r.stability_note}
        for key, frac in (("half", 0.5), ("quarter", 0.25)):
            s = stab.get(frac)
            row[f"order_{key}"] = "–" if s is None else _pct(s.order)
            row[f"top2_{key}"] = "–" if s is None else _pct(s.top2)
        out.append(row)
    return out


ROBUSTNESS_HEADER = ["Metric", "Order (best first)", "Kendall τ", "same #1", "same top-2", "order kept N/2",
                     "N/4", "top-2 kept N/2", "N/4"]


def robustness_markdown(rb: Robustness | str, reference: str) -> list[str]:
    """Lines of the `leaderboard --robustness` section of one group."""
    ref = METRIC_INFO[reference].label
    if isinstance(rb, str):
        return [f"Ranking robustness: no verdict: {rb}.", ""]
    lines = [f"Ranking robustness (Kendall τ and same #1 / top-2 against the {ref} ranking; the share of 200 random "
             f"subsets of N/2 = {rb.n // 2} and N/4 = {rb.n // 4} images that keep each metric's full-N order):", "",
             "| " + " | ".join(ROBUSTNESS_HEADER) + " |", "|" + "|".join([":---", ":---"] + ["---:"] * 7) + "|"]
    notes = []
    for r in robustness_rows(rb):
        lines.append("| " + " | ".join([r["metric"], r["order"], r["tau"], r["top1"], r["top2"], r["order_half"],
                                        r["order_quarter"], r["top2_half"], r["top2_quarter"]]) + " |")
        if r["note"]:
            notes.append(f"{r['metric']}: {r['note']}")
    lines += ["", rb.summary]
    if notes:
        lines.append("Subsets: " + "; ".join(notes) + ".")
    return lines + [""]
