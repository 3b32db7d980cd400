"""The HTML report in a real headless Chromium (Debian's chromium driven by Playwright).

Loads the site from file://, requires no console errors, checks that clicking a header sorts the
leaderboard, that the leaderboard fits 1400 px (wrapped per mask set, column chooser), that the full-size
viewer of the comparison pages flips between outputs and ground truth at full resolution in sync, and that
every <img> (lazy ones scrolled into view) decodes. Screenshots (leaderboard, comparison page, viewer) are
kept under pytest's tmp dir, in $MATBENCH_TEST_ARTIFACTS if set, and copied to docs/img/ when
MATBENCH_UPDATE_SCREENSHOT=1.

Chromium is installed by scripts/test-deps.sh (`apt-get install chromium`); never `playwright install`.
Without it these tests skip, unless MATBENCH_REQUIRE_BROWSER=1 (then they fail).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from matbench.reports.render import render_site
from matbench.reports.sample import make_sample_run
from spec_helpers import write_spec

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MATBENCH_CHROMIUM", "/usr/bin/chromium")
SIZE = 64  # sample images (px): the viewer must show them at their real size or an integer multiple
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
    run = make_sample_run(base / "run", n_images=7, size=SIZE)
    out = base / "site"
    render_site([run], out, per_page=4, title="matbench sample report")
    return out


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    """One Playwright per module: a second sync_playwright() while one runs is refused."""
    reason = _unavailable()
    if reason:
        if os.environ.get("MATBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: object) -> Iterator[object]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,  # type: ignore[attr-defined]
                                   headless=True)
    yield b
    b.close()


def keep_screenshot(shot: Path, name: str) -> None:
    if os.environ.get("MATBENCH_TEST_ARTIFACTS"):
        dst = Path(os.environ["MATBENCH_TEST_ARTIFACTS"])
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dst / name)
    if os.environ.get("MATBENCH_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "img" / name)


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
    table = page.locator("table.lb:visible").first

    def models() -> list[str]:
        return table.locator("tbody tr td:first-child").evaluate_all(
            "tds => tds.map(td => td.getAttribute('data-v'))")

    def column(i: int) -> list[float | None]:
        return table.locator(f"tbody tr td:nth-child({i + 1})").evaluate_all(
            "tds => tds.map(td => td.getAttribute('data-v') === '' ? null : parseFloat(td.getAttribute('data-v')))")

    # Screenshot of the unsorted leaderboard (header, smoke banner, first table) before any click.
    shot = tmp_path / "report.png"
    box = page.locator("#leaderboard table.lb:visible").last.bounding_box()
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1400, "height": box["y"] + box["height"] + 40})
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

    # Every table of the leaderboard (the parts it is wrapped into) follows the same row order.
    orders = page.locator("table.lb").evaluate_all(
        "ts => ts.map(t => Array.from(t.tBodies[0].rows).map(r => r.getAttribute('data-row')).join(','))")
    assert len(set(orders)) == 1 and len(orders) == 7  # whole, 2 per mask set, 4 chunks of <= 8 metrics

    assert pg.check_images() >= 4  # plots
    keep_screenshot(shot, "report.png")
    assert pg.errors == []


VISIBLE_KEYS = """() => Array.from(document.querySelectorAll('table.lb')).filter(t => t.offsetParent !== null)
  .flatMap(t => Array.from(t.querySelectorAll('th.sortable[data-m]')).filter(h => h.offsetParent !== null)
  .map(h => h.getAttribute('data-key')))"""


def test_leaderboard_fits_the_page(site: Path, browser: object) -> None:
    """2 mask sets x 10 metrics: at 1400 px no horizontal overflow, each mask set heads one group, every column
    still shown; wider windows get the whole table; the column chooser hides metrics everywhere."""
    pg = Page(browser, width=1400)
    pg.goto(site / "index.html")
    page = pg.page
    all_keys = page.locator("table.lb-all th.sortable[data-m]").evaluate_all(
        "hs => hs.map(h => h.getAttribute('data-key'))")
    assert len(all_keys) >= 19
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    visible = page.locator("table.lb:visible")
    assert visible.count() == 2  # wrapped: one table per mask set
    for i in range(visible.count()):
        t = visible.nth(i)
        assert t.evaluate("t => t.getBoundingClientRect().right") <= 1400
        assert t.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")
        groups = t.locator("tr.group th[data-g]").evaluate_all("hs => hs.map(h => h.textContent.split(' ')[0])")
        assert groups == [["mat-small"], ["mat-large"]][i]
    assert sorted(page.evaluate(VISIBLE_KEYS)) == sorted(all_keys)  # nothing dropped to make it fit
    assert page.locator(".lb-wrapnote").is_visible()

    # A wide window shows the whole table: one header row naming each mask set once.
    page.set_viewport_size({"width": 2600, "height": 900})
    page.wait_for_timeout(300)  # the resize handler is debounced
    assert page.locator("table.lb:visible").count() == 1
    assert page.locator("table.lb-all").is_visible()
    assert page.locator("table.lb-all tr.group th[data-g]").evaluate_all(
        "hs => hs.map(h => h.textContent.split(' ')[0])") == ["mat-small", "mat-large"]

    # Column chooser: keep FID / P-IDS / U-IDS; the whole table then fits 1400 px again.
    page.set_viewport_size({"width": 1400, "height": 900})
    page.wait_for_timeout(300)
    page.locator("details.cols summary").first.click()
    for cb in page.locator(".cols input[data-m]").all():
        if cb.get_attribute("data-m") not in ("fid", "pids", "uids"):
            cb.uncheck()
    assert page.locator("table.lb:visible").count() == 1 and page.locator("table.lb-all").is_visible()
    assert sorted(page.evaluate(VISIBLE_KEYS)) == sorted(k for k in all_keys if k.split("|")[1] in
                                                         ("fid", "pids", "uids"))
    assert page.locator("table.lb-all tr.group th[data-g]").evaluate_all("hs => hs.map(h => h.colSpan)") == [3, 3]
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    assert pg.errors == []


@pytest.fixture(scope="module")
def scrollbar_browser(playwright: object) -> Iterator[object]:
    """Chromium as a desktop draws it: Playwright hides scrollbars by default (--hide-scrollbars), which is how a
    cut-off leaderboard column looked like the end of the table in screenshots."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,  # type: ignore[attr-defined]
                                   headless=True, ignore_default_args=["--hide-scrollbars"])
    yield b
    b.close()


