"""Static HTML report: leaderboards, plots, paginated image comparisons, provenance.

Layout of REPORT_DIR (self-contained; no CDN; opens from file://):
    index.html                          leaderboards (sortable), plots, links, provenance
    static/report.{css,js}              copied from reports/static
    plots/*.png, plots/*.svg            matplotlib figures
    img/inputs/<run>/<dataset>/<res>/<id>.png          ground truth (hard link or copy)
    img/overlay/<run>/<dataset>/<maskset>/<res>/<id>.png   input with the hole tinted
    img/outputs/<run>-<job>/<id>.png (+ <id>_s<k>.png)     model outputs (hard link or copy)
    compare/<group>/<order>-<filter>-<page>.html       static pages, `per_page` items each
Every comparison view (order × hole-ratio filter) is pre-rendered, so the site needs no server and
pages stay small however many images a run has; images load lazily.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image

import matbench
from matbench.results import METRIC_INFO
from reports import plots as plots_mod
from reports.leaderboard import Entry, Table, build_tables, load_entries, maskset_order
from reports.tables import SMOKE_NOTE, arrow, ci_halfwidth, fmt_value

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SAMPLE_RE = re.compile(r"^(?P<id>.+)_s(?P<k>\d+)$")
OVERLAY_RGB = np.array([255, 0, 255], dtype=np.float64)


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


def _overlay(gt_path: Path, mask_path: Path, dst: Path) -> float | None:
    """Write GT with hole pixels (mask 255 = hole) tinted magenta; returns the hole ratio."""
    with Image.open(gt_path) as im:
        gt = np.asarray(im.convert("RGB"), dtype=np.float64)
    with Image.open(mask_path) as im:
        hole = np.asarray(im.convert("L")) > 127
    if hole.shape != gt.shape[:2]:
        log.warning("%s: mask size %s differs from image %s; no overlay", mask_path, hole.shape, gt.shape[:2])
        _place(gt_path, dst)
        return None
    out = gt.copy()
    out[hole] = 0.35 * gt[hole] + 0.65 * OVERLAY_RGB
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out.round().astype(np.uint8)).save(dst, format="PNG", compress_level=3)
    return float(hole.mean())


# ------------------------------------------------------------------ leaderboard view model

def _table_view(t: Table, index: int) -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    for ms, _ in t.columns:
        if groups and groups[-1]["name"] == ms:
            groups[-1]["span"] += 1
        else:
            groups.append({"name": ms, "span": 1})
    columns = [{"maskset": ms, "label": METRIC_INFO[m].label, "arrow": arrow(m),
                "hib": METRIC_INFO[m].higher_is_better} for ms, m in t.columns]
    smoke_rows = t.smoke_rows()
    rows = []
    for r in t.rows:
        cells = []
        for ms, m in t.columns:
            mv = t.cells.get((r, ms, m))
            if mv is None or mv.value is None:
                cells.append(None)
                continue
            sc = METRIC_INFO[m].scale
            ci_title = None
            if mv.ci_low is not None and mv.ci_high is not None:
                ci_title = f"CI [{fmt_value(m, mv.ci_low)}, {fmt_value(m, mv.ci_high)}]"
            cells.append({"text": fmt_value(m, mv.value), "ci": ci_halfwidth(m, mv), "n": mv.n,
                          "best": r in t.best(ms, m), "sort": repr(mv.value * sc), "ci_title": ci_title})
        rows.append({"label": r, "smoke": r in smoke_rows, "cells": cells})
    return {"slug": f"{index}-{plots_mod.slug(t.dataset, t.resolution)}", "title": t.title, "smoke": t.smoke,
            "groups": groups, "columns": columns, "rows": rows}


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


def render_comparison(group: Sequence[Entry], out: Path, run_index: dict[Path, int], env: jinja2.Environment,
                      per_page: int, max_images: int | None, title: str, smoke: bool) -> dict[str, Any] | None:
    group = sorted(group, key=lambda e: e.row_label)
    found = [(e, *_outputs(e)) for e in group]
    if not any(main for _, main, _ in found):
        return None
    e0 = group[0]
    gslug = plots_mod.slug(e0.dataset, e0.maskset, e0.resolution)
    frames = {e.row_label: e.per_image() for e in group}
    ids: set[str] = set()
    hole: dict[str, float] = {}
    lp: dict[str, dict[str, float]] = {}
    for e, main, _ in found:
        ids.update(main)
        df = frames[e.row_label]
        if df is None:
            continue
        ids.update(df["id"])
        if "hole_ratio" in df.columns:
            for i, h in zip(df["id"], df["hole_ratio"], strict=True):
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
        for e in group:
            gt = e.input_path(it.id)
            if gt is None:
                continue
            r = run_index[e.run_dir]
            rel_gt = f"img/inputs/{r}/{plots_mod.slug(e.dataset)}/{e.resolution}/{it.id}.png"
            _place(gt, out / rel_gt)
            gt_src = root + rel_gt
            mk = e.mask_path(it.id)
            if mk is not None:
                rel_ov = (f"img/overlay/{r}/{plots_mod.slug(e.dataset)}/{plots_mod.slug(e.maskset)}/"
                          f"{e.resolution}/{it.id}.png")
                if not (out / rel_ov).exists():
                    h = _overlay(gt, mk, out / rel_ov)
                    if it.hole is None:
                        it.hole = h
                overlay_src = root + rel_ov
            break
        cells.append({"label": "input + hole", "src": overlay_src or gt_src, "note": None, "samples": []})
        for e, main, samples in found:
            rel_dir = f"img/outputs/{run_index[e.run_dir]}-{plots_mod.slug(e.job_id)}"
            src = None
            if it.id in main:
                _place(main[it.id], out / rel_dir / main[it.id].name)
                src = f"{root}{rel_dir}/{main[it.id].name}"
            sample_srcs = []
            for p in samples.get(it.id, []):
                _place(p, out / rel_dir / p.name)
                sample_srcs.append(f"{root}{rel_dir}/{p.name}")
            note = f"LPIPS {it.lpips[e.row_label]:.4f}" if e.row_label in it.lpips else None
            cells.append({"label": e.row_label + (" (smoke)" if e.record.smoke else ""), "src": src, "note": note,
                          "samples": sample_srcs})
        cells.append({"label": "ground truth", "src": gt_src, "note": None, "samples": []})
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
                    title=title, root=root, smoke=smoke, smoke_note=SMOKE_NOTE, version=matbench.__version__,
                    group_title=group_title, total=len(seq), page=page, pages=pages,
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
                max_images: int | None = None, title: str = "matbench report") -> Path:
    """Render the report for every result below `run_dirs` into `out_dir`; returns index.html's path."""
    if per_page < 1:
        raise ValueError(f"per_page must be >= 1, got {per_page}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = load_entries(run_dirs)
    tables = build_tables(entries)  # raises ProtocolError before anything is rendered side by side
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
    from reports.published import rows as published_rows  # eval --protocol: published values beside ours

    env.globals["published"] = published_rows(tables)
    # One comparison per dataset × mask set × resolution, across runs: the protocol check above guarantees
    # the same images and masks, so models from different runs appear side by side.
    groups: dict[tuple[str, str, int | None], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.maskset, e.resolution), []).append(e)
    comparisons = []
    for group in groups.values():
        c = render_comparison(group, out, run_index, env, per_page, max_images, title, smoke)
        if c:
            comparisons.append(c)
    comparisons.sort(key=lambda c: c["sort"])

    runs = [{"path": str(d / "run.json"), "text": _read_text(d / "run.json")}
            for d in run_dirs_seen if (d / "run.json").is_file()]
    gen_files = [{"path": str(d / "generalization.json"), "text": _read_text(d / "generalization.json")}
                 for d in run_dirs_seen if (d / "generalization.json").is_file()]
    html = env.get_template("index.html.j2").render(
        title=title, root="", smoke=smoke, smoke_note=SMOKE_NOTE, version=matbench.__version__,
        tables=[_table_view(t, i) for i, t in enumerate(tables)], plots=plots, gen_rows=gen_rows,
        gen_files=gen_files, comparisons=comparisons, runs=runs, provenance=_provenance(entries))
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
