"""The HTML report in a real headless Chromium (Debian's chromium driven by Playwright).

Loads the site from file://, requires no console errors, checks that clicking a header sorts the
leaderboard and that every <img> (lazy ones scrolled into view) decodes. A screenshot of the
leaderboard is kept as a test artifact: under pytest's tmp dir, in $MATBENCH_TEST_ARTIFACTS if set, and
copied to docs/img/report.png when MATBENCH_UPDATE_SCREENSHOT=1.

Chromium is installed by scripts/test-deps.sh (`apt-get install chromium`); never `playwright install`.
Without it these tests skip, unless MATBENCH_REQUIRE_BROWSER=1 (then they fail).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.render import render_site
from reports.sample import make_sample_run

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MATBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; it is in the test extra)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (run scripts/test-deps.sh)"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    run = make_sample_run(base / "run", n_images=7, size=48)
    out = base / "site"
    render_site([run], out, per_page=4, title="matbench sample report")
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    reason = _unavailable()
    if reason:
        if os.environ.get("MATBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, browser: object, width: int = 1400) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"requestfailed: {r.url}"))

    def goto(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def check_images(self) -> int:
        """Scroll every <img> into view (so lazy ones load), then require each to have decoded."""
        imgs = self.page.query_selector_all("img")
        for img in imgs:
            img.scroll_into_view_if_needed()
        self.page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15000)
        bad = self.page.evaluate(
            "Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src'))")
        assert bad == [], f"images that did not load: {bad}"
        return len(imgs)


def test_index_loads_sorts_and_screenshots(site: Path, browser: object, tmp_path: Path) -> None:
    pg = Page(browser)
    pg.goto(site / "index.html")
    page = pg.page
    assert page.locator("#smoke-banner").is_visible()
    table = page.locator("table.lb").first

    def models() -> list[str]:
        return table.locator("tbody tr td:first-child").evaluate_all(
            "tds => tds.map(td => td.getAttribute('data-v'))")

    def column(i: int) -> list[float | None]:
        return table.locator(f"tbody tr td:nth-child({i + 1})").evaluate_all(
            "tds => tds.map(td => td.getAttribute('data-v') === '' ? null : parseFloat(td.getAttribute('data-v')))")

    # Screenshot of the unsorted leaderboard (header, smoke banner, first table) before any click.
    shot = tmp_path / "report.png"
    box = page.locator("#leaderboard table.lb").first.bounding_box()
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1400, "height": box["y"] + box["height"] + 16})
    assert shot.stat().st_size > 10_000

    before = models()
    assert before == sorted(before) and len(before) == 3
    # Sort by the first FID column (lower is better -> ascending on the first click), then reverse.
    fid_th = table.locator("th.sortable", has_text="FID").first
    idx = int(fid_th.get_attribute("data-col"))
    fid_th.click()
    vals = column(idx)
    assert vals == sorted(vals) and "sorted-asc" in (fid_th.get_attribute("class") or "")
    asc_models = models()
    fid_th.click()
    assert column(idx) == sorted(vals, reverse=True)
    assert models() == list(reversed(asc_models))
    # Higher-is-better column: best (largest) first on the first click.
    pids_th = table.locator("th.sortable", has_text="P-IDS").first
    pids_th.click()
    pv = column(int(pids_th.get_attribute("data-col")))
    assert pv == sorted(pv, reverse=True)
    # The sort really moved rows: the FID order differs from the alphabetical one for the sample run.
    assert asc_models != before

    assert pg.check_images() >= 4  # plots
    if os.environ.get("MATBENCH_TEST_ARTIFACTS"):
        dst = Path(os.environ["MATBENCH_TEST_ARTIFACTS"])
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dst / "report.png")
    if os.environ.get("MATBENCH_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "img" / "report.png")
    assert pg.errors == []


def test_comparison_pages_load_images_and_paginate(site: Path, browser: object) -> None:
    pg = Page(browser)
    pg.goto(site / "index.html")
    pg.page.locator("#compare a").first.click()
    pg.page.wait_for_load_state("load")
    assert pg.page.url.endswith("worst-all-0001.html")
    assert pg.page.locator(".item").count() == 4
    lazy = pg.page.evaluate("Array.from(document.images).every(i => i.loading === 'lazy')")
    assert lazy
    n = pg.check_images()
    assert n >= 4 * 5  # 4 rows x (input, 3 models, GT) plus samples
    # Next page holds the remaining 3 images; its images load too.
    pg.page.locator("a[rel=next]").first.click()
    pg.page.wait_for_load_state("load")
    assert pg.page.url.endswith("worst-all-0002.html") and pg.page.locator(".item").count() == 3
    pg.check_images()
    # A hole-ratio filter page loads.
    pg.page.locator(".controls a", has_text="–").first.click()
    pg.page.wait_for_load_state("load")
    assert "-b" in pg.page.url
    pg.check_images()
    assert pg.errors == []


@pytest.mark.slow
def test_report_of_a_real_runner_run(tmp_path: Path, browser: object) -> None:
    """A tiny real `matbench run` (weight-free models, smoke metric networks) rendered and opened in Chromium."""
    from matbench import runner
    from matbench.cli import main
    from matbench.data.demo import demo_images
    from matbench.spec import load_spec

    demo_images(tmp_path / "data", n=2)
    (tmp_path / "spec.toml").write_text(
        'name = "tiny"\noutput = "run"\nbatch_size = 2\ndevice = "cpu"\nresolutions = [64]\n'
        'metrics = ["fid", "pids", "uids", "lpips", "psnr", "ssim", "l1"]\nsmoke = true\nn_bootstrap = 10\n'
        '[[datasets]]\npreset = "folder"\npath = "data"\n[[masksets]]\nkind = "mat-large"\n'
        '[[models]]\nname = "opencv-telea"\n[[models]]\nname = "mean-fill"\n')
    runner.run(load_spec(tmp_path / "spec.toml"), runner.RunOptions(progress=False))
    run = tmp_path / "run"
    site = tmp_path / "site"
    assert main(["report", str(run), "-o", str(site)]) == 0
    assert main(["check", str(run), "--baseline", str(run)]) == 0

    pg = Page(browser)
    pg.goto(site / "index.html")
    assert pg.page.locator("#smoke-banner").is_visible()  # smoke metric networks -> banner
    rows = pg.page.locator("table.lb tbody tr td:first-child").evaluate_all(
        "tds => tds.map(td => td.getAttribute('data-v'))")
    assert rows == ["mean-fill", "opencv-telea"]
    assert pg.page.locator("table.lb th.sortable", has_text="FID").count() == 1
    pg.check_images()
    pg.page.locator("#compare a").first.click()
    pg.page.wait_for_load_state("load")
    assert pg.page.locator(".item").count() == 2
    assert pg.check_images() == 2 * 4  # input+hole, two outputs, ground truth
    assert pg.errors == []
