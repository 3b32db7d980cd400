"""Static HTML report: leaderboards, plots, paginated image comparisons, provenance.

Layout of REPORT_DIR (self-contained; no CDN; opens from file://):
    index.html                          leaderboards (sortable), plots, links, provenance
    static/report.{css,js}              copied from reports/static
    plots/*.png, plots/*.svg            matplotlib figures
    img/inputs/<run>/<dataset>/<res>/<id>.png          ground truth (hard link or copy)
    img/overlay/<run>/<dataset>/<maskset>/<res>/<id>.png   input with the hole tinted (65 % magenta)
    img/overlay-opaque/<run>/<dataset>/<maskset>/<res>/<id>.png   input with the hole solid magenta
    img/outputs/<run>-<job>/<id>.png (+ <id>_s<k>.png)     model outputs (hard link or copy)
    compare/<group>/<order>-<filter>-<page>.html       static pages, `per_page` items each
Every comparison view (order × hole-ratio filter) is pre-rendered, so the site needs no server and
pages stay small however many images a run has; images load lazily. Comparison cells link the original
files, so the full-size viewer (static/report.js) shows them at full resolution.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matbench.reports import intervals, ranks
from matbench.reports import plots as plots_mod
from matbench.reports.leaderboard import Entry, Table, build_tables, load_entries, maskset_order
from matbench.reports.published import rows as published_rows
from matbench.reports.tables import SMOKE_NOTE, arrow, fmt_value
from PIL import Image

import matbench
from matbench.errors import InputError
from matbench.eval_inputs import EvalImages, eval_images
from matbench.metrics import METRIC_INFO

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SAMPLE_RE = re.compile(r"^(?P<id>.+)_s(?P<k>\d+)$")
OVERLAY_RGB = np.array([255, 0, 255], dtype=np.float64)
LEADERBOARD_CHUNK = 8  # metrics per table in the narrowest leaderboard layout
HOLE_OVERLAYS = ("tint", "opaque")  # 65 % magenta over the ground truth, or solid magenta (nothing shows through)
MODEL_SMOKE_NOTE = ("SMOKE: some models ran on random weights (marked smoke under their images): those outputs "
                    "are not real inpaintings, and no number here is comparable to published ones.")
METRIC_SMOKE_NOTE = ("SMOKE metrics: computed with random metric networks or stand-ins; not comparable to "
                     "published numbers. The output images are {what}.")
RUN_IMAGES = "the models' real outputs"
EVAL_IMAGES = "the result folders given to matbench eval, shown as they are"


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _place(src: Path, dst: Path) -> None:
    """Hard-link (same file system) or copy `src` to `dst`; an existing file of equal size is kept."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _own_file(src: Path | None, e: Entry, roots: Sequence[Path] = ()) -> Path | None:
    """`src` when it is a regular file whose real path lies inside the run folder given (or one of `roots`: the
    folders an eval folder's inputs.json names); None otherwise, with a warning: a symlinked output
    (-> /etc/hostname) must not carry a file from elsewhere into a published report."""
    if src is None:
        return None
    real = src.resolve()
    allowed = {e.run_dir.resolve(), e.result_dir.resolve(), *roots}
    if real.is_file() and any(real.is_relative_to(r) for r in allowed):
        return src
    log.warning("%s: not a regular file inside %s (a link to %s); left out of the report", src, e.run_dir, real)
    return None


def _url(rel: str) -> str:
    """A relative URL for a path: ids with '#', '?' or '%' (or spaces) would otherwise cut or change the link."""
    return urllib.parse.quote(rel)


def _overlay(gt_path: Path, hole: np.ndarray, dst: Path, alpha: float = 0.65) -> float | None:
    """Write GT with hole pixels (True = missing) `alpha` magenta (1.0 = opaque); returns the hole ratio."""
    with Image.open(gt_path) as im:
        gt = np.asarray(im.convert("RGB"), dtype=np.float64)
    if hole.shape != gt.shape[:2]:
        log.warning("%s: mask size %s differs from image %s; no overlay", gt_path, hole.shape, gt.shape[:2])
        _place(gt_path, dst)
        return None
    out = gt.copy()
    out[hole] = (1.0 - alpha) * gt[hole] + alpha * OVERLAY_RGB
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out.round().astype(np.uint8)).save(dst, format="PNG", compress_level=3)
    return float(hole.mean())


