"""Results history: appends (also from two processes at once), import, listing, the run/eval hooks and
`matbench check --baseline history:...` with each exit code."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import browser  # noqa: F401  (fixture)
from matbench.reports.sample import synthetic_record, write_job

from matbench.cli import main
from matbench.history import History, parse_baseline, protocol_id, resolve_path
from matbench.io import save_png
from matbench.results import find_records

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp: Path, name: str, fid: float, model: str = "mat", created: str = "2026-01-01T00:00:00+00:00",
         **protocol: object) -> Path:
    rec = synthetic_record("places", "mat-large", model, {"fid": (fid, fid - 0.5, fid + 0.5), "pids": 0.1},
                           **protocol)
    rec.provenance["created"] = created
    write_job(tmp / name, rec)
    return tmp / name


def test_default_path_env_and_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MATBENCH_HISTORY", str(tmp_path / "h.db"))
    assert resolve_path() == tmp_path / "h.db"
    assert resolve_path("x.db") == Path("x.db")
    assert resolve_path(None, disabled=True) is None
    monkeypatch.setenv("MATBENCH_HISTORY", "off")
    assert resolve_path() is None
    monkeypatch.delenv("MATBENCH_HISTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    p = resolve_path()
    assert p is not None and p.parent.parent == tmp_path / "xdg" / "matbench" / "projects" and p.name == "history.db"


def _git_repo(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    (path / "f").write_text("a")
    subprocess.run(["git", "add", "f"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=path, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True).stdout.strip()


def test_default_history_is_one_per_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 25: one file per account let `check --baseline history:last` gate against another project's run."""
    from matbench.history import default_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    _git_repo(tmp_path / "proj-a")
    _git_repo(tmp_path / "proj-b")
    (tmp_path / "proj-a" / "runs" / "deep").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    a, b = default_path(tmp_path / "proj-a"), default_path(tmp_path / "proj-b")
    assert a != b and a.parent.name.startswith("proj-a-") and b.parent.name.startswith("proj-b-")
    assert default_path(tmp_path / "proj-a" / "runs" / "deep") == a  # anywhere in the checkout: its git top-level
    assert default_path(tmp_path / "plain") not in (a, b)  # outside git: keyed by the directory
    monkeypatch.delenv("MATBENCH_HISTORY")
    monkeypatch.chdir(tmp_path / "proj-b")
    assert resolve_path() == b


