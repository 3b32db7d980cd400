"""The report's figures judged on their data (axis limits and tick labels, read before saving), and the image
pages of a report built from `matbench eval` folders (issue 25 item 6)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pytest
from matbench.reports import plots as plots_mod
from matbench.reports import trend
from matbench.reports.leaderboard import load_entries
from matbench.reports.render import render_site
from matbench.reports.sample import synthetic_record, write_job
from PIL import Image

from matbench.cli import main
from matbench.history import History
from matbench.results import MetricValue


def _history(tmp: Path, records: list[tuple[dict[str, Any], str]]) -> list[Any]:
    """History rows of one model from (metrics, created) pairs."""
    h = History(tmp / "h.db")
    for k, (metrics, created) in enumerate(records):
        rec = synthetic_record("places", "mat-large", "mat", metrics, smoke=True)
        rec.provenance["created"] = created
        h.append([rec], "run", git=(f"{k:x}" * 40, False))
    return History(tmp / "h.db").rows()


def _drawn(fig: Any) -> Any:
    fig.canvas.draw()
    return fig.axes[0]


def _visible_ticks(ax: Any, axis: str = "y") -> list[str]:
    """Labels of the ticks inside the view (matplotlib also returns ticks just outside it)."""
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    ticks = ax.get_yticks() if axis == "y" else ax.get_xticks()
    labels = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [lab.get_text() for t, lab in zip(ticks, labels, strict=True) if lo <= t <= hi]


def test_trend_of_one_record_has_a_day_wide_axis_and_plain_labels(tmp_path: Path) -> None:
    fid = 27.95531023  # a band 2e-12 wide: matplotlib drew it as '1e−11−2.795531023e1'
    rows = _history(tmp_path, [({"fid": (fid, fid - 1e-12, fid + 1e-12), "pids": (0.0, 0.0, 0.0)},
                                "2026-03-01T12:00:00+00:00")])
    t = mdates.date2num(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC))

    ax = _drawn(trend.metric_figure(rows, "fid"))
    x0, x1 = ax.get_xlim()
    assert (x0, x1) == pytest.approx((t - 0.5, t + 0.5))  # a day around the one time, not 2025-2029
    assert [lab.get_text() for lab in ax.get_xticklabels()] == ["2026-03-01 12:00 UTC"]
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    # 2 % of the value wide (more than 10 display steps of 0.01), centred on it
    assert ax.get_ylim() == pytest.approx((fid * 0.99, fid * 1.01))
    labels = _visible_ticks(ax)
    assert len(labels) >= 3 and len(set(labels)) == len(labels)
    assert all(re.fullmatch(r"\d+\.\d\d", s) for s in labels), labels  # FID's 2 digits, no offset or exponent

    ax = _drawn(trend.metric_figure(rows, "pids"))
    # a constant P-IDS of 0 %: from 0 to 10 display steps (0.01 %), not −0.04…0.04 around it
    assert ax.get_ylim() == pytest.approx((0.0, 0.1))
    labels = _visible_ticks(ax)
    assert labels[0] == "0.00" and all(re.fullmatch(r"\d\.\d\d", s) for s in labels), labels


def test_trend_over_days_spans_the_records(tmp_path: Path) -> None:
    rows = _history(tmp_path, [({"lpips": (0.2, 0.19, 0.21)}, "2026-03-01T00:00:00+00:00"),
                               ({"lpips": (0.25, 0.24, 0.26)}, "2026-03-05T00:00:00+00:00")])
    ax = _drawn(trend.metric_figure(rows, "lpips"))
    t0, t1 = (mdates.date2num(dt.datetime(2026, 3, d, tzinfo=dt.UTC)) for d in (1, 5))
    assert ax.get_xlim() == pytest.approx((t0 - 0.08 * 4, t1 + 0.08 * 4))
    assert ax.get_ylim() == pytest.approx((0.19 - 0.007, 0.26 + 0.007))  # data ± 10 % of its range
    assert all(re.fullmatch(r"0\.\d{4}", s) for s in _visible_ticks(ax))  # LPIPS: 4 digits


def test_value_limits_by_hand() -> None:
    assert plots_mod.value_limits([1.0, 3.0], 2) == pytest.approx((0.8, 3.2))
    assert plots_mod.value_limits([5.0, 5.0], 2) == pytest.approx((4.95, 5.05))  # 2 % of 5 = 0.1 > 10 × 0.01
    assert plots_mod.value_limits([0.0002, 0.0002], 4) == pytest.approx((0.0, 0.001))  # 10 × 1e-4, moved up to 0
    assert plots_mod.value_limits([-1.0, -1.0], 2) == pytest.approx((-1.05, -0.95))  # 10 × 0.01 > 2 % of 1
    assert plots_mod.value_limits([float("nan")], 2) is None


HOLE = {"a": 0.05, "b": 0.12, "c": 0.15, "d": 0.18, "e": 0.55, "f": 0.72, "g": 0.78}
LPIPS = {"a": 0.10, "b": 0.20, "c": 0.22, "d": 0.24, "e": 0.50, "f": 0.60, "g": 0.64}


def _bins_run(d: Path, with_bins: bool) -> Any:
    """One job on 7 images, per_image.csv always; record bins as the evaluator writes them (metrics only for
    bins of >= 2 images) when `with_bins`."""
    rec = synthetic_record("places", "mat-large", "mat", {"fid": 1.0}, n=7)
    if with_bins:
        rec.bins = []
        for k in range(10):
            ids = [i for i, h in HOLE.items() if k / 10 <= h < (k + 1) / 10]
            m = {}
            if len(ids) >= 2:
                v = float(np.mean([LPIPS[i] for i in ids]))
                m = {"lpips": MetricValue(v, v - 0.01, v + 0.01, len(ids))}
            rec.bins.append({"lo": k / 10, "hi": (k + 1) / 10, "label": f"{k * 10}-{k * 10 + 10}%", "n": len(ids),
                             "metrics": m})
    job = write_job(d, rec).parent
    (job / "per_image.csv").write_text("id,hole_ratio,lpips\n" + "".join(f"{i},{HOLE[i]},{LPIPS[i]}\n"
                                                                          for i in HOLE))
    (e,) = load_entries([d])
    return e


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str]]:
    """(figure, caption) of every plot, taken when plots.save is called (the figure is drawn first)."""
    out: list[tuple[Any, str]] = []
    real = plots_mod.save

    def keep(fig: Any, root: Path, stem: str, title: str, caption: str = "") -> Any:
        fig.canvas.draw()
        out.append((fig, caption))
        return real(fig, root, stem, title, caption)

    monkeypatch.setattr(plots_mod, "save", keep)
    return out


def _lines(ax: Any) -> tuple[list[float], list[float], list[str]]:
    """(x of the joined line, x of the lone points, their face colours) of the one model drawn."""
    joined = [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none", "")]
    lone = [ln for ln in ax.get_lines() if ln.get_linestyle() in ("None", "none", "")]
    assert len(joined) == 1 and len(lone) == 1
    return (list(joined[0].get_xdata()), list(lone[0].get_xdata()), [str(lone[0].get_markerfacecolor())])


def test_one_image_bins_are_lone_points_whether_or_not_the_record_has_bins(tmp_path: Path,
                                                                           saved: list[tuple[Any, str]]) -> None:
    with_bins, csv_only = _bins_run(tmp_path / "a", True), _bins_run(tmp_path / "b", False)
    plots_mod.plot_bins([with_bins], tmp_path / "site-a")
    plots_mod.plot_bins([csv_only], tmp_path / "site-b")
    (fig_a, cap_a), (fig_b, cap_b) = saved
    ax_a, ax_b = fig_a.axes[0], fig_b.axes[0]
    assert ax_a.get_title().startswith("LPIPS") and ax_b.get_title().startswith("LPIPS")
    # bins 10-20 % (3 images) and 70-80 % (2) joined; 0-10 % and 50-60 % hold one image each: hollow, alone
    assert _lines(ax_a) == _lines(ax_b) == ([pytest.approx(0.15), pytest.approx(0.75)],
                                            [pytest.approx(0.05), pytest.approx(0.55)], ["none"])
    lone = [ln for ln in ax_a.get_lines() if ln.get_linestyle() == "None"][0]
    assert list(lone.get_ydata()) == pytest.approx([LPIPS["a"], LPIPS["e"]])  # the single image's own value
    for cap in (cap_a, cap_b):
        assert cap.count("Hollow points, not joined") == 1 and "Not plotted" not in cap
    # the image counts panel: whole images only
    counts = fig_a.axes[1]
    assert counts.get_title() == "images per bin"
    assert all(float(t).is_integer() for t in counts.get_yticks())


def test_hole_ratio_histogram_counts_whole_images(tmp_path: Path, saved: list[tuple[Any, str]]) -> None:
    e = _bins_run(tmp_path / "a", False)
    plots_mod.plot_hole_histograms([e], tmp_path / "site")
    ((fig, _),) = saved
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks  # not 0.0, 0.5, 1.0, ...


# ------------------------------------------------------------------ eval folders

SIZE = 16
IDS = ("a", "b", "sub/c")


def _eval_folders(base: Path) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """gt/, res/ and masks/ (MAT polarity: 255 = known) for IDS, evaluated by `matbench eval` into base/out."""
    rng = np.random.default_rng(1)
    gts, holes = {}, {}
    for k, i in enumerate(IDS):
        gts[i] = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        holes[i] = np.zeros((SIZE, SIZE), bool)
        holes[i][2:5 + 3 * k, 3:11] = True
        res = gts[i].copy()
        res[holes[i]] = 90 + 40 * k
        for folder, im in (("gt", gts[i]), ("res", res), ("masks", np.where(holes[i], 0, 255).astype(np.uint8))):
            (base / folder / i).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(base / folder / f"{i}.png")
    assert main(["eval", "--results", str(base / "res"), "--gt", str(base / "gt"), "--masks", str(base / "masks"),
                 "--mask-polarity", "known=255", "--metrics", "psnr,l1", "--smoke", "--workers", "0",
                 "--no-history", "-o", str(base / "out")]) == 0
    return base / "out", gts, holes


def test_report_of_eval_folders_has_image_pages(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out, gts, holes = _eval_folders(tmp_path)
    site = tmp_path / "site"
    render_site([out], site)
    index = (site / "index.html").read_text()
    # The banner says what the pictures are: the user's result folder, not "the models' real outputs".
    assert "The output images are the result folders given to matbench eval, shown as they are." in index
    assert "real outputs" not in index
    (href,) = re.findall(r'<li><a href="(compare/[^"]+)"', index)
    page = site / href
    html = page.read_text()
    assert [m for m in re.findall(r'class="item" id="img-([^"]+)"', html)] != []
    assert sorted(re.findall(r'class="item" id="img-([^"]+)"', html)) == sorted(IDS)
    srcs = re.findall(r'<img class="full" src="([^"]+)"', html)
    assert len(srcs) == 3 * len(IDS)  # input + hole, the result, the ground truth
    for i in IDS:
        overlay, result, gt = (page.parent / s for s in srcs if s.endswith(f"/{i}.png"))
        assert result.read_bytes() == (tmp_path / "res" / f"{i}.png").read_bytes()
        assert gt.read_bytes() == (tmp_path / "gt" / f"{i}.png").read_bytes()
        # tinted overlay: hole pixels (mask 0 under known=255) 65 % magenta, the rest the ground truth
        ov = np.asarray(Image.open(overlay).convert("RGB")).astype(float)
        want = gts[i].astype(float)
        want[holes[i]] = 0.35 * want[holes[i]] + 0.65 * np.array([255.0, 0.0, 255.0])
        assert np.abs(ov - np.round(want)).max() <= 0.5

    assert "By hole ratio" in index
    for name in ("plot_bins", "plot_hole_histograms"):  # checked above; the renders below are about the pictures
        monkeypatch.setattr(plots_mod, name, lambda *a, **k: [])

    # A result replaced by a link out of the folders inputs.json names is not carried into the report.
    outside = tmp_path / "outside.png"
    shutil.copyfile(tmp_path / "res" / "b.png", outside)
    (tmp_path / "res" / "b.png").unlink()
    (tmp_path / "res" / "b.png").symlink_to(outside)
    render_site([out], tmp_path / "site3")
    html3 = (tmp_path / "site3" / href).read_text()
    assert "img/outputs/0-out/a.png" in html3 and "img/outputs/0-out/b.png" not in html3
    assert not list((tmp_path / "site3" / "img" / "outputs").rglob("b.png"))

    # Folders gone since eval: the numbers are still reported, the pictures are not, with a warning.
    shutil.rmtree(tmp_path / "res")
    with caplog.at_level(logging.WARNING):
        render_site([out], tmp_path / "site2")
    assert "no image pages for this result" in caplog.text and "results folder" in caplog.text
    index2 = (tmp_path / "site2" / "index.html").read_text()
    assert "No inpainted outputs found" in index2 and "PSNR" in index2
