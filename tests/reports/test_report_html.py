"""Static HTML report: structure, pagination, ordering, filters, images on disk, smoke banner, provenance."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from matbench.reports.leaderboard import ProtocolError
from matbench.reports.render import render_site
from matbench.reports.sample import make_sample_run, synthetic_record, write_job

from matbench.cli import main

PER_PAGE = 3
N_IMAGES = 5


class _Imgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.items: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        elif tag == "div" and (a.get("class") or "") == "item":
            self.items.append((a.get("id") or "")[len("img-"):])


def parse(path: Path) -> _Imgs:
    p = _Imgs()
    p.feed(path.read_text())
    return p


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("report")
    run = make_sample_run(base / "run", n_images=N_IMAGES, size=32, models=("opencv-telea", "mean-fill"))
    out = base / "site"
    assert main(["report", str(run), "-o", str(out), "--per-page", str(PER_PAGE)]) == 0
    return run, out


def _group_dir(out: Path, maskset: str) -> Path:
    (d,) = [d for d in (out / "compare").iterdir() if f"-{maskset}-" in d.name]
    return d


def test_index_has_leaderboard_ci_n_best_and_smoke_banner(sample: tuple[Path, Path]) -> None:
    run, out = sample
    html = (out / "index.html").read_text()
    assert 'id="smoke-banner"' in html and "SMOKE" in html
    # One group per mask set, small before large, each in MAT Table 2 order (FID/P-IDS/U-IDS first).
    whole = html[html.index('<table class="lb lb-all"'):]
    whole = whole[:whole.index("</table>")]
    heads = re.findall(r'<th class="sortable"[^>]*>([^<]*)</th>', whole)
    per_ms = ["FID↓", "P-IDS (%)↑", "U-IDS (%)↑", "LPIPS↓", "Precision↑", "Recall↑", "PSNR↑", "SSIM↑", "L1↓"]
    assert heads[:10] == ["Model", *per_ms]
    assert heads[11:20] == per_ms  # heads[10]: diversity (first model only) closes the mat-small group
    assert whole.index(">mat-small") < whole.index(">mat-large")
    # Best FID on mat-small is bold (class best) and is the lower of the two models' values.
    fids = {m: json.loads((run / "jobs" / f"sample-shapes-mat-small-{m}-32" / "metrics.json").read_text())
            ["metrics"]["fid"] for m in ("opencv-telea", "mean-fill")}
    best = min(fids, key=lambda m: fids[m]["value"])
    v = fids[best]
    assert f'<td class="best" data-v="{v["value"]!r}" title="CI [' in html
    assert f"± {(v['ci_high'] - v['ci_low']) / 2:.2f}" in html
    assert f'<span class="gn">n={N_IMAGES}</span>' in html  # once per mask set: every value has the same n
    # Provenance panel: protocol hashes, versions, run.json.
    assert "protocol.maskset_sha256" in html and "sample-mat-large" in html and "provenance.versions.torch" in html
    assert "run.json" in html
    # Plots exist as PNG and SVG and are linked.
    for stem in ("bins-sample-shapes-mat-small-32", "hole_ratio_histograms", "diversity"):
        assert (out / "plots" / f"{stem}.png").stat().st_size > 1000
        assert (out / "plots" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        assert f"plots/{stem}.svg" in html


def test_every_image_and_link_resolves(sample: tuple[Path, Path]) -> None:
    _, out = sample
    pages = [out / "index.html", *sorted((out / "compare").rglob("*.html"))]
    n_imgs = 0
    for page in pages:
        p = parse(page)
        for img in p.imgs:
            src = img["src"] or ""
            assert not src.startswith(("http:", "https:", "//")), f"{page}: external image {src}"
            assert (page.parent / src).resolve().is_file(), f"{page}: missing {src}"
            assert img.get("loading") == "lazy"
            n_imgs += 1
        for href in p.links:
            target = href.split("#")[0]
            if target:
                assert (page.parent / target).resolve().exists(), f"{page}: broken link {href}"
    assert n_imgs > 0
    # No CDN or absolute URLs anywhere in the site.
    for page in pages + [out / "static" / "report.js", out / "static" / "report.css"]:
        assert "http://" not in page.read_text() and "https://" not in page.read_text()


def test_pagination_worst_first_and_samples(sample: tuple[Path, Path]) -> None:
    run, out = sample
    g = _group_dir(out, "mat-large")
    p1, p2 = parse(g / "worst-all-0001.html"), parse(g / "worst-all-0002.html")
    assert not (g / "worst-all-0003.html").exists()
    assert len(p1.items) == PER_PAGE and len(p2.items) == N_IMAGES - PER_PAGE
    # Independent worst-first order: mean of the models' per-image LPIPS, descending.
    frames = [pd.read_csv(run / "jobs" / f"sample-shapes-mat-large-{m}-32" / "per_image.csv", dtype={"id": str})
              for m in ("opencv-telea", "mean-fill")]
    mean = pd.concat(frames).groupby("id")["lpips"].mean().sort_values(ascending=False, kind="stable")
    assert p1.items + p2.items == list(mean.index)
    by_id = parse(g / "id-all-0001.html").items + parse(g / "id-all-0002.html").items
    assert by_id == sorted(mean.index)
    # Each row: input overlay, one image per model, ground truth; the first model has 2 pluralistic samples.
    srcs = [i["src"] or "" for i in p1.imgs]
    first = p1.items[0]
    assert sum(1 for s in srcs if s.endswith(f"/{first}.png")) == 4  # overlay, 2 outputs, GT
    assert sum(1 for s in srcs if re.search(rf"/{first}_s[12]\.png$", s)) == 2


def test_hole_ratio_filters(sample: tuple[Path, Path]) -> None:
    run, out = sample
    g = _group_dir(out, "mat-small")
    df = pd.read_csv(run / "jobs" / "sample-shapes-mat-small-opencv-telea-32" / "per_image.csv", dtype={"id": str})
    hole = dict(zip(df["id"], df["hole_ratio"], strict=True))
    page = (g / "worst-all-0001.html").read_text()
    filters = re.findall(r'href="worst-(b\d+)-0001.html">([\d.]+)–([\d.]+) \((\d+)\)', page)
    assert filters
    total = 0
    for key, lo, hi, n in filters:
        ids = []
        k = 1
        while (g / f"worst-{key}-{k:04d}.html").exists():
            ids += parse(g / f"worst-{key}-{k:04d}.html").items
            k += 1
        assert len(ids) == int(n)
        assert all(float(lo) <= hole[i] < float(hi) for i in ids)
        total += len(ids)
    assert total == N_IMAGES


def test_overlay_tints_only_the_hole(sample: tuple[Path, Path]) -> None:
    import numpy as np
    from PIL import Image

    run, out = sample
    (ov,) = list((out / "img" / "overlay").rglob("mat-large/32/00000.png"))
    gt = np.asarray(Image.open(run / "inputs" / "sample-shapes" / "32" / "00000.png").convert("RGB"))
    hole = np.asarray(Image.open(run / "masks" / "mat-large" / "32" / "00000.png")) > 127
    o = np.asarray(Image.open(ov).convert("RGB"))
    assert hole.any() and (o[~hole] == gt[~hole]).all()
    expected = np.round(0.35 * gt[hole] + 0.65 * np.array([255, 0, 255])).astype(np.uint8)
    assert np.abs(o[hole].astype(int) - expected).max() <= 1
    # The opaque overlay: solid magenta in the hole (nothing of the ground truth shows through), GT elsewhere.
    (op,) = list((out / "img" / "overlay-opaque").rglob("mat-large/32/00000.png"))
    o = np.asarray(Image.open(op).convert("RGB"))
    assert (o[hole] == [255, 0, 255]).all() and (o[~hole] == gt[~hole]).all()


def test_hole_overlay_option_and_full_size_cells(sample: tuple[Path, Path], tmp_path: Path) -> None:
    run, tinted = sample
    g = _group_dir(tinted, "mat-large")
    page = (g / "worst-all-0001.html").read_text()
    # Both overlays are referenced by the input cell; the default (tint) is its src.
    m = re.search(r'<img class="full" src="([^"]+)"[^>]*data-overlay-tint="([^"]+)" data-overlay-opaque="([^"]+)"',
                  page)
    assert m and m[1] == m[2] and "/overlay/" in m[2] and "/overlay-opaque/" in m[3]
    assert (g / m[3]).resolve().is_file()
    # Cells carry the image's real size (the viewer shows it 1:1) and are reachable by keyboard.
    assert re.search(r'<img class="full" [^>]*width="32" height="32" tabindex="0"', page)
    assert 'id="viewer"' in page
    out = tmp_path / "site"
    assert main(["report", str(run), "-o", str(out), "--per-page", str(PER_PAGE), "--max-images", "2",
                 "--hole-overlay", "opaque"]) == 0
    page = (_group_dir(out, "mat-large") / "worst-all-0001.html").read_text()
    m = re.search(r'<img class="full" src="([^"]+)"[^>]*data-overlay-opaque="([^"]+)"', page)
    assert m and m[1] == m[2] and 'data-default="opaque"' in page


def test_smoke_labels_the_metrics_not_the_pictures(sample: tuple[Path, Path], tmp_path: Path) -> None:
    """The sample run's models are real (classical) and only its metric networks are stand-ins: the LPIPS under
    each picture says smoke, the picture does not. A model on random weights gets the badge on its pictures."""
    run, out = sample
    page = (_group_dir(out, "mat-large") / "worst-all-0001.html").read_text()
    assert re.search(r"LPIPS \d\.\d{4} \(smoke\)", page)
    labels = re.findall(r'<div class="label">(.*?)</div>', page)
    assert labels and not any("SMOKE" in x or "(smoke)" in x.split("<br>")[0] for x in labels)
    assert "The output images are the models&#39; real outputs" in page

    d = tmp_path / "r"
    make_sample_run(d, n_images=2, size=16, models=("opencv-telea", "mean-fill"), masksets=("mat-large",), samples=0)
    metrics = d / "jobs" / "sample-shapes-mat-large-mean-fill-16" / "metrics.json"
    rec = json.loads(metrics.read_text())
    rec["provenance"]["weights"]["model"]["smoke"] = True  # as the runner records a model built with smoke=True
    metrics.write_text(json.dumps(rec))
    site = tmp_path / "site"
    render_site([d], site)
    page = next((site / "compare").rglob("worst-all-0001.html")).read_text()
    labels = re.findall(r'<div class="label">(.*?)</div>', page)
    assert [x.split("<br>")[0] for x in labels if "SMOKE" in x] == [
        'mean-fill <span class="badge-smoke" title="this model ran on random weights: not a real inpainting">'
        'SMOKE</span>'] * 2
    assert "some models ran on random weights" in page


def test_smoke_sources_from_runner_eval_and_unknown_records() -> None:
    from matbench.reports.leaderboard import smoke_sources

    rec = synthetic_record("places", "mat-large", "mat", {"fid": 1.0}, smoke=True)
    rec.provenance = {"metric_smoke": True, "weights": {"model": {"name": "mat", "smoke": False}}}  # runner
    assert smoke_sources(rec) == (False, True)
    rec.provenance = {"metric_smoke": False, "weights": {"model": {"name": "mat", "smoke": True}}}
    assert smoke_sources(rec) == (True, False)
    rec.provenance = {"smoke": True, "weights": {"inception": {}}}  # matbench eval --smoke: no model ran here
    assert smoke_sources(rec) == (False, True)
    rec.provenance = {}  # smoke, but nothing says where: the pictures are not claimed to be real
    assert smoke_sources(rec) == (True, False)
    rec.smoke = False
    assert smoke_sources(rec) == (False, False)


def test_leaderboard_intervals_and_groups_in_html(tmp_path: Path) -> None:
    d = tmp_path / "r"
    for model, kid in (("mat", (-0.04873, -0.04873, -0.04873)), ("lama", (0.01, 0.005, 0.02))):
        write_job(d, synthetic_record("places", "mat-small", model, {"fid": (10.0, 9.2, 10.3), "kid": kid}, n=8))
        write_job(d, synthetic_record("places", "mat-large", model, {"fid": (12.0, 11.0, 13.0), "kid": kid}, n=8))
    render_site([d], tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    whole = html[html.index('<table class="lb lb-all"'):]
    whole = whole[:whole.index("</table>")]
    # Each mask set heads exactly one group (the old layout repeated "mat-small | mat-large" per metric block).
    assert re.findall(r'<th colspan="(\d+)" data-g="\d+">([\w-]+)', whole) == [("2", "mat-small"), ("2", "mat-large")]
    assert "<span class=\"ci\">[9.20, 10.30]</span>" in whole  # asymmetric: bounds, not ± half-width
    assert "<span class=\"ci\">± 1.00</span>" in whole  # symmetric
    assert whole.count("no CI †") == 2 and "[-48.73, -48.73]</span>" not in whole
    assert 'title="no interval: recorded [-48.73, -48.73]; zero-width interval' in whole
    assert ("† No confidence interval shown: zero-width interval: every resample of the n = 8 images gave the same "
            "value for this metric") in html
    # the negative KID (noise around 0) is the column's lowest: no KID is bold, not even the next one (issue 25)
    assert re.search(r'<td class="best"[^>]*data-m="fid"', whole)
    assert not re.search(r'<td class="best"[^>]*data-m="kid"', whole)
    # The per-mask-set tables that replace the whole one when it does not fit hold the same cells.
    assert html.count('<table class="lb lb-part"') == 2


def test_records_only_real_results_generalization(tmp_path: Path) -> None:
    """A plain eval dir (metrics.json only, not smoke): no banner, no comparisons, deltas 512 -> 1024."""
    d = tmp_path / "eval"
    for res, fid in ((512, 3.0), (1024, 4.5)):
        write_job(d, synthetic_record("places", "mat-large", "mat", {"fid": fid, "pids": 0.1, "diversity": 0.2},
                                      resolution=res))
    # The runner's generalization.json rows are shown too (here a metric the records lack).
    (d / "generalization.json").write_text(json.dumps({"schema": "matbench.generalization/1", "base": 512,
        "target": 1024, "rows": [{"dataset": "places", "maskset": "mat-large", "model": "mat", "metric": "lpips",
                                  "base_resolution": 512, "target_resolution": 1024, "base": 0.2, "target": 0.25,
                                  "delta": 0.05}]}))
    out = tmp_path / "site"
    render_site([d], out)
    html = (out / "index.html").read_text()
    assert re.search(r"<td>LPIPS</td><td>512</td><td>1024</td><td>0.2000</td><td>0.2500</td><td>\+0.0500</td>", html)
    assert "smoke-banner" not in html and "SMOKE" not in html
    assert "No inpainted outputs found" in html
    assert not (out / "compare").exists()
    assert (out / "plots" / "generalization.svg").exists() and (out / "plots" / "diversity.png").exists()
    assert re.search(r"<td>FID</td><td>512</td><td>1024</td><td>3.00</td><td>4.50</td><td>\+1.50</td>", html)


def test_refuses_mixed_protocols(tmp_path: Path) -> None:
    d = tmp_path / "r"
    write_job(d, synthetic_record("places", "mat-large", "mat", {"fid": 3.0}))
    write_job(d, synthetic_record("places", "mat-large", "lama", {"fid": 3.0}, feature_extractor="other"))
    with pytest.raises(ProtocolError, match="feature_extractor"):
        render_site([d], tmp_path / "site")
    assert main(["report", str(d), "-o", str(tmp_path / "site")]) == 2


def test_bin_series_falls_back_to_per_image_csv(tmp_path: Path) -> None:
    """Runner bins without metrics (too few images per bin): the plot bins per_image.csv on the same edges."""
    from matbench.reports.leaderboard import load_entries
    from matbench.reports.plots import _bin_series

    d = tmp_path / "r"
    rec = synthetic_record("places", "mat-large", "mat", {"fid": 1.0})
    rec.bins = [{"lo": 0.0, "hi": 0.5, "n": 2, "metrics": {}}, {"lo": 0.5, "hi": 1.0, "n": 1, "metrics": {}}]
    job = write_job(d, rec).parent
    (job / "per_image.csv").write_text("id,hole_ratio,lpips,psnr\na,0.1,0.2,20\nb,0.4,0.4,10\nc,0.7,0.5,\n")
    (e,) = load_entries([d])
    s = {m: [(p.centre, p.value, p.lo, p.hi, p.n) for p in pts] for m, pts in _bin_series(e).items()}
    assert s["lpips"] == [(0.25, pytest.approx(0.3), None, None, 2), (0.75, pytest.approx(0.5), None, None, 1)]
    assert s["psnr"] == [(0.25, pytest.approx(15.0), None, None, 2)]  # NaN PSNR of c is skipped


def test_models_from_two_runs_share_one_comparison(tmp_path: Path) -> None:
    a = make_sample_run(tmp_path / "a", n_images=2, size=16, models=("opencv-telea",), masksets=("mat-large",),
                        samples=0)
    b = make_sample_run(tmp_path / "b", n_images=2, size=16, models=("mean-fill",), masksets=("mat-large",),
                        samples=0)
    out = tmp_path / "site"
    render_site([a, b], out)
    (group,) = list((out / "compare").iterdir())
    page = parse(group / "worst-all-0001.html")
    assert len(page.items) == 2
    srcs = [i["src"] or "" for i in page.imgs]
    assert sum("opencv-telea" in s for s in srcs) == 2 and sum("mean-fill" in s for s in srcs) == 2
    for s in srcs:
        assert (group / s).resolve().is_file()


def test_max_images_keeps_the_worst(sample: tuple[Path, Path], tmp_path: Path) -> None:
    run, full = sample
    out = tmp_path / "site"
    render_site([run], out, per_page=PER_PAGE, max_images=2)
    g_full, g = _group_dir(full, "mat-large"), _group_dir(out, "mat-large")
    assert parse(g / "worst-all-0001.html").items == parse(g_full / "worst-all-0001.html").items[:2]
    assert not (g / "worst-all-0002.html").exists()
    assert "(worst 2 only)" in (out / "index.html").read_text()


def test_bin_plot_counts_images_and_names_hidden_bins(tmp_path: Path) -> None:
    """Runner bins: metrics only where a bin holds >= 2 images. The plot shows every bin's count and says which
    bins it leaves out (they used to vanish, so a mask set could read as a single dot)."""
    from matbench.reports.leaderboard import load_entries
    from matbench.reports.plots import bin_counts, plot_bins

    d = tmp_path / "r"
    rec = synthetic_record("places", "mat-large", "mat", {"fid": 1.0}, n=6)
    lp = synthetic_record("places", "mat-large", "mat", {"lpips": 0.3}).metrics["lpips"]
    rec.bins = [{"lo": 0.0, "hi": 0.1, "label": "0-10%", "n": 0, "metrics": {}},
                {"lo": 0.1, "hi": 0.2, "label": "10-20%", "n": 1, "metrics": {}},
                {"lo": 0.2, "hi": 0.3, "label": "20-30%", "n": 4, "metrics": {"lpips": lp}},
                {"lo": 0.3, "hi": 0.4, "label": "30-40%", "n": 1, "metrics": {}}]
    write_job(d, rec)
    (e,) = load_entries([d])
    assert bin_counts(e) == [(0.0, 0.1, 0), (0.1, 0.2, 1), (0.2, 0.3, 4), (0.3, 0.4, 1)]
    (p,) = plot_bins([e], tmp_path / "site")
    assert "Images per bin: 10–20% 1, 20–30% 4, 30–40% 1." in p.caption
    # The reason once, then the bins (it used to be repeated after every bin).
    assert "Not plotted (fewer than 2 images, no metric computed): 10–20% (n=1), 30–40% (n=1)." in p.caption
    assert p.caption.count("fewer than 2 images") == 1
    assert (tmp_path / "site" / p.png).stat().st_size > 1000
    render_site([d], tmp_path / "site2")
    assert "Not plotted (fewer than 2 images, no metric computed): 10–20% (n=1)" in (
        tmp_path / "site2" / "index.html").read_text()


def test_per_image_csv_with_a_non_number_names_file_row_and_column(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    from matbench.reports.sample import synthetic_record, write_job

    from matbench.entries import load_entries

    d = tmp_path / "r"
    write_job(d, synthetic_record("places", "mat-large", "mat", {"fid": 3.0}))
    csv = next(d.rglob("metrics.json")).parent / "per_image.csv"
    csv.write_text("id,psnr,note\na,20.5,fine\nb,oops,fine\nc,-3,fine\n")  # a text column stays allowed
    df, col = pd.read_csv(csv, dtype={"id": str}), "psnr"
    with pytest.raises(Exception) as e:
        load_entries([d])[0].per_image()
    assert type(e.value).__name__ == "InputError"
    assert str(e.value) == f"{csv}: row 3 (id {df['id'][1]}), column '{col}': 'oops' is not a number"
    assert main(["report", str(d), "-o", str(tmp_path / "site")]) == 2
    assert str(csv) in capsys.readouterr().err


def test_odd_ids_are_url_encoded_and_symlinks_out_of_the_run_are_left_out(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    import urllib.parse

    run = make_sample_run(tmp_path / "run", n_images=3, size=16, models=("mean-fill",), masksets=("mat-large",),
                          samples=0)
    csvs = sorted(run.rglob("per_image.csv"))
    old = pd.read_csv(csvs[0], dtype={"id": str})["id"][0]
    new = "a#b?c%d"  # each cuts or changes a raw link
    for p in sorted(run.rglob(f"{old}*.png")):
        p.rename(p.with_name(p.name.replace(old, new, 1)))
    for c in csvs:
        c.write_text(c.read_text().replace(old, new))
    # An output that is a link to a file outside the run folder must not be carried into the report.
    secret = tmp_path / "secret.png"
    victim = sorted(p for p in (run / "outputs").rglob("*.png") if new not in p.name)[0]
    secret.write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(secret)
    out = tmp_path / "site"
    assert main(["report", str(run), "-o", str(out)]) == 0
    srcs = [img["src"] or "" for page in sorted((out / "compare").rglob("*.html")) for img in parse(page).imgs]
    odd = [s for s in srcs if "a%23b%3Fc%25d" in s]
    assert len(set(odd)) == 3  # input overlay, output, ground truth (on every order/filter page)
    page = next((out / "compare").rglob("*.html"))
    for s in odd:
        assert (page.parent / urllib.parse.unquote(s)).resolve().is_file()
    assert not any(new in s for s in srcs)
    assert not any(victim.name == Path(s).name and "outputs" in s for s in srcs)
    assert not [p for p in out.rglob("*") if p.is_symlink()]
    assert any("left out of the report" in r.getMessage() and str(victim) in r.getMessage() for r in caplog.records)


def test_per_image_csv_text_cells_cannot_be_formulas_and_round_trip(tmp_path: Path) -> None:
    from matbench.entries import load_entries
    from matbench.evaluate.outputs import write_outputs

    rec = synthetic_record("places", "mat-large", "mat", {"fid": 3.0})
    ids = ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "'quoted", "plain"]
    df = pd.DataFrame({"id": ids, "psnr": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, -7.25]})
    write_outputs(tmp_path / "r", rec, df)
    raw = (tmp_path / "r" / "per_image.csv").read_text().splitlines()
    # every text cell is neutralized with one leading quote; the negative numbers stay numbers
    assert raw[1:] == ["'=HYPERLINK(\"\"x\"\")\",-1.5".replace("'=", "\"'=", 1), "'+1,2", "'-2,-3", "'@SUM(A1),4",
                       "'\tx,5", "''quoted,6", "plain,-7.25"]
    back = load_entries([tmp_path / "r"])[0].per_image()
    assert list(back["id"]) == ids and list(back["psnr"]) == [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, -7.25]