def test_import_stores_the_commit_a_live_append_stored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    head = _git_repo(repo)
    res, gt = repo / "res", repo / "gt"
    rng = np.random.default_rng(0)
    for i in range(2):
        save_png(gt / f"im{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        save_png(res / f"im{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    monkeypatch.chdir(repo)
    live, imported = tmp_path / "live.db", tmp_path / "imported.db"
    assert main(["eval", "--results", "res", "--gt", "gt", "--metrics", "psnr", "--bootstrap", "0", "--device",
                 "cpu", "-o", str(tmp_path / "out"), "--history", str(live)]) == 0
    monkeypatch.chdir(tmp_path)  # imported later, from outside the checkout
    assert main(["history", "import", str(tmp_path / "out"), "--history", str(imported)]) == 0
    (a,), (b,) = History(live).rows(), History(imported).rows()
    assert a.git_commit == b.git_commit == head and b.source == "import"


def test_the_test_suite_never_writes_the_users_history() -> None:
    # conftest's autouse fixture points every test (and its subprocesses) at a temporary file
    p = resolve_path()
    assert p is not None and Path(os.environ["MATBENCH_HISTORY"]) == p
    assert ".local/share" not in str(p)


def test_append_is_idempotent_and_keeps_record_git_and_metrics(tmp_path: Path) -> None:
    run = _run(tmp_path, "r1", 10.0)
    h = History(tmp_path / "h.db")
    recs = find_records([run])
    assert h.append(recs, "run", git=("abc123", True)) == 1
    assert h.append(recs, "run", git=("abc123", True)) == 0  # same record again: nothing new
    (row,) = h.rows()
    assert (row.model, row.dataset, row.maskset, row.resolution, row.git_commit, row.git_dirty) == \
        ("mat", "places", "mat-large", 512, "abc123", True)
    assert row.record.metrics["fid"].ci_low == 9.5 and row.record.metrics["fid"].ci_high == 10.5
    assert row.protocol_id == protocol_id(recs[0])
    con = sqlite3.connect(tmp_path / "h.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT name, value FROM metrics ORDER BY name").fetchall() == [("fid", 10.0), ("pids", 0.1)]
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    con.commit()
    from matbench.errors import InputError

    with pytest.raises(InputError, match="history schema 99"):
        h.rows()


def test_git_state_of_the_working_directory(tmp_path: Path) -> None:
    from matbench.history import git_state

    assert git_state(tmp_path) == (None, None)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    (tmp_path / "f").write_text("a")
    subprocess.run(["git", "add", "f"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=tmp_path, check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "f").write_text("b")
    assert git_state(tmp_path) == (head, True)


WRITER = """
import sys
from matbench.history import History
from matbench.reports.sample import synthetic_record
h = History(sys.argv[1])
for i in range(int(sys.argv[3])):
    r = synthetic_record("places", "mat-large", sys.argv[2], {"fid": float(i)})
    h.append([r], "run", git=(None, None))
"""


def test_concurrent_appends_from_two_processes(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    n = 40
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), model, str(n)], env=env,
                              stderr=subprocess.PIPE, text=True) for model in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    rows = History(db).rows()
    assert len(rows) == 2 * n
    for model in ("a", "b"):
        assert sorted(r.record.metrics["fid"].value for r in rows if r.model == model) == [float(i) for i in range(n)]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 2 * n


def test_import_list_and_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(tmp_path, "a", 10.0, created="2026-01-01T00:00:00+00:00")
    b = _run(tmp_path, "b", 9.0, model="lama", created="2026-01-02T00:00:00+00:00")
    db = tmp_path / "h.db"
    assert main(["history", "import", str(a), str(b), "--history", str(db)]) == 0
    assert "imported 2 new record(s) of 2" in capsys.readouterr().out
    assert main(["history", "--history", str(db), "import", str(a)]) == 0  # option before the subcommand
    assert "imported 0 new record(s) of 1" in capsys.readouterr().out
    assert main(["history", "--history", str(db), "--format", "json", "--metric", "fid"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["value"], r["source"]) for r in rows] == [("mat", 10.0, "import"), ("lama", 9.0, "import")]
    assert main(["history", "--history", str(db), "--format", "csv", "--model", "lama"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("id,created,model") and len(lines) == 3  # fid and pids of lama
    pid = rows[0]["protocol"]
    assert main(["history", "--history", str(db), "--protocol", pid[:6], "--metric", "pids"]) == 0
    out = capsys.readouterr().out
    assert "mat" in out and "lama" in out and "places/mat-large@512" in out
    assert main(["history", "--history", str(db), "--protocol", "nope"]) == 0
    assert "no records" in capsys.readouterr().out


def test_parse_baseline() -> None:
    assert parse_baseline("runs/x") is None
    assert parse_baseline("history:last") == ("last", None)
    assert parse_baseline("history:best") == ("best", None)
    assert parse_baseline("history:best:3") == ("best", 3)
    from matbench.errors import SpecError

    for bad in ("history:best:0", "history:best:x", "history:first", "history:last:2"):
        with pytest.raises(SpecError):
            parse_baseline(bad)


def _check(cur: Path, baseline: str, db: Path) -> int:
    return main(["check", str(cur), "--baseline", baseline, "--history", str(db)])


def test_check_against_history_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.db"
    h = History(db)
    for k, (fid, day) in enumerate([(10.0, 1), (9.0, 2), (11.0, 3)]):
        h.append(find_records([_run(tmp_path, f"old{k}", fid, created=f"2026-01-0{day}T00:00:00+00:00")]), "run",
                 git=(f"c{k}", False))
    ok = _run(tmp_path, "ok", 11.03, created="2026-01-04T00:00:00+00:00")
    # the current run is already in the history (run appends before the check): it must not gate itself
    h.append(find_records([ok]), "run", git=("c3", False))
    assert _check(ok, "history:last", db) == 0          # 11.03 vs last 11.0: within fid tolerance 0.05
    assert _check(ok, "history:best:1", db) == 0        # best of the last one = 11.0
    assert _check(ok, "history:best:2", db) == 1        # best of 9.0, 11.0 = 9.0 -> regression
    assert _check(ok, "history:best", db) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "9.0000 -> 11.0300" in out
    worse = _run(tmp_path, "worse", 12.0)
    assert _check(worse, "history:last", db) == 1
    other = _run(tmp_path, "other", 11.0, n_images=50)   # a different image count: not comparable
    assert _check(other, "history:last", db) == 2
    assert "protocol field 'n_images' differs" in capsys.readouterr().out
    smoke = synthetic_record("places", "mat-large", "mat", {"fid": 11.0}, smoke=True)
    write_job(tmp_path / "smoke", smoke)
    assert _check(tmp_path / "smoke", "history:last", db) == 2
    new = _run(tmp_path, "new", 1.0, model="brand-new")
    assert _check(new, "history:last", db) == 2          # nothing to compare with
    assert "no job of the current run has an earlier record" in capsys.readouterr().out
    assert _check(ok, "history:best:0", db) == 2         # bad spec: one-line error, exit 2
    capsys.readouterr()
    assert main(["check", str(ok), "--baseline", "history:best:2", "--history", str(db), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["status"] == "regression" and "best of 2 history record(s)" in res["notes"][0]
    fid = next(c for c in res["comparisons"] if c["metric"] == "fid")
    assert (fid["baseline"], fid["current"], fid["status"]) == (9.0, 11.03, "regressed")


def _tiny_folders(tmp: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    for i in range(3):
        gt = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        hole = np.zeros((32, 32), bool)
        hole[8:20, 8:20] = True
        res = gt.copy()
        res[hole] = 128
        save_png(tmp / "gt" / f"{i}.png", gt)
        save_png(tmp / "res" / f"{i}.png", res)
        save_png(tmp / "masks" / f"{i}.png", (~hole).astype(np.uint8) * 255)
    return tmp / "res", tmp / "gt", tmp / "masks"


def test_eval_appends_and_records_its_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res, gt, masks = _tiny_folders(tmp_path)
    db = tmp_path / "h.db"
    args = ["eval", "--results", str(res), "--gt", str(gt), "--masks", str(masks), "--mask-polarity", "known=255",
            "--metrics", "psnr,l1", "--bootstrap", "0", "--workers", "0", "--device", "cpu", "--no-cache",
            "--history", str(db)]
    assert main(args + ["-o", str(tmp_path / "out")]) == 0
    inputs = json.loads((tmp_path / "out" / "inputs.json").read_text())
    assert inputs == {"schema": "matbench.eval-inputs/1", "results": str(res.resolve()), "gt": str(gt.resolve()),
                      "masks": str(masks.resolve()), "mask_polarity": "known=255"}
    (row,) = History(db).rows()
    assert row.source == "eval" and row.model == "res" and set(row.record.metrics) == {"psnr", "l1"}
    assert main(args + ["-o", str(tmp_path / "out2"), "--no-history"]) == 0
    assert len(History(db).rows()) == 1


def test_run_appends_after_it_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matbench.commands.run as run_cmd

    out = tmp_path / "run"
    spec = types.SimpleNamespace(output=out, device="cpu", batch_size=1, smoke=False)
    monkeypatch.setattr(run_cmd, "load_spec", lambda path, output=None: spec)  # the names the command imported

    def fake_run(spec_: object, options: object) -> dict:
        write_job(out, synthetic_record("places", "mat-large", "mat", {"fid": 3.0}))
        return {"summary": {"places-mat-large-mat-512": {"fid": 3.0}}}

    monkeypatch.setattr(run_cmd, "run", fake_run)
    assert main(["run", "spec.toml"]) == 0               # default history = $MATBENCH_HISTORY (conftest)
    (row,) = History(os.environ["MATBENCH_HISTORY"]).rows()
    assert row.source == "run" and row.record.metrics["fid"].value == 3.0
    assert main(["run", "spec.toml"]) == 0               # rerun reusing finished jobs: nothing new
    assert len(History(os.environ["MATBENCH_HISTORY"]).rows()) == 1
    from matbench.history import git_state

    assert (row.git_commit, row.git_dirty) == git_state()  # the directory the command ran from
    out2 = tmp_path / "elsewhere.db"
    write_job(out, synthetic_record("places", "mat-large", "lama", {"fid": 4.0}))
    assert main(["run", "spec.toml", "--no-history", "--history", str(out2)]) == 0
    assert not out2.exists() and len(History(os.environ["MATBENCH_HISTORY"]).rows()) == 1
    assert main(["run", "spec.toml", "--history", str(out2)]) == 0
    assert len(History(out2).rows()) == 2


def _history_for_trend(tmp: Path) -> Path:
    """Five commits of two models (synthetic numbers, marked smoke), then a protocol change."""
    db = tmp / "h.db"
    h = History(db)
    for k in range(5):
        for model, base in (("mat", 3.0), ("lama", 3.6)):
            fid = base - 0.1 * k + (0.15 if k == 3 and model == "mat" else 0.0)
            pids = (0.1 if model == "mat" else 0.07) + 0.01 * k
            rec = synthetic_record("places", "mat-large", model, {"fid": (fid, fid - 0.2, fid + 0.2),
                                                                  "pids": (pids, pids - 0.01, pids + 0.01)}, smoke=True)
            rec.provenance["created"] = f"2026-03-{k + 1:02d}T12:00:00+00:00"
            h.append([rec], "run", git=(f"{k:x}" * 10, k == 4))
    rec = synthetic_record("places", "mat-large", "mat", {"fid": 2.0}, smoke=True, n_images=50)
    rec.provenance["created"] = "2026-03-06T12:00:00+00:00"
    h.append([rec], "run", git=("f" * 40, False))
    return db


def _analysis() -> dict:
    """A hand-written `study analyze` result (two models)."""
    return {"schema": "matbench.study-analysis/1", "study": "s/study.json", "study_id": "abc", "title": "t",
                "min_attention": 1.0, "prior": 0.0, "bootstrap": {"resamples": 10, "seed": 0,
                                                                 "skipped_unidentifiable": 0},
                "n_choices": 4, "participants": [{"participant": "p1", "file": "f", "responses": 5,
                                                  "attention_checks": 1, "attention_passed": 1,
                                                  "attention_rate": 1.0, "excluded": False, "median_rt_ms": 900.0}],
                "excluded": [], "pairs": [{"a": "x", "b": "y", "n": 4, "a_wins": 3, "b_wins": 1, "a_rate": 0.75,
                                           "a_rate_ci": [0.3, 0.95]}],
                "ranking": [{"rank": 1, "system": "x", "score": 0.55, "ci_low": 0.1, "ci_high": 1.0, "wins": 3,
                             "comparisons": 4, "smoke": False},
                            {"rank": 2, "system": "y", "score": -0.55, "ci_low": -1.0, "ci_high": -0.1, "wins": 1,
                             "comparisons": 4, "smoke": False}],
                "metric_agreement": [{"metric": "lpips", "agree": 3, "n": 4, "ties": 0, "rate": 0.75,
                                      "ci": [0.3, 0.95]}], "smoke": False}


@pytest.fixture(scope="module")
def trend_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(site, run, analysis.json): a report with --history and --study, rendered once for the tests below."""
    from matbench.reports.sample import make_sample_run

    tmp = tmp_path_factory.mktemp("trend")
    db = _history_for_trend(tmp)
    run = make_sample_run(tmp / "run", n_images=3, size=32, masksets=("mat-large",), samples=0)
    (tmp / "analysis.json").write_text(json.dumps(_analysis()))
    site = tmp / "site"
    assert main(["report", str(run), "-o", str(site), "--history", str(db), "--study",
                 str(tmp / "analysis.json")]) == 0
    return site, run, tmp / "analysis.json"


def test_report_trend_and_study_pages(trend_site: tuple[Path, Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    site, run, analysis = trend_site
    index = (site / "index.html").read_text()
    assert 'href="trend.html"' in index and 'href="study.html"' in index
    trend = (site / "trend.html").read_text()
    assert trend.count("protocol ") >= 2                 # the n_images change starts a second block
    assert "44444444+" not in trend and "4444444+" in trend  # dirty commit marked with +
    assert "SMOKE" in trend
    pngs = sorted(p.name for p in (site / "plots").glob("trend-*.png"))
    assert len(pngs) == 3                                 # fid + pids, then fid of the new protocol
    study = (site / "study.html").read_text()
    assert "Bradley–Terry" in study and "75.0 %" in study
    # `matbench table --study` appends the study tables
    assert main(["table", str(run), "--study", str(analysis)]) == 0
    out = capsys.readouterr().out
    assert "| 1 | x | 0.55 | [0.10, 1.00] | 3/4 |" in out and "| LPIPS | 75.0 |" in out
    assert main(["report", str(run), "-o", str(tmp_path / "s2"), "--history", str(tmp_path / "none.db")]) == 2
    assert not (tmp_path / "s2").exists()  # refused before anything was rendered


@pytest.mark.browser
def test_trend_page_in_chromium(trend_site: tuple[Path, Path, Path], tmp_path: Path,
                                browser: object) -> None:  # noqa: F811
    site = trend_site[0]
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((site / "index.html").resolve().as_uri())
    page.click("header nav a[href='trend.html']")
    page.wait_for_load_state("load")
    assert page.url.endswith("trend.html")
    for img in page.query_selector_all("img"):
        img.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "trend.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    page.click("header nav a[href='study.html']")
    page.wait_for_load_state("load")
    assert page.locator("#study table").count() == 4 and page.locator("header nav a[href='trend.html']").count() == 1
    assert errors == []
    if os.environ.get("MATBENCH_UPDATE_SCREENSHOT") == "1":
        import shutil

        shutil.copyfile(shot, ROOT / "docs" / "img" / "trend.png")


def test_bad_history_row_names_the_row_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.db"
    History(db).append(find_records([_run(tmp_path, "r1", 10.0), _run(tmp_path, "r2", 11.0, model="lama")]), "run",
                       git=(None, None))
    con = sqlite3.connect(db)
    con.execute("UPDATE records SET record = '{not json' WHERE model = 'mat'")
    con.execute("UPDATE records SET record = ? WHERE model = 'lama'", (json.dumps({"schema": "other/2"}),))
    con.commit()
    con.close()
    ids = {m: i for i, m in sqlite3.connect(db).execute("SELECT id, model FROM records")}
    assert main(["history", "--history", str(db), "--model", "mat"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and f"{db}: history row #{ids['mat']}: the stored record is not valid JSON" in err
    assert main(["history", "--history", str(db), "--model", "lama"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{db}: history row #{ids['lama']}: not a matbench result (schema 'other/2')" in err and "r2" not in err


def test_in_memory_history_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # SQLite reads a 'file:' name as a URI even without uri=True: mode=memory stored nothing and said "1 new record".
    monkeypatch.chdir(tmp_path)
    res, gt, masks = _tiny_folders(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["eval", str(res), str(gt), "--masks", str(masks), "-o", str(tmp_path / "e"),
              "--history", "file:h.db?mode=memory"])
    assert e.value.code == 2 and "not an SQLite URI or in-memory" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    monkeypatch.setenv("MATBENCH_HISTORY", ":memory:")
    assert main(["history"]) == 2
    assert "not an SQLite URI or in-memory" in capsys.readouterr().err


def test_history_is_read_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A read-only history (a CI cache, another user's file) must be readable: reading opens mode=ro / immutable,
    # never journal_mode=WAL on the file. The stand-in for "read-only" (root ignores chmod): no read may open the
    # database for writing.
    db = tmp_path / "h.db"
    History(db).append(find_records([_run(tmp_path, "r1", 10.0)]), "run", git=(None, None))
    real = sqlite3.connect
    uris: list[str] = []

    def spy(name: object, *a: object, **k: object) -> sqlite3.Connection:
        uris.append(str(name))
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", spy)
    os.chmod(db, 0o444)
    rows = History(db).rows()
    assert [r.record.metrics["fid"].value for r in rows] == [10.0]
    assert uris and all("mode=ro" in u or "immutable=1" in u for u in uris)
