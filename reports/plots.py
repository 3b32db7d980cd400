"""Report plots (matplotlib, Agg), each saved as PNG and SVG.

- metrics by hole-ratio bin per model (from record bins, else binned from per_image.csv)
- the mask sets' hole-ratio histograms (per_image.csv hole_ratio)
- generalization deltas between the lowest and highest resolution of a (dataset, mask set, model)
- diversity scores (metric "diversity")
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matbench.reports import intervals  # noqa: E402
from matbench.reports.leaderboard import Entry, maskset_order  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from matbench.metrics import METRIC_INFO  # noqa: E402
from matbench.metrics.region import HOLE_METRICS  # noqa: E402

BIN_METRICS = ("lpips", "psnr", "ssim", "l1", "fid", "pids", "uids", *HOLE_METRICS)  # those a record has
PER_IMAGE_BIN_METRICS = ("lpips", "psnr", "ssim", "l1")  # per_image.csv columns a bin's mean can be taken of
MIN_STEPS = 10  # a value axis spans at least this many display steps (10^-digits) ...
MIN_RELATIVE_SPAN = 0.02  # ... and at least 2 % of the largest magnitude shown
DEFAULT_EDGES = tuple(round(x, 1) for x in np.arange(0.0, 1.01, 0.1))

plt.rcParams.update({"svg.hashsalt": "matbench", "figure.dpi": 100, "font.size": 9,
                     "axes.spines.top": False, "axes.spines.right": False})


@dataclass
class Plot:
    title: str
    png: str  # path relative to the report root
    svg: str
    caption: str = ""


def slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(str(p) for p in parts)).strip("_")


def value_limits(values: Sequence[float], digits: int) -> tuple[float, float] | None:
    """y limits for metric values shown with `digits` decimals: the data plus 10 % each side, at least MIN_STEPS
    display steps and MIN_RELATIVE_SPAN of the values wide (a constant, or float noise like 27.955310230001 vs
    27.95531023, would otherwise get matplotlib's ±5 % or an axis 1e-11 wide with an offset label), and not below 0
    when no value is (a constant P-IDS of 0 is not drawn on −0.04…0.04). None when no value is finite."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    min_span = max(MIN_STEPS * 10.0 ** -digits, MIN_RELATIVE_SPAN * max(abs(lo), abs(hi)))
    pad = max(0.1 * (hi - lo), (min_span - (hi - lo)) / 2, 0.0)
    a, b = lo - pad, hi + pad
    if lo >= 0 > a:  # never below 0 for values that are not: shift the range up instead
        a, b = 0.0, max(b - a, hi + 0.1 * (hi - lo), min_span)
    return a, b


def value_axis(axis: Any, digits: int) -> None:
    """Ticks of a value axis at display precision: steps of 1, 2 or 5 × 10^k (k >= -digits, so every label is exact
    at `digits` decimals), labels with `digits` decimals, no offset or scientific notation."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10], min_n_ticks=3))
    axis.set_major_formatter(FuncFormatter(lambda x, _pos: _fixed(x, digits)))


def _fixed(x: float, digits: int) -> str:
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # "-0.00" -> "0.00"


def set_value_range(ax: Any, values: Sequence[float], digits: int) -> None:
    """value_limits() as the y range and value_axis() for its ticks."""
    lim = value_limits(values, digits)
    if lim is not None:
        ax.set_ylim(*lim)
    value_axis(ax.yaxis, digits)


def save(fig: Any, root: Path, stem: str, title: str, caption: str = "") -> Plot:
    out = root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=110, metadata={"Software": None})
    fig.savefig(out / f"{stem}.svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return Plot(title, f"plots/{stem}.png", f"plots/{stem}.svg", caption)


@dataclass(frozen=True)
class BinPoint:
    """One model's value in one hole-ratio bin (display units) and how far it can be trusted."""

    centre: float
    value: float
    lo: float | None
    hi: float | None
    n: int | None

    def supported(self, metric: str) -> bool:
        """Whether the value comes with a usable interval: at least 2 images and not a zero-width interval (as
        reports.intervals judges it). Unsupported points are drawn hollow and never joined by a line."""
        if self.n is not None and self.n < 2:
            return False
        sc = METRIC_INFO[metric].scale
        lo, hi = (None if x is None else x / sc for x in (self.lo, self.hi))
        return intervals.interval(metric, self.value / sc, lo, hi, self.n).kind != "unsupported"


def _csv_bin_points(df: Any, edges: Sequence[float]) -> dict[str, dict[int, BinPoint]]:
    """metric -> bin index -> mean of per_image.csv's values in the bin (no interval), for the per-image metrics."""
    out: dict[str, dict[int, BinPoint]] = {}
    if df is None or "hole_ratio" not in df.columns:
        return out
    hr = df["hole_ratio"].to_numpy(float)
    idx = np.clip(np.searchsorted(edges, hr, side="right") - 1, 0, len(edges) - 2)
    idx[~np.isfinite(hr)] = -1
    for m in PER_IMAGE_BIN_METRICS:
        if m not in df.columns:
            continue
        vals = df[m].to_numpy(float)
        ok = np.isfinite(vals) & (idx >= 0)
        sums = np.bincount(idx[ok], weights=vals[ok], minlength=len(edges) - 1)
        counts = np.bincount(idx[ok], minlength=len(edges) - 1)
        sc = METRIC_INFO[m].scale
        out[m] = {k: BinPoint((edges[k] + edges[k + 1]) / 2, float(sums[k] / counts[k]) * sc, None, None,
                              int(counts[k])) for k in np.flatnonzero(counts).tolist()}
    return out


def _bin_series(e: Entry, edges: Sequence[float] | None = None) -> dict[str, list[BinPoint]]:
    """metric -> points by bin, display-scaled: the record's bins, and per_image.csv for what they lack.

    The evaluator computes no metric on a bin of fewer than 2 images; the per-image metrics of such a bin are
    still known from per_image.csv (for one image: its own value), so the same data draws the same points
    whether a record has bins or only per_image.csv."""
    rec: dict[str, dict[int, BinPoint]] = {}
    if e.record.bins:
        edges = edges or sorted({float(b["lo"]) for b in e.record.bins} | {float(b["hi"]) for b in e.record.bins})
        for b in e.record.bins:
            lo_e, hi_e = float(b.get("lo", 0)), float(b.get("hi", 0))
            k = int(np.clip(np.searchsorted(edges, lo_e, side="right") - 1, 0, max(len(edges) - 2, 0)))
            for m, mv in b.get("metrics", {}).items():
                if m in METRIC_INFO and getattr(mv, "value", None) is not None:
                    sc = METRIC_INFO[m].scale
                    lo = mv.ci_low * sc if mv.ci_low is not None else None
                    hi = mv.ci_high * sc if mv.ci_high is not None else None
                    n = mv.n if mv.n is not None else b.get("n")
                    rec.setdefault(m, {})[k] = BinPoint((lo_e + hi_e) / 2, mv.value * sc, lo, hi, n)
    edges = list(edges or DEFAULT_EDGES)
    for m, pts in _csv_bin_points(e.per_image(), edges).items():
        for k, p in pts.items():
            rec.setdefault(m, {}).setdefault(k, p)
    return {m: [pts[k] for k in sorted(pts)] for m, pts in rec.items()}


def bin_counts(e: Entry) -> list[tuple[float, float, int]]:
    """[(lo, hi, images)] per hole-ratio bin: the record's bins, else per_image.csv binned on the default edges."""
    if e.record.bins:
        return [(float(b.get("lo", 0)), float(b.get("hi", 0)), int(b.get("n", 0) or 0)) for b in e.record.bins]
    df = e.per_image()
    if df is None or "hole_ratio" not in df.columns:
        return []
    edges = list(DEFAULT_EDGES)
    hr = df["hole_ratio"].to_numpy(float)
    hr = hr[np.isfinite(hr)]
    idx = np.clip(np.searchsorted(edges, hr, side="right") - 1, 0, len(edges) - 2)
    return [(edges[k], edges[k + 1], int((idx == k).sum())) for k in range(len(edges) - 1)]


def _pct(lo: float, hi: float) -> str:
    return f"{lo * 100:g}–{hi * 100:g}%"


def plot_bins(entries: Sequence[Entry], root: Path) -> list[Plot]:
    groups: dict[tuple[str, str, int | None], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.maskset, e.resolution), []).append(e)
    plots = []
    for (ds, ms, res), group in sorted(groups.items(), key=lambda kv: (kv[0][0], maskset_order(kv[0][1]),
                                                                        kv[0][2] or 0)):
        ordered = sorted(group, key=lambda e: e.row_label)
        series = {e.row_label: _bin_series(e) for e in ordered}
        metrics = [m for m in BIN_METRICS if any(m in s for s in series.values())]
        if not metrics:
            continue
        # Images per bin (one mask set: the same for every model; the first model that has counts), and the
        # bins that hold images but no point (the runner computes no metric on fewer than 2 images).
        counts = next((c for c in (bin_counts(e) for e in ordered) if c), [])
        plotted = {round(p.centre, 6) for s in series.values() for pts in s.values() for p in pts}
        hidden = [(lo, hi, n) for lo, hi, n in counts if n > 0 and round((lo + hi) / 2, 6) not in plotted]
        panels = len(metrics) + (1 if counts else 0)
        ncol = min(4, panels)
        nrow = -(-panels // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.8 * nrow), squeeze=False)
        for ax in axes.flat[panels:]:
            ax.set_visible(False)
        if counts:
            ax = axes.flat[len(metrics)]
            hid = {(lo, hi) for lo, hi, _ in hidden}
            for lo, hi, n in counts:
                is_hidden = (lo, hi) in hid
                ax.bar((lo + hi) / 2, n, width=(hi - lo) * 0.9, color="#bbbbbb" if is_hidden else "#4c78a8",
                       hatch="//" if is_hidden else None, edgecolor="#777777" if is_hidden else None)
                ax.annotate(f"{n}" + (" hidden" if is_hidden else ""), ((lo + hi) / 2, n), ha="center",
                            va="bottom", fontsize=6, rotation=90 if is_hidden else 0, xytext=(0, 1),
                            textcoords="offset points")
            ax.set_title("images per bin")
            ax.set_xlabel("hole ratio")
            ax.set_xlim(0, 1)
            ax.margins(y=0.25)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # image counts: no 0.5 image ticks
        lone = False
        for ax, m in zip(axes.flat, metrics, strict=False):
            drawn: list[float] = []
            for k, (label, s) in enumerate(series.items()):
                pts = s.get(m, [])
                if pts:
                    lone |= _draw_bin_series(ax, pts, m, label, f"C{k % 10}")
                    drawn += [v for p in pts for v in (p.value, p.lo, p.hi) if v is not None]
            info = METRIC_INFO[m]
            ax.set_title(f"{info.label} {'↑' if info.higher_is_better else '↓'}")
            ax.set_xlabel("hole ratio")
            ax.set_xlim(0, 1)
            set_value_range(ax, drawn, info.digits)
        axes.flat[0].legend(fontsize=7)
        caption = "Metric per hole-ratio bin (bin centre on x); shaded band = CI where recorded."
        if lone:
            caption += (" Hollow points, not joined: bins of one image or without a usable interval (values from "
                        "per_image.csv where the record has none).")
        if counts:
            caption += " Images per bin: " + ", ".join(f"{_pct(lo, hi)} {n}" for lo, hi, n in counts if n) + "."
        for why, sel in (("fewer than 2 images, no metric computed", [h for h in hidden if h[2] < 2]),
                         ("no metric recorded", [h for h in hidden if h[2] >= 2])):
            if sel:  # each reason once, then the bins it applies to
                caption += f" Not plotted ({why}): " + ", ".join(f"{_pct(lo, hi)} (n={n})" for lo, hi, n in sel) + "."
        plots.append(save(fig, root, slug("bins", ds, ms, res), f"By hole ratio — {ds} / {ms} @ {res}", caption))
    return plots


def _draw_bin_series(ax: Any, pts: Sequence[BinPoint], metric: str, label: str, color: str) -> bool:
    """One model's points of one metric: the supported ones joined by a line (with a band when each has an
    interval); the unsupported ones (one image, zero-width interval) hollow and never joined, whichever way the
    record was made. Returns whether any point was unsupported."""
    ok = [p for p in pts if p.supported(metric)]
    alone = [p for p in pts if not p.supported(metric)]
    if ok:
        x = [p.centre for p in ok]
        ax.plot(x, [p.value for p in ok], marker="o", ms=3, color=color, label=label)
        if all(p.lo is not None and p.hi is not None for p in ok):
            ax.fill_between(x, [p.lo for p in ok], [p.hi for p in ok], color=color, alpha=0.2, linewidth=0)
    if alone:
        ax.plot([p.centre for p in alone], [p.value for p in alone], linestyle="none", marker="o", ms=4,
                markerfacecolor="none", color=color, label=None if ok else label)
    return bool(alone)


def plot_hole_histograms(entries: Sequence[Entry], root: Path) -> list[Plot]:
    """One histogram per (mask set, resolution), taken from the first job that has per_image.csv."""
    seen: dict[tuple[str, int | None], np.ndarray] = {}
    for e in sorted(entries, key=lambda e: (maskset_order(e.maskset), e.resolution or 0, str(e.path))):
        key = (e.maskset, e.resolution)
        if key in seen:
            continue
        df = e.per_image()
        if df is not None and "hole_ratio" in df.columns:
            seen[key] = df["hole_ratio"].to_numpy(float)
    if not seen:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    bins = np.linspace(0, 1, 21)
    for (ms, res), hr in seen.items():
        ax.hist(hr, bins=bins, histtype="step", linewidth=1.5, label=f"{ms} @ {res} (n={len(hr)})")
    ax.set_xlabel("hole ratio")
    ax.set_ylabel("images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # image counts: no 0.5 image ticks
    ax.legend(fontsize=7)
    return [save(fig, root, "hole_ratio_histograms", "Hole-ratio histograms of the mask sets",
                 "Fraction of missing pixels per image, 20 bins over [0, 1].")]


def generalization_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Deltas (high − low resolution, display units) for every (dataset, mask set, model) seen at ≥2 sizes."""
    groups: dict[tuple[str, str, str], dict[int, Entry]] = {}
    for e in entries:
        if e.resolution is not None:
            groups.setdefault((e.dataset, e.maskset, e.row_label), {})[e.resolution] = e
    rows = []
    for (ds, ms, model), by_res in sorted(groups.items()):
        if len(by_res) < 2:
            continue
        lo_r, hi_r = min(by_res), max(by_res)
        lo, hi = by_res[lo_r].record.metrics, by_res[hi_r].record.metrics
        for m in METRIC_INFO:
            if m in lo and m in hi and lo[m].value is not None and hi[m].value is not None:
                sc = METRIC_INFO[m].scale
                rows.append({"dataset": ds, "maskset": ms, "model": model, "metric": m, "from": lo_r, "to": hi_r,
                             "low": lo[m].value * sc, "high": hi[m].value * sc,
                             "delta": (hi[m].value - lo[m].value) * sc})
    return rows


def plot_generalization(rows: Sequence[dict[str, Any]], root: Path) -> list[Plot]:
    if not rows:
        return []
    metrics = [m for m in METRIC_INFO if any(r["metric"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        sel = [r for r in rows if r["metric"] == m]
        labels = [f"{r['model']}\n{r['maskset']}" for r in sel]
        ax.bar(range(len(sel)), [r["delta"] for r in sel], color="#4c78a8")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(sel)), labels, fontsize=6, rotation=45, ha="right")
        info = METRIC_INFO[m]
        ax.set_title(f"Δ {info.label} ({'↑' if info.higher_is_better else '↓'} better)")
    r0 = rows[0]
    return [save(fig, root, "generalization", f"Generalization {r0['from']} → {r0['to']}",
                 "Change of each metric from the lower to the higher resolution (same model, mask set).")]


def plot_diversity(entries: Sequence[Entry], root: Path) -> list[Plot]:
    pts = [(f"{e.model}\n{e.maskset}\n{e.dataset}@{e.resolution}", e.record.metrics["diversity"])
           for e in sorted(entries, key=lambda e: (e.dataset, maskset_order(e.maskset), e.model))
           if "diversity" in e.record.metrics and e.record.metrics["diversity"].value is not None]
    if not pts:
        return []
    fig, ax = plt.subplots(figsize=(max(3.5, 1.6 * len(pts)), 3.2))
    vals = [p[1].value for p in pts]
    err = None
    if all(p[1].ci_low is not None and p[1].ci_high is not None for p in pts):
        err = np.array([[p[1].value - p[1].ci_low, p[1].ci_high - p[1].value] for p in pts]).T
    ax.bar(range(len(pts)), vals, yerr=err, color="#f58518", capsize=3)
    ax.set_xticks(range(len(pts)), [p[0] for p in pts], fontsize=7)
    ax.set_ylabel(METRIC_INFO["diversity"].label)
    return [save(fig, root, "diversity", "Diversity of pluralistic samples",
                 "Mean pairwise LPIPS between samples of the same input (higher = more diverse).")]


def generalization_file_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a runner `generalization.json` (schema matbench.generalization/1) in generalization_rows' form."""
    if not isinstance(data, dict) or data.get("schema") != "matbench.generalization/1":
        return []
    rows = []
    for r in data.get("rows", []):
        m = r.get("metric")
        if m not in METRIC_INFO or r.get("base") is None or r.get("target") is None:
            continue
        sc = METRIC_INFO[m].scale
        rows.append({"dataset": r.get("dataset"), "maskset": r.get("maskset"), "model": r.get("model"), "metric": m,
                     "from": r.get("base_resolution", data.get("base")), "to": r.get("target_resolution",
                                                                                       data.get("target")),
                     "low": r["base"] * sc, "high": r["target"] * sc, "delta": (r["target"] - r["base"]) * sc})
    return rows
