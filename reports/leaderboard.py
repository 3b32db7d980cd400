"""Merge result records from many run directories into tables, refusing mixed protocols.

A run directory made by the runner looks like
    RUN_DIR/run.json
    RUN_DIR/jobs/<job_id>/{metrics.json, per_image.csv}
    RUN_DIR/outputs/<job_id>/<id>.png          (and <id>_s<k>.png for pluralistic samples)
    RUN_DIR/inputs/<dataset>/<res>/<id>.png    (ground truth)
    RUN_DIR/masks/<maskset>/<res>/<id>.png     (255 = hole)
A plain `matbench eval` output directory holds only metrics.json + per_image.csv; every optional
piece is looked up and skipped when absent.

Numbers are put side by side only when the PROTOCOL_FIELDS of their records agree: within one
(dataset, mask set, resolution) column every field must match; across the mask sets of one table every
field except the mask set hash (and the image count, which a mask set may restrict) must match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matbench.reports import intervals

from matbench.entries import METRIC_SMOKE_MARK, MODEL_SMOKE_MARK
from matbench.entries import Entry as Entry  # re-exported: the entry helpers live in the core (matbench.entries)
from matbench.entries import entry_for as entry_for
from matbench.entries import job_field as job_field
from matbench.entries import job_resolution as job_resolution
from matbench.entries import load_entries as load_entries
from matbench.entries import smoke_sources as smoke_sources
from matbench.errors import InputError, MatbenchError
from matbench.metrics import METRIC_INFO
from matbench.results import PROTOCOL_FIELDS, MetricValue, ResultRecord

# MAT Table 2 columns come first (per mask set), the further columns after them.
PRIMARY_METRICS = ("fid", "pids", "uids")
# Fields that may differ between the mask-set column groups of one table.
PER_MASKSET_FIELDS = ("maskset_sha256", "n_images")


class ProtocolError(MatbenchError):
    """Two results whose protocol differs were asked to be compared side by side."""




def protocol_diff(a: ResultRecord, b: ResultRecord, fields: Sequence[str] = PROTOCOL_FIELDS) -> str | None:
    """The first protocol field whose value differs between a and b (missing counts as None)."""
    for f in fields:
        if a.protocol.get(f) != b.protocol.get(f):
            return f
    return None


def _describe(e: Entry) -> str:
    return f"{e.path}"


@dataclass
class Table:
    """One paper table: rows = models, columns = (mask set, metric), for one dataset and resolution."""

    dataset: str
    resolution: int | None
    masksets: list[str]
    columns: list[tuple[str, str]]  # (maskset, metric) in display order
    rows: list[str]
    cells: dict[tuple[str, str, str], MetricValue] = field(default_factory=dict)  # (row, maskset, metric)
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)  # (row, maskset)
    # Filled by reports.ranks.attach: (maskset, metric) -> RankConfidence or why none; maskset -> Robustness or why
    ranks: dict[tuple[str, str], Any] = field(default_factory=dict)
    robustness: dict[str, Any] = field(default_factory=dict)

    @property
    def smoke(self) -> bool:
        return any(e.record.smoke for e in self.entries.values())

    @property
    def title(self) -> str:
        res = f"{self.resolution}×{self.resolution}" if self.resolution else "?"
        return f"{self.dataset} @ {res}"

    def column_groups(self) -> list[tuple[str, list[str]]]:
        """[(mask set, [metrics])] in display order; each mask set appears once."""
        groups: list[tuple[str, list[str]]] = []
        for ms, m in self.columns:
            if groups and groups[-1][0] == ms:
                groups[-1][1].append(m)
            else:
                groups.append((ms, [m]))
        return groups

    def smoke_rows(self) -> set[str]:
        return {r for (r, _), e in self.entries.items() if e.record.smoke}

    def model_smoke_rows(self) -> set[str]:
        """Rows whose MODEL ran on random weights: labelled '(random weights)', never bold, never ranked."""
        return {r for (r, _), e in self.entries.items() if e.model_smoke}

    def row_label(self, row: str) -> str:
        """The row's name with its smoke mark: '(random weights)' for a random model, '(smoke)' for metrics only."""
        if row in self.model_smoke_rows():
            return f"{row} {MODEL_SMOKE_MARK}"
        return f"{row} {METRIC_SMOKE_MARK}" if row in self.smoke_rows() else row

    def best(self, maskset: str, metric: str) -> set[str]:
        """Rows holding the best value of a column, compared at display precision (ties all win).

        Nothing is best when fewer than two rows have a value. Rows whose model ran on random weights do not
        compete. A winner that `may_be_best` rules out (a KID at or below 0) is not bold, and the next value is not
        promoted in its place: the column then has no bold."""
        info = METRIC_INFO[metric]
        random_models = self.model_smoke_rows()
        vals = {r: round(c.value * info.scale, info.digits) for r in self.rows
                if (c := self.cells.get((r, maskset, metric))) is not None and c.value is not None
                and math.isfinite(c.value) and r not in random_models}
        if len(vals) < 2:
            return set()
        target = max(vals.values()) if info.higher_is_better else min(vals.values())
        winners = {r for r, v in vals.items() if v == target}
        if not all(may_be_best(metric, self.cells[(r, maskset, metric)]) for r in winners):
            return set()
        return winners