LAST_COLUMN = """() => Array.from(document.querySelectorAll('#leaderboard table.lb'))
  .filter(t => t.offsetParent !== null).map(t => {
    const box = t.parentElement, over = box.scrollWidth > box.clientWidth + 1;
    box.scrollLeft = box.scrollWidth;  // to the end (as far as it goes)
    const heads = t.querySelectorAll('thead tr:last-child th'), head = heads[heads.length - 1];
    const cells = t.querySelectorAll('tbody tr:last-child td'), cell = cells[cells.length - 1];
    const seen = el => {
      window.scrollTo(0, window.scrollY + el.getBoundingClientRect().top - window.innerHeight / 2);  // rows below
      const r = el.getBoundingClientRect(), x = (r.left + r.right) / 2, y = (r.top + r.bottom) / 2;
      const hit = document.elementFromPoint(x, y);
      const b = box.getBoundingClientRect();
      return r.left >= b.left - 1 && r.right <= b.right + 1 && hit !== null && el.contains(hit); };
    return {over: over, bar: box.offsetHeight - box.clientHeight, color: getComputedStyle(box).scrollbarColor,
            head: seen(head), cell: seen(cell), sticky: getComputedStyle(t.querySelector('tbody td')).position};
  })"""


@pytest.mark.parametrize("width", [800, 1024, 1400])
def test_leaderboard_last_column_is_reachable(site: Path, scrollbar_browser: object, width: int) -> None:
    """At 800, 1024 and 1400 px the page never scrolls sideways; a leaderboard table wider than its box scrolls
    inside it with a scrollbar that is drawn (always, not only on hover), and scrolled to its end shows the last
    column's header and cells, not hidden under the model column that stays in view."""
    pg = Page(scrollbar_browser, width=width)
    pg.goto(site / "index.html")
    page = pg.page
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    tables = page.evaluate(LAST_COLUMN)
    assert tables
    for t in tables:
        assert t["head"] and t["cell"], (width, t)
        assert t["sticky"] == "sticky"
        if t["over"]:
            assert t["bar"] > 0 and t["color"] not in ("", "auto"), (width, t)
    # the 20-column sample wraps to fit at 1024 and 1400; at 800 its 8-metric parts need the scrollbar
    assert any(t["over"] for t in tables) == (width == 800)
    assert pg.errors == []