@dataclass
class _Files:
    """Where one entry's images are: the run layout (outputs/, inputs/, masks/), or the folders an eval folder's
    inputs.json names (its results, ground truths and masks, read as eval read them)."""

    entry: Entry
    outputs: dict[str, Path]  # id -> output image
    samples: dict[str, list[Path]]  # id -> pluralistic samples, in order
    evaluated: EvalImages | None = None

    @classmethod
    def of(cls, e: Entry, ids: Sequence[str] | None) -> _Files:
        if _is_eval(e):
            try:
                ev = eval_images(e.result_dir, ids)
            except InputError as err:  # the numbers stand; only the pictures cannot be shown
                log.warning("%s: no image pages for this result (%s)", e.path, err)
                ev = None
            if ev is not None:
                return cls(e, dict(ev.results), {}, ev)
        main, samples = _outputs(e)
        return cls(e, main, samples)

    def own(self, src: Path | None) -> Path | None:
        return _own_file(src, self.entry, self.evaluated.roots if self.evaluated else ())

    def gt(self, image_id: str) -> Path | None:
        if self.evaluated is not None:
            return self.own(self.evaluated.gt.get(image_id))
        return self.own(self.entry.input_path(image_id))

    def hole(self, image_id: str) -> np.ndarray | None:
        if self.evaluated is not None:
            return self.evaluated.hole(image_id)
        mk = self.own(self.entry.mask_path(image_id))
        if mk is None:
            return None
        with Image.open(mk) as im:
            return np.asarray(im.convert("L")) > 127  # the runner's masks: 255 = hole


# ------------------------------------------------------------------ leaderboard view model

def _is_eval(e: Entry) -> bool:
    """A `matbench eval` record: its job names the folders evaluated, not a dataset and model of a run."""
    return bool(e.record.job.get("results")) and "dataset" not in e.record.job


def _smoke_note(entries: Sequence[Entry]) -> str:
    if any(e.model_smoke for e in entries):
        return MODEL_SMOKE_NOTE
    if not any(e.record.smoke for e in entries):
        return SMOKE_NOTE
    # Say what the pictures are: a run's outputs come from the models it ran; an eval folder's are whatever the
    # user evaluated (matbench never saw them made).
    kinds = {_is_eval(e) for e in entries}
    what = (EVAL_IMAGES if kinds == {True} else RUN_IMAGES if kinds == {False}
            else f"{RUN_IMAGES} (runs) and {EVAL_IMAGES} (eval folders)")
    return METRIC_SMOKE_NOTE.format(what=what)