def may_be_best(metric: str, mv: MetricValue) -> bool:
    """Whether a value may be bold / called best. KID is an unbiased estimate of a non-negative quantity: a value
    at or below 0, or one whose interval reaches 0, is noise around "no difference", not a win (docs/reports.md)."""
    if metric.startswith("kid"):
        return mv.value is not None and mv.value > 0 and (mv.ci_low is None or mv.ci_low > 0)
    return True


def maskset_order(name: str) -> tuple[int, str]:
    """Small masks before large ones (MAT Table 2), then alphabetical."""
    low = name.lower()
    rank = 0 if "small" in low else 1 if "large" in low else 2
    return rank, name


def check_protocols(entries: Sequence[Entry]) -> None:
    """Raise ProtocolError (naming the field and both files) if entries may not share a table."""
    groups: dict[tuple[str, int | None], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.resolution), []).append(e)
    for group in groups.values():
        ref = group[0]
        table_fields = [f for f in PROTOCOL_FIELDS if f not in PER_MASKSET_FIELDS]
        by_col: dict[str, Entry] = {}
        for e in group[1:]:
            f = protocol_diff(ref.record, e.record, table_fields)
            if f:
                _raise(f, ref, e)
        for e in group:
            col_ref = by_col.setdefault(e.maskset, e)
            f = protocol_diff(col_ref.record, e.record)
            if f:
                _raise(f, col_ref, e)
            if col_ref.record.smoke != e.record.smoke:
                raise ProtocolError(
                    f"smoke and real results side by side ({e.dataset}/{e.maskset}): "
                    f"{_describe(col_ref)} smoke={col_ref.record.smoke}, {_describe(e)} smoke={e.record.smoke}")


def _raise(f: str, a: Entry, b: Entry) -> None:
    raise ProtocolError(
        f"protocol field '{f}' differs ({a.dataset}/{a.maskset} vs {b.dataset}/{b.maskset}): "
        f"{a.record.protocol.get(f)!r} in {_describe(a)} vs {b.record.protocol.get(f)!r} in {_describe(b)}")


def _same_name_advice(a: Entry, b: Entry) -> str:
    """How to fix two results that share a row label: `matbench eval --name` when a name came from a folder."""
    from_folder = [x for x in (a, b) if "model" not in x.record.job and x.record.job.get("results")]
    if from_folder:
        return (f"{'both are' if len(from_folder) == 2 else 'one is'} `matbench eval` output named after its results "
                f"folder ({a.model!r}); rerun `matbench eval ... --name NAME` with a distinct name for each model")
    return "they share a model label: give distinct labels (a spec's [[models]] label = ...) or pass only one of them"


