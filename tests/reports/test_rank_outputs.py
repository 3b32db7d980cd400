"""Rank confidence and robustness as the leaderboard, the tables (md / LaTeX / CSV) and the HTML report show them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from matbench.reports import ranks
from matbench.reports.leaderboard import build_tables, load_entries
from matbench.reports.render import render_site
from matbench.reports.sample import synthetic_record, write_job
from matbench.reports.tables import render
from rank_helpers import write_group

from matbench import ranking as R
from matbench.cli import main
from matbench.comparison import load_side


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a clearly best, b and c exchangeable, on 60 images; LPIPS per image, FID from features."""
    rng = np.random.default_rng(1)  # a draw where the exchangeable pair is not rejected (95 % of draws)
    n, d = 60, 3
    image = rng.normal(0.0, 1.0, n)
    real = rng.normal(size=(n, d))
    lp = {"a": 0.20 + 0.05 * image + rng.normal(0.0, 0.003, n),
          "b": 0.30 + 0.05 * image + rng.normal(0.0, 0.02, n),
          "c": 0.30 + 0.05 * image + rng.normal(0.0, 0.02, n)}
    fakes = {m: real + rng.normal(size=(n, d)) * s for m, s in (("a", 0.1), ("b", 1.0), ("c", 1.0))}
    return write_group(tmp_path_factory.mktemp("ranks") / "run", {m: {"lpips": v} for m, v in lp.items()},
                       real=real, fakes=fakes)


def _expected(run: Path, metric: str) -> R.RankConfidence:
    sides = []
    for m in "abc":
        s = load_side(str(run / "jobs" / f"places-mat-large-{m}-512"))
        s.label = m
        sides.append(s)
    r = R.rank_metrics(sides, [metric])[metric]
    assert isinstance(r, R.RankConfidence)
    return r


def test_leaderboard_shows_rank_confidence_and_robustness(run: Path, capsys: pytest.CaptureFixture) -> None:
    want = _expected(run, "fid")
    assert want.order[0] == "a" and want.separated[0] is True and want.separated[1] is False
    assert main(["leaderboard", str(run), "--metrics", "fid,lpips", "--robustness"]) == 0
    out = capsys.readouterr().out
    assert "| # | Model | n | P(#1) | rank | FID↓ | LPIPS↓ | Run |" in out
    assert f"| 1 | a ‡ | 60 | {want.p_first[0]:.2f} | [1, 1] |" in out
    assert f"Not separated: {want.order[1]}–{want.order[2]}." in out
    assert "Holm-corrected over 2 neighbour pair(s)" in out and "overlaps" not in out
    assert "| Metric | Order (best first) | Kendall τ |" in out and "| FID | a > " in out
    assert "subsets of N/2 = 30 and N/4 = 15 images" in out
    assert main(["leaderboard", str(run), "--no-ci"]) == 0
    assert "‡" not in capsys.readouterr().out
    assert main(["leaderboard", str(run), "--alpha", "2"]) == 2


def test_without_per_image_values_the_overlap_note_is_the_fallback(tmp_path: Path, capsys) -> None:
    d = tmp_path / "r"
    write_job(d, synthetic_record("places", "mat-large", "mat", {"fid": (2.90, 2.80, 3.00)}))
    write_job(d, synthetic_record("places", "mat-large", "lama", {"fid": (3.05, 2.95, 3.15)}))
    assert main(["leaderboard", str(d)]) == 0
    out = capsys.readouterr().out
    assert "No rank confidence for FID: " in out and "per_image.csv" in out
    assert "(fallback: separate intervals" in out and "P(#1)" not in out


def test_tables_mark_separated_rows(run: Path) -> None:
    lp = _expected(run, "lpips")
    tables = build_tables(load_entries([run]), metrics=["fid", "lpips"])
    plain = render(tables, "md", ci=True)
    assert "‡" not in plain  # nothing attached: the table reads as before
    ranks.attach(tables)
    md = render(tables, "md", ci=True)
    row_a = next(line for line in md.splitlines() if line.startswith("| a "))
    assert row_a.count("‡") == 2  # a is separated from the next in both columns
    assert "‡ separated from the next-ranked model of its column at α = 0.05" in md
    assert "‡" not in render(tables, "md", ci=False)
    tex = render(tables, "latex", ci=True)
    assert r"$^\ddagger$" in tex and r"$\alpha$ = 0.05" in tex
    rows = list(csv.DictReader(io.StringIO(render(tables, "csv"))))
    got = {(r["model"], r["metric"]): r for r in rows}
    for i, m in enumerate(lp.order):
        r = got[(m, "lpips")]
        assert float(r["p_rank1"]) == pytest.approx(lp.p_first[i], abs=1e-4)
        assert (int(r["rank_lo"]), int(r["rank_hi"])) == (lp.rank_lo[i], lp.rank_hi[i])
        assert r["separated_from_next"] == ("" if lp.separated[i] is None else str(lp.separated[i]))


def test_table_cli_csv_has_the_rank_columns(run: Path, capsys) -> None:
    assert main(["table", str(run), "--format", "csv", "--metrics", "lpips"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["model"]: r["separated_from_next"] for r in rows}["a"] == "True"


def test_report_leaderboard_has_markers_and_the_robustness_table(run: Path, tmp_path: Path) -> None:
    html = render_site([run], tmp_path / "site").read_text()
    assert 'class="sep"' in html and "‡ separated from the next-ranked model" in html
    assert "P(rank 1) 1.00, 95% rank interval [1, 1]; separated from the next" in html
    assert "<h4>Ranking robustness</h4>" in html and "against the FID ranking, N = 60" in html


def test_a_model_on_random_weights_is_not_ranked(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 1.0, 20)
    cols = {m: {"lpips": 0.3 + 0.05 * base + off + rng.normal(0.0, 0.002, 20)}
            for m, off in (("a", 0.0), ("b", 0.1), ("r", -0.2))}  # r, on random weights, has the best value
    run = write_group(tmp_path / "run", cols, random_models=("r",))
    assert main(["leaderboard", str(run), "--sort", "lpips"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | a (smoke) ‡ | 20 | 1.00 | [1, 1] |" in out  # ranked among a and b only
    assert "| – | r (random weights) | 20 | – | – |" in out and "over 1 neighbour pair(s)" in out