def _table_view(t: Table, index: int) -> dict[str, Any]:
    """View model of one leaderboard: mask-set groups (each once), columns, rows, interval notes."""
    smoke_rows, model_smoke_rows = t.smoke_rows(), t.model_smoke_rows()
    groups: list[dict[str, Any]] = []
    columns: list[dict[str, Any]] = []
    for gi, (ms, metrics) in enumerate(t.column_groups()):
        ns = {c.n for r in t.rows for m in metrics if (c := t.cells.get((r, ms, m))) is not None}
        # n once in the group header when every value of the mask set has the same n (the usual case).
        groups.append({"name": ms, "span": len(metrics), "index": gi, "metrics": metrics,
                       "n": ns.pop() if len(ns) == 1 else None})
        for m in metrics:
            columns.append({"maskset": ms, "metric": m, "group": gi, "label": METRIC_INFO[m].label,
                            "arrow": arrow(m), "hib": METRIC_INFO[m].higher_is_better, "key": f"{ms}|{m}"})
    reasons: list[str] = []
    rows = []
    for r in t.rows:
        cells = []
        for col in columns:
            ms, m = col["maskset"], col["metric"]
            mv = t.cells.get((r, ms, m))
            if mv is None or mv.value is None:
                cells.append(None)
                continue
            iv = intervals.of(m, mv)
            if iv.kind == "unsupported":
                reasons.append(iv.reason or "")
                title = f"no interval: recorded [{iv.lo}, {iv.hi}]; {iv.reason}"
            elif iv.kind != "none":
                title = f"CI [{iv.lo}, {iv.hi}]"
            else:
                title = None
            rank_title = ranks.cell_title(t, r, ms, m)
            if rank_title:
                title = f"{title}; {rank_title}" if title else rank_title
            cells.append({"text": fmt_value(m, mv.value), "iv": iv, "n": mv.n,
                          "show_n": groups[col["group"]]["n"] is None, "best": r in t.best(ms, m),
                          "sort": repr(mv.value * METRIC_INFO[m].scale), "title": title,
                          "sep": ranks.marked(t, r, ms, m)})
        rows.append({"label": r, "smoke": r in smoke_rows, "model_smoke": r in model_smoke_rows, "cells": cells})
    metrics_all = list(dict.fromkeys(c["metric"] for c in columns))
    # Narrower layouts, tried in order by static/report.js until one fits the page: one table per mask set, then
    # (for a mask set with many metrics) chunks of at most LEADERBOARD_CHUNK metrics of one mask set.
    levels: list[list[dict[str, Any]]] = []
    if len(groups) > 1:
        levels.append([{"cols": [i for i, c in enumerate(columns) if c["group"] == g["index"]],
                        "groups": [{**g}]} for g in groups])
    if any(g["span"] > LEADERBOARD_CHUNK for g in groups):
        chunks = []
        for g in groups:
            cols = [i for i, c in enumerate(columns) if c["group"] == g["index"]]
            k = -(-len(cols) // LEADERBOARD_CHUNK)
            for j in range(k):
                part = cols[j * LEADERBOARD_CHUNK:(j + 1) * LEADERBOARD_CHUNK]
                name = g["name"] + (f" ({j + 1}/{k})" if k > 1 else "")
                chunks.append({"cols": part, "groups": [{**g, "name": name, "span": len(part)}]})
        levels.append(chunks)
    return {"slug": f"{index}-{plots_mod.slug(t.dataset, t.resolution)}", "title": t.title, "smoke": t.smoke,
            "groups": groups, "columns": columns, "rows": rows, "levels": levels,
            "whole": {"cols": list(range(len(columns))), "groups": groups},
            "metrics": [{"name": m, "label": METRIC_INFO[m].label} for m in metrics_all],
            "footnote": intervals.footnote(reasons) if reasons else None,
            "rank_notes": [x for x in (ranks.footnote(t), ranks.missing_note(t)) if x],
            "robustness": _robustness_view(t)}


def _robustness_view(t: Table) -> list[dict[str, Any]]:
    """One entry per mask set: the ranking-robustness rows and the plain-language line (or why there is none)."""
    out = []
    for ms, rb in t.robustness.items():
        if isinstance(rb, str):
            out.append({"maskset": ms, "rows": [], "summary": f"No robustness verdict: {rb}.", "n": None})
        else:
            out.append({"maskset": ms, "rows": ranks.robustness_rows(rb), "summary": rb.summary, "n": rb.n,
                        "reference": METRIC_INFO[rb.reference].label})
    return out


# ------------------------------------------------------------------ comparison pages

@dataclass
class Item:
    id: str
    hole: float | None
    lpips: dict[str, float] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean_lpips(self) -> float | None:
        return float(np.mean(list(self.lpips.values()))) if self.lpips else None


def _bin_edges(group: Sequence[Entry]) -> tuple[list[float], dict[float, str]]:
    """Bin edges (the records' bins, else tenths) and the records' labels by lower edge."""
    for e in group:
        if e.record.bins:
            los = sorted({float(b["lo"]) for b in e.record.bins} | {float(b["hi"]) for b in e.record.bins})
            if len(los) >= 2:
                return los, {float(b["lo"]): str(b["label"]) for b in e.record.bins if b.get("label")}
    return list(plots_mod.DEFAULT_EDGES), {}


def _bin_of(h: float | None, edges: Sequence[float]) -> int | None:
    if h is None or not np.isfinite(h):
        return None
    k = int(np.searchsorted(edges, h, side="right")) - 1
    return min(max(k, 0), len(edges) - 2)


def _outputs(e: Entry) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """(id -> output png, id -> sorted sample pngs) found under the entry's outputs directory."""
    d = e.outputs_dir()
    main: dict[str, Path] = {}
    samples: dict[str, list[tuple[int, Path]]] = {}
    if d is None:
        return main, {}
    for p in d.glob("*.png"):
        m = SAMPLE_RE.match(p.stem)
        if m:
            samples.setdefault(m["id"], []).append((int(m["k"]), p))
        else:
            main[p.stem] = p
    return main, {k: [p for _, p in sorted(v)] for k, v in samples.items()}


def _page_links(page: int, pages: int, href: Any) -> list[dict[str, Any]]:
    keep = sorted({1, pages} | set(range(max(1, page - 3), min(pages, page + 3) + 1)))
    out: list[dict[str, Any]] = []
    prev = 0
    for p in keep:
        if p - prev > 1:
            out.append({"n": None, "href": None})
        out.append({"n": p, "href": None if p == page else href(p)})
        prev = p
    return out


@dataclass(frozen=True)
class ImagePages:
    """How the image comparison pages are cut and drawn."""

    per_page: int
    max_images: int | None = None
    hole_overlay: str = "tint"


def render_comparison(group: Sequence[Entry], out: Path, run_index: dict[Path, int], env: jinja2.Environment,
                      pages: ImagePages, title: str, smoke: bool) -> dict[str, Any] | None:
    per_page, max_images, hole_overlay = pages.per_page, pages.max_images, pages.hole_overlay
    group = sorted(group, key=lambda e: e.row_label)
    frames = {e.row_label: e.per_image() for e in group}
    files = [_Files.of(e, None if (df := frames[e.row_label]) is None else list(df["id"])) for e in group]
    if not any(f.outputs for f in files):
        return None
    e0 = group[0]
    gslug = plots_mod.slug(e0.dataset, e0.maskset, e0.resolution)
    ids: set[str] = set()
    hole: dict[str, float] = {}
    lp: dict[str, dict[str, float]] = {}
    for f in files:
        e = f.entry
        ids.update(f.outputs)
        df = frames[e.row_label]
        if df is None:
            continue
        ids.update(df["id"])
        if "hole_ratio" in df.columns:
            for i, h in zip(df["id"], df["hole_ratio"], strict=True):
                if h == h:  # not NaN (eval without masks)
                    hole.setdefault(i, float(h))
        if "lpips" in df.columns:
            for i, v in zip(df["id"], df["lpips"], strict=True):
                if v == v:  # not NaN
                    lp.setdefault(i, {})[e.row_label] = float(v)
    items = [Item(i, hole.get(i), lp.get(i, {})) for i in ids]
    items.sort(key=lambda it: (it.mean_lpips is None, -(it.mean_lpips or 0.0), it.id))  # worst first
    limited = max_images is not None and len(items) > max_images
    if limited:
        items = items[:max_images]
    root = "../../"
    for it in items:
        cells: list[dict[str, Any]] = []
        # Input (hole overlay) from the first entry that has both the ground truth and the mask.
        gt_src = overlay_src = None
        for f in files:
            gt = f.gt(it.id)
            if gt is None:
                continue
            e = f.entry
            rel_gt = f"img/inputs/{run_index[e.run_dir]}/{plots_mod.slug(e.dataset)}/{e.resolution}/{it.id}{gt.suffix}"
            _place(gt, out / rel_gt)
            gt_src = root + _url(rel_gt)
            break
        overlay_srcs: dict[str, str] = {}
        for f in files:
            gt = f.gt(it.id)
            mask = f.hole(it.id) if gt is not None else None
            if gt is None or mask is None:
                continue
            e = f.entry
            for mode, alpha in (("tint", 0.65), ("opaque", 1.0)):
                sub = "overlay" if mode == "tint" else "overlay-opaque"
                rel = (f"img/{sub}/{run_index[e.run_dir]}/{plots_mod.slug(e.dataset)}/{plots_mod.slug(e.maskset)}/"
                       f"{e.resolution}/{it.id}.png")
                if not (out / rel).exists():
                    h = _overlay(gt, mask, out / rel, alpha)
                    if it.hole is None:
                        it.hole = h
                overlay_srcs[mode] = root + _url(rel)
            break
        if overlay_srcs:
            overlay_src = overlay_srcs[hole_overlay]
        cells.append({"kind": "input", "label": "input + hole", "src": overlay_src or gt_src, "note": None,
                      "samples": [], "overlays": overlay_srcs, "smoke": False})
        for f in files:
            e = f.entry
            rel_dir = f"img/outputs/{run_index[e.run_dir]}-{plots_mod.slug(e.job_id)}"
            src = None
            main = f.own(f.outputs.get(it.id))
            if main is not None:
                name = f"{it.id}{main.suffix}"  # the id, not the file name: eval ids may name sub-folders
                _place(main, out / rel_dir / name)
                src = root + _url(f"{rel_dir}/{name}")
            sample_srcs = []
            for sp in f.samples.get(it.id, []):
                if f.own(sp) is None:
                    continue
                _place(sp, out / rel_dir / sp.name)
                sample_srcs.append(root + _url(f"{rel_dir}/{sp.name}"))
            # Smoke goes where it belongs: on the LPIPS number when the metric network was random, on the
            # picture only when the model itself ran on random weights.
            note = None
            if e.row_label in it.lpips:
                note = f"LPIPS {it.lpips[e.row_label]:.4f}" + (" (smoke)" if e.metric_smoke else "")
            cells.append({"kind": "model", "label": e.row_label, "smoke": e.model_smoke, "src": src, "note": note,
                          "samples": sample_srcs, "overlays": {}})
        cells.append({"kind": "gt", "label": "ground truth", "src": gt_src, "note": None, "samples": [], "overlays": {},
                      "smoke": False})
        it.cells = cells

    edges, labels = _bin_edges(group)
    filters: list[tuple[str, str, list[Item]]] = [("all", "all", items)]
    for k in range(len(edges) - 1):
        sel = [it for it in items if _bin_of(it.hole, edges) == k]
        if sel:
            filters.append((f"b{k}", labels.get(edges[k], f"{edges[k]:.2f}–{edges[k + 1]:.2f}"), sel))
    unknown = [it for it in items if _bin_of(it.hole, edges) is None]
    if unknown and len(unknown) < len(items):
        filters.append(("unknown", "unknown", unknown))
    orders = [("worst", "worst first (LPIPS)"), ("id", "by id")]
    gdir = out / "compare" / gslug
    gdir.mkdir(parents=True, exist_ok=True)
    template = env.get_template("compare.html.j2")
    group_title = f"{e0.dataset} / {e0.maskset} @ {e0.resolution}"

    def fname(order: str, filt: str, page: int) -> str:
        return f"{order}-{filt}-{page:04d}.html"

    for okey, _ in orders:
        for fkey, _, fitems in filters:
            seq = fitems if okey == "worst" else sorted(fitems, key=lambda it: it.id)
            pages = max(1, -(-len(seq) // per_page))
            for page in range(1, pages + 1):
                chunk = seq[(page - 1) * per_page: page * per_page]
                html = template.render(
                    title=title, root=root, smoke=smoke, smoke_note=_smoke_note(group), version=matbench.__version__,
                    group_title=group_title, total=len(seq), page=page, pages=pages, resolution=e0.resolution,
                    hole_overlay=hole_overlay, ncols=max((len(it.cells) for it in chunk), default=1),
                    items=[{"id": it.id, "hole": "?" if it.hole is None else f"{it.hole:.3f}",
                            "mean_lpips": it.mean_lpips, "cells": it.cells} for it in chunk],
                    orders=[{"label": lab, "href": fname(o, fkey, 1), "on": o == okey} for o, lab in orders],
                    filters=[{"label": lab, "n": len(fi), "href": fname(okey, f, 1), "on": f == fkey}
                             for f, lab, fi in filters],
                    prev_href=fname(okey, fkey, page - 1) if page > 1 else None,
                    next_href=fname(okey, fkey, page + 1) if page < pages else None,
                    page_links=_page_links(page, pages, lambda p, o=okey, f=fkey: fname(o, f, p)))
                (gdir / fname(okey, fkey, page)).write_text(html, encoding="utf-8")
    return {"href": f"compare/{gslug}/{fname('worst', 'all', 1)}", "title": group_title, "n": len(items),
            "models": [e.row_label for e in group], "limited": limited,
            "sort": (e0.dataset, maskset_order(e0.maskset), e0.resolution or 0)}


# ------------------------------------------------------------------ provenance

def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(d, dict):
        out: list[tuple[str, str]] = []
        for k, v in d.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list) and len(json.dumps(d, default=str)) > 200:
        return [(prefix, json.dumps(d, default=str)[:200] + " …")]
    return [(prefix, d if isinstance(d, str) else json.dumps(d, default=str))]


def _provenance(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    out = []
    for e in sorted(entries, key=lambda e: (e.dataset, maskset_order(e.maskset), e.resolution or 0, e.row_label)):
        items = [("file", str(e.path)), ("smoke", json.dumps(e.record.smoke))]
        items += _flatten({"job": e.record.job})
        items += _flatten({"protocol": e.record.protocol})
        items += _flatten({"provenance": e.record.provenance})
        out.append({"title": f"{e.dataset} / {e.maskset} @ {e.resolution} — {e.row_label}", "smoke": e.record.smoke,
                    "fields": items})
    return out


def _read_text(p: Path) -> str:
    try:
        return json.dumps(json.loads(p.read_text()), indent=2)
    except (OSError, ValueError):
        return p.read_text(errors="replace")


# ------------------------------------------------------------------ site

def render_site(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, per_page: int = 50,
                max_images: int | None = None, title: str = "matbench report", hole_overlay: str = "tint") -> Path:
    """Render the report for every result below `run_dirs` into `out_dir`; returns index.html's path.

    `hole_overlay` is the comparison pages' default hole overlay ("tint" or "opaque"; both are rendered and
    the page can switch)."""
    if per_page < 1:
        raise ValueError(f"per_page must be >= 1, got {per_page}")
    if hole_overlay not in HOLE_OVERLAYS:
        raise ValueError(f"hole_overlay must be one of {', '.join(HOLE_OVERLAYS)}, got {hole_overlay!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = load_entries(run_dirs)
    tables = build_tables(entries)  # raises ProtocolError before anything is rendered side by side
    ranks.attach(tables, with_robustness=True)  # rank confidence and robustness of each leaderboard group
    env = _env()
    (out / "static").mkdir(exist_ok=True)
    for f in ("report.css", "report.js"):
        shutil.copyfile(HERE / "static" / f, out / "static" / f)
    smoke = any(e.record.smoke for e in entries)

    plots: list[plots_mod.Plot] = []
    plots += plots_mod.plot_bins(entries, out)
    plots += plots_mod.plot_hole_histograms(entries, out)
    gen = plots_mod.generalization_rows(entries)
    # The runner's generalization.json is authoritative for the rows it holds.
    run_dirs_seen = sorted({e.run_dir for e in entries})
    file_rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in run_dirs_seen:
        try:
            data = json.loads((d / "generalization.json").read_text())
        except (OSError, ValueError):
            continue
        for r in plots_mod.generalization_file_rows(data):
            file_rows[(r["dataset"], r["maskset"], r["model"], r["metric"])] = r
    if file_rows:
        gen = [r for r in gen if (r["dataset"], r["maskset"], r["model"], r["metric"]) not in file_rows]
        gen = sorted(gen + list(file_rows.values()), key=lambda r: (r["dataset"], r["maskset"], r["model"],
                                                                    list(METRIC_INFO).index(r["metric"])))
    plots += plots_mod.plot_generalization(gen, out)
    plots += plots_mod.plot_diversity(entries, out)
    gen_rows = [{**r, "label": METRIC_INFO[r["metric"]].label, "low_s": fmt_value(r["metric"], r["low"] / METRIC_INFO[
        r["metric"]].scale), "high_s": fmt_value(r["metric"], r["high"] / METRIC_INFO[r["metric"]].scale),
        "delta_s": ("+" if r["delta"] >= 0 else "") + fmt_value(r["metric"], r["delta"] / METRIC_INFO[
            r["metric"]].scale)} for r in gen]

    run_index = {d: i for i, d in enumerate(run_dirs_seen)}

    env.globals["published"] = published_rows(tables)
    # One comparison per dataset × mask set × resolution, across runs: the protocol check above guarantees
    # the same images and masks, so models from different runs appear side by side.
    groups: dict[tuple[str, str, int | None], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.maskset, e.resolution), []).append(e)
    comparisons = []
    for group in groups.values():
        c = render_comparison(group, out, run_index, env, ImagePages(per_page, max_images, hole_overlay), title,
                              smoke)
        if c:
            comparisons.append(c)
    comparisons.sort(key=lambda c: c["sort"])

    runs = [{"path": str(d / "run.json"), "text": _read_text(d / "run.json")}
            for d in run_dirs_seen if (d / "run.json").is_file()]
    gen_files = [{"path": str(d / "generalization.json"), "text": _read_text(d / "generalization.json")}
                 for d in run_dirs_seen if (d / "generalization.json").is_file()]
    html = env.get_template("index.html.j2").render(
        title=title, root="", smoke=smoke, smoke_note=_smoke_note(entries), version=matbench.__version__,
        tables=[_table_view(t, i) for i, t in enumerate(tables)], plots=plots, gen_rows=gen_rows,
        gen_files=gen_files, comparisons=comparisons, runs=runs, provenance=_provenance(entries))
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