def build_tables(entries: Sequence[Entry], metrics: Sequence[str] | None = None) -> list[Table]:
    """Group entries into one Table per (dataset, resolution) after checking protocols.

    `metrics` restricts (and orders within the primary/secondary blocks) the metrics shown."""
    if not entries:
        raise InputError("no results to tabulate")
    if metrics is not None:
        unknown = [m for m in metrics if m not in METRIC_INFO]
        if unknown:
            raise InputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_INFO)}")
    check_protocols(entries)
    groups: dict[tuple[str, int | None], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.resolution), []).append(e)
    tables = []
    for (dataset, res), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        masksets = sorted({e.maskset for e in group}, key=maskset_order)
        rows: list[str] = []
        t = Table(dataset=dataset, resolution=res, masksets=masksets, columns=[], rows=rows)
        for e in sorted(group, key=lambda e: (e.model, e.sample)):
            key = (e.row_label, e.maskset)
            if key in t.entries:
                raise InputError(f"two results for {e.row_label} on {dataset}/{e.maskset} @ {res}: "
                                 f"{t.entries[key].path} and {e.path}; " + _same_name_advice(t.entries[key], e))
            t.entries[key] = e
            if e.row_label not in rows:
                rows.append(e.row_label)
            for m, v in e.record.metrics.items():
                if m in METRIC_INFO:
                    t.cells[(e.row_label, e.maskset, m)] = v
        present = {m for (_, _, m) in t.cells}
        wanted = list(metrics) if metrics is not None else list(METRIC_INFO)
        # Each mask set's columns together (MAT Table 2's FID/P-IDS/U-IDS first, then the further metrics), so
        # every mask set heads one contiguous group instead of one group per block.
        order = ([m for m in wanted if m in PRIMARY_METRICS and m in present]
                 + [m for m in wanted if m not in PRIMARY_METRICS and m in present])
        for ms in masksets:
            for m in order:
                if any((r, ms, m) in t.cells for r in rows):
                    t.columns.append((ms, m))
        tables.append(t)
    return tables


@dataclass
class LeaderboardRow:
    rank: int | None  # None: the model ran on random weights (listed, not ranked)
    entry: Entry
    values: dict[str, MetricValue]


GroupKey = tuple[str, str, int | None]  # (dataset, maskset, resolution)


def overlapping_leader(rows: Sequence[LeaderboardRow], metric: str) -> list[str]:
    """Row labels (after #1) whose `metric` interval overlaps #1's: their order against #1 is not established.
    Rows without a usable interval (as reports.intervals judges it: none, zero width, n < 2) are left out:
    nothing can be said of them."""

    def span(row: LeaderboardRow) -> tuple[float, float] | None:
        mv = row.values.get(metric)
        if intervals.of(metric, mv).kind not in ("symmetric", "asymmetric"):
            return None
        return float(mv.ci_low), float(mv.ci_high)  # type: ignore[union-attr, arg-type]

    if not rows:
        return []
    top = span(rows[0])
    if top is None:
        return []
    out = []
    for row in rows[1:]:
        s = span(row)
        if s is not None and s[0] <= top[1] and top[0] <= s[1]:
            out.append(row.entry.row_label)
    return out


def leaderboard(entries: Sequence[Entry], sort_by: str = "fid") -> dict[GroupKey, list[LeaderboardRow]]:
    """Ranked rows per (dataset, mask set, resolution), best `sort_by` first (missing values last)."""
    if sort_by not in METRIC_INFO:
        raise InputError(f"--sort: unknown metric {sort_by!r}; known: {', '.join(METRIC_INFO)}")
    check_protocols(entries)
    info = METRIC_INFO[sort_by]
    groups: dict[GroupKey, list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.maskset, e.resolution), []).append(e)
    out = {}
    for key in sorted(groups, key=lambda k: (k[0], maskset_order(k[1]), k[2] or 0)):
        def sort_key(e: Entry) -> tuple[int, float, str]:
            mv = e.record.metrics.get(sort_by)
            if mv is None or mv.value is None:
                return 1, 0.0, e.row_label
            return 0, (-mv.value if info.higher_is_better else mv.value), e.row_label
        # A model on random weights is listed after the others without a rank: its numbers rank nothing.
        ranked = sorted([e for e in groups[key] if not e.model_smoke], key=sort_key)
        unranked = sorted([e for e in groups[key] if e.model_smoke], key=sort_key)
        out[key] = ([LeaderboardRow(i + 1, e, dict(e.record.metrics)) for i, e in enumerate(ranked)]
                    + [LeaderboardRow(None, e, dict(e.record.metrics)) for e in unranked])
    return out