def test_leaderboard_with_every_metric_fits(tmp_path: Path, browser: object) -> None:
    """Every metric matbench knows (79 with the feature-space ones), on two mask sets, with [lo, hi] intervals (the
    widest cells): at 1400 px split into chunks of one mask set, nothing dropped, no horizontal overflow."""
    from matbench.reports.sample import synthetic_record, write_job

    from matbench.metrics import METRIC_INFO

    d = tmp_path / "run"
    for model in ("mat", "lama", "comodgan-long-name"):
        for ms in ("mat-small", "mat-large"):
            write_job(d, synthetic_record("places", ms, model, {m: (0.2345, 0.1111, 0.2999) for m in METRIC_INFO}))
    render_site([d], tmp_path / "site")
    pg = Page(browser, width=1400)
    pg.goto(tmp_path / "site" / "index.html")
    page = pg.page
    n_cols = page.locator("table.lb-all th.sortable[data-m]").count()
    assert n_cols == 2 * len(METRIC_INFO)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    for t in page.locator("table.lb:visible").all():
        assert t.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")
    assert len(page.evaluate(VISIBLE_KEYS)) == n_cols
    assert pg.errors == []


def test_full_size_viewer_flips_in_sync(site: Path, browser: object, tmp_path: Path) -> None:
    pg = Page(browser, width=1400)
    group = sorted((site / "compare").iterdir())[0]
    pg.goto(group / "worst-all-0001.html")
    page = pg.page
    pg.check_images()
    page.evaluate("window.scrollTo(0, 0)")
    # The cells use the page width: 5 per row (input, 3 models, ground truth) across the content box.
    row = page.locator(".item .row").first
    rb = row.bounding_box()
    cells = row.locator(":scope > .cell > img.full")
    assert cells.count() == 5
    last = cells.nth(4).bounding_box()
    assert last["x"] + last["width"] >= rb["x"] + rb["width"] - 2 and rb["width"] >= 1300
    assert cells.nth(0).bounding_box()["width"] >= 240
    shot = tmp_path / "compare.png"
    page.screenshot(path=str(shot))
    keep_screenshot(shot, "compare.png")

    item = page.locator(".item").first
    seq = item.locator("img.full").evaluate_all("is => is.map(i => i.getAttribute('src'))")
    mains = item.locator(".row > .cell > img.full").evaluate_all("is => is.map(i => i.getAttribute('src'))")
    assert len(seq) == 7 and len(mains) == 5  # + the first model's two pluralistic samples
    viewer, vimg = page.locator("#viewer"), page.locator("#viewer .vimg")

    def state() -> dict:
        return page.evaluate("""() => { const i = document.querySelector('#viewer .vimg'),
            b = document.querySelector('#viewer .vbody');
            return {src: i.getAttribute('src'), nw: i.naturalWidth, w: i.getBoundingClientRect().width,
                    sx: b.scrollLeft, sy: b.scrollTop}; }""")

    def wait_src(src: str) -> dict:
        page.wait_for_function("s => { const i = document.querySelector('#viewer .vimg');"
                               " return i.getAttribute('src') === s && i.complete && i.naturalWidth > 0; }", arg=src)
        return state()

    cells.nth(1).click()  # first model's output
    assert viewer.is_visible()
    st = wait_src(mains[1])
    # Full resolution: the file's own pixels at an integer zoom (the largest that fits, at least 1:1).
    assert st["nw"] == SIZE and st["w"] % SIZE == 0 and st["w"] >= SIZE
    shot = tmp_path / "compare-viewer.png"
    page.screenshot(path=str(shot))
    keep_screenshot(shot, "compare-viewer.png")

    # Zoom in past the window, scroll to a corner region, then flip: same zoom, same region.
    page.set_viewport_size({"width": 900, "height": 700})
    for _ in range(16):
        page.keyboard.press("+")
    page.evaluate("() => { const b = document.querySelector('#viewer .vbody'); b.scrollLeft = 60; "
                  "b.scrollTop = 50; }")
    before = state()
    assert before["w"] == 16 * SIZE and before["sx"] == 60 and before["sy"] == 50
    page.keyboard.press("ArrowRight")
    after = wait_src(mains[2])
    assert (after["w"], after["sx"], after["sy"]) == (before["w"], 60, 50)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert wait_src(seq[0])["sx"] == 60  # the input
    page.keyboard.press("5")
    assert wait_src(mains[4]) == {**after, "src": mains[4]}  # ground truth, same place
    page.keyboard.press("1")
    wait_src(mains[0])
    # h: the opaque hole overlay, in the viewer and on the page.
    opaque = item.locator("img.full").first.get_attribute("data-overlay-opaque")
    page.keyboard.press("h")
    wait_src(opaque)
    page.keyboard.press("h")
    # Down: the next image on the page, same cell (the input).
    page.keyboard.press("ArrowDown")
    nxt = page.locator(".item").nth(1).locator("img.full").first.get_attribute("src")
    wait_src(nxt)
    # s: every cell side by side at the same zoom, full resolution; scrolling one pane scrolls them all.
    page.keyboard.press("s")
    side = page.locator("#viewer .vside")
    assert side.is_visible() and not page.locator("#viewer .vbody").is_visible()
    page.wait_for_function("Array.from(document.querySelectorAll('#viewer .vside img'))"
                           ".every(i => i.complete && i.naturalWidth > 0 && i.style.width)")
    panes = page.evaluate("""() => Array.from(document.querySelectorAll('#viewer .vside img')).map(i =>
        [i.getAttribute('src'), i.naturalWidth, i.getBoundingClientRect().width])""")
    row2 = page.locator(".item").nth(1).locator(".row > .cell > img.full").evaluate_all(
        "is => is.map(i => i.getAttribute('src'))")
    assert [p[0] for p in panes] == row2  # the second image's five cells
    assert {(p[1], p[2]) for p in panes} == {(SIZE, 16 * SIZE)}
    page.evaluate("() => { const s = document.querySelector('#viewer .vside .vscroll'); s.scrollLeft = 40; "
                  "s.scrollTop = 30; }")
    page.wait_for_function("Array.from(document.querySelectorAll('#viewer .vside .vscroll'))"
                           ".every(s => s.scrollLeft === 40 && s.scrollTop === 30)")
    page.keyboard.press("s")
    assert not side.is_visible() and page.locator("#viewer .vbody").is_visible()
    page.keyboard.press("Escape")
    assert not viewer.is_visible()
    # Keyboard only: Tab to an image, Enter opens the viewer on it.
    page.locator(".item").first.locator("img.full").nth(3).focus()
    page.keyboard.press("Enter")
    assert viewer.is_visible()
    wait_src(seq[3])
    assert vimg.count() == 1
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
    write_spec(tmp_path, "spec", name="tiny", output="run", batch_size=2, device="cpu", resolutions=[64],
               metrics=["fid", "pids", "uids", "lpips", "psnr", "ssim", "l1"], n_bootstrap=10,
               datasets=[{"preset": "folder", "path": "data"}],
               models=[{"name": "opencv-telea"}, {"name": "mean-fill"}])
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
    # The runner records that the weight-free models ran for real and only the metric networks were smoke:
    # the smoke label sits on the LPIPS numbers, not on the pictures.
    labels = pg.page.locator(".cell .label").all_inner_texts()
    assert labels and not any("SMOKE" in x for x in labels)
    assert sum("(smoke)" in x for x in labels) == 2 * 2
    assert pg.errors == []
