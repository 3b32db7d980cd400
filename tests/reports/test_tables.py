"""Table exports (md / LaTeX / CSV) for a fixed, hand-written result set must match literal text."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from matbench.reports.leaderboard import build_tables, load_entries
from matbench.reports.sample import synthetic_record, write_job
from matbench.reports.tables import render

from matbench.cli import main


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    write_job(d, synthetic_record("places", "mat-small", "mat", {
        "fid": (2.90, 2.80, 3.00), "pids": 0.1234, "uids": 0.2891}))
    write_job(d, synthetic_record("places", "mat-large", "mat", {
        "fid": (10.5, 10.0, 11.0), "pids": 0.10, "uids": 0.20, "lpips": (0.2012, 0.2000, 0.2024)}))
    write_job(d, synthetic_record("places", "mat-small", "lama", {
        "fid": (3.10, 3.00, 3.20), "pids": 0.12, "uids": 0.30}))
    write_job(d, synthetic_record("places", "mat-large", "lama", {
        "fid": (10.5, 10.2, 10.8), "pids": 0.11, "uids": 0.25}))
    return d


MD = """\
### places @ 512×512

| Model | mat-small FID↓ | mat-small P-IDS (%)↑ | mat-small U-IDS (%)↑ | mat-large FID↓ | mat-large P-IDS (%)↑ \
| mat-large U-IDS (%)↑ | mat-large LPIPS↓ |
|:---|---:|---:|---:|---:|---:|---:|---:|
| lama | 3.10 | 12.00 | **30.00** | **10.50** | **11.00** | **25.00** | – |
| mat | **2.90** | **12.34** | 28.91 | **10.50** | 10.00 | 20.00 | 0.2012 |
"""

MD_CI = """\
### places @ 512×512

| Model | mat-small FID↓ | mat-small P-IDS (%)↑ | mat-small U-IDS (%)↑ | mat-large FID↓ | mat-large P-IDS (%)↑ \
| mat-large U-IDS (%)↑ | mat-large LPIPS↓ |
|:---|---:|---:|---:|---:|---:|---:|---:|
| lama | 3.10 ± 0.10 | 12.00 | **30.00** | **10.50** ± 0.30 | **11.00** | **25.00** | – |
| mat | **2.90** ± 0.10 | **12.34** | 28.91 | **10.50** ± 0.50 | 10.00 | 20.00 | 0.2012 ± 0.0012 |
"""

LATEX_CI = r"""% places @ 512×512
\begin{tabular}{lccccccc}
\toprule
 & \multicolumn{3}{c}{mat-small} & \multicolumn{4}{c}{mat-large} \\
\cmidrule(lr){2-4} \cmidrule(lr){5-8}
Method & FID$\downarrow$ & P-IDS (\%)$\uparrow$ & U-IDS (\%)$\uparrow$ & FID$\downarrow$ & P-IDS (\%)$\uparrow$ \
& U-IDS (\%)$\uparrow$ & LPIPS$\downarrow$ \\
\midrule
lama & 3.10{\scriptsize$\pm$0.10} & 12.00 & \textbf{30.00} & \textbf{10.50}{\scriptsize$\pm$0.30} \
& \textbf{11.00} & \textbf{25.00} & -- \\
mat & \textbf{2.90}{\scriptsize$\pm$0.10} & \textbf{12.34} & 28.91 & \textbf{10.50}{\scriptsize$\pm$0.50} \
& 10.00 & 20.00 & 0.2012{\scriptsize$\pm$0.0012} \\
\bottomrule
\end{tabular}
""".replace(" \\\n&", " &")

CSV = """\
dataset,resolution,maskset,model,metric,label,value,ci_low,ci_high,n,best,smoke,ci_kind,ci_note,p_rank1,rank_lo,rank_hi,separated_from_next
places,512,mat-small,lama,fid,FID,3.1,3.0,3.2,100,False,False,symmetric,,,,,
places,512,mat-small,lama,pids,P-IDS (%),12.0,,,100,False,False,none,,,,,
places,512,mat-small,lama,uids,U-IDS (%),30.0,,,100,True,False,none,,,,,
places,512,mat-large,lama,fid,FID,10.5,10.2,10.8,100,True,False,symmetric,,,,,
places,512,mat-large,lama,pids,P-IDS (%),11.0,,,100,True,False,none,,,,,
places,512,mat-large,lama,uids,U-IDS (%),25.0,,,100,True,False,none,,,,,
places,512,mat-small,mat,fid,FID,2.9,2.8,3.0,100,True,False,symmetric,,,,,
places,512,mat-small,mat,pids,P-IDS (%),12.34,,,100,True,False,none,,,,,
places,512,mat-small,mat,uids,U-IDS (%),28.91,,,100,False,False,none,,,,,
places,512,mat-large,mat,fid,FID,10.5,10.0,11.0,100,True,False,symmetric,,,,,
places,512,mat-large,mat,pids,P-IDS (%),10.0,,,100,False,False,none,,,,,
places,512,mat-large,mat,uids,U-IDS (%),20.0,,,100,False,False,none,,,,,
places,512,mat-large,mat,lpips,LPIPS,0.2012,0.2,0.2024,100,False,False,symmetric,,,,,
"""


def test_markdown_matches_expected(run_dir: Path) -> None:
    tables = build_tables(load_entries([run_dir]))
    assert render(tables, "md") == MD
    assert render(tables, "md", ci=True) == MD_CI


def test_latex_booktabs_matches_expected(run_dir: Path) -> None:
    assert render(build_tables(load_entries([run_dir])), "latex", ci=True) == LATEX_CI


def test_csv_matches_expected(run_dir: Path) -> None:
    assert render(build_tables(load_entries([run_dir])), "csv") == CSV


def test_table_cli_writes_each_format(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", str(run_dir), "--format", "md", "--no-ci"]) == 0
    assert capsys.readouterr().out == MD
    assert main(["table", str(run_dir), "--format", "md"]) == 0  # intervals by default, as `leaderboard`
    assert capsys.readouterr().out == render(build_tables(load_entries([run_dir])), "md", ci=True) != MD
    out = tmp_path / "t.tex"
    assert main(["table", str(run_dir), "--format", "latex", "--ci", "-o", str(out)]) == 0
    assert out.read_text() == LATEX_CI
    assert main(["table", str(run_dir), "--format", "csv"]) == 0
    assert capsys.readouterr().out == CSV


def _smoke(rec, model: bool = False, metric: bool = True):
    """Say which part of a smoke record was smoke, as the runner records it."""
    rec.provenance.update({"metric_smoke": metric, "weights": {"model": {"smoke": model}}})
    return rec


def test_metric_selection_and_smoke_marking(tmp_path: Path) -> None:
    d = tmp_path / "run"
    write_job(d, _smoke(synthetic_record("ds", "mat-large", "a_model", {"fid": 5.0, "lpips": 0.3}, smoke=True)))
    write_job(d, _smoke(synthetic_record("ds", "mat-large", "b", {"fid": 4.0, "lpips": 0.4}, smoke=True)))
    md = render(build_tables(load_entries([d]), metrics=["fid"]), "md")
    assert "LPIPS" not in md and "SMOKE" in md
    assert "| a_model (smoke) | 5.00 |" in md and "| b (smoke) | **4.00** |" in md
    tex = render(build_tables(load_entries([d]), metrics=["fid"]), "latex")
    assert r"a\_model (smoke) & 5.00 \\" in tex and "SMOKE" in tex


def test_a_model_on_random_weights_is_marked_apart_and_never_bold(tmp_path: Path) -> None:
    """Issue 25: `| mat (smoke) | **11.94** |` beside `| opencv-ns (smoke) | 13.40 |` called a random MAT best."""
    d = tmp_path / "run"
    write_job(d, _smoke(synthetic_record("ds", "mat-large", "mat", {"fid": 11.94, "psnr": 30.0}, smoke=True),
                        model=True))
    write_job(d, _smoke(synthetic_record("ds", "mat-large", "opencv-ns", {"fid": 13.40, "psnr": 20.0}, smoke=True)))
    write_job(d, _smoke(synthetic_record("ds", "mat-large", "telea", {"fid": 14.0, "psnr": 21.0}, smoke=True)))
    md = render(build_tables(load_entries([d])), "md")
    assert "| mat (random weights) | 11.94 | 30.00 |" in md
    assert "| opencv-ns (smoke) | **13.40** | 20.00 |" in md and "| telea (smoke) | 14.00 | **21.00** |" in md
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(render(build_tables(load_entries([d])), "csv")))
            if r["metric"] == "fid"}
    assert rows["mat"]["best"] == "False" and rows["opencv-ns"]["best"] == "True"


def test_kid_at_or_below_zero_is_never_bold(tmp_path: Path) -> None:
    """A negative unbiased KID is noise around 0, not a win; neither is one whose interval reaches 0. The next
    value is not promoted in its place (it is the worse one)."""
    def md_of(*records) -> str:
        d = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        for r in records:
            write_job(d, r)
        return render(build_tables(load_entries([d])), "md")

    a = synthetic_record("ds", "mat-large", "a", {"kid": (-0.02796, -0.03, -0.02)})
    b = synthetic_record("ds", "mat-large", "b", {"kid": (0.004, -0.001, 0.009)})
    b_clear = synthetic_record("ds", "mat-large", "b", {"kid": (0.004, 0.002, 0.006)})
    c = synthetic_record("ds", "mat-large", "c", {"kid": (0.012, 0.010, 0.014)})
    md = md_of(a, c)
    assert "| a | -27.96 |" in md and "| c | 12.00 |" in md and "**" not in md
    assert "**" not in md_of(b, c)
    assert "| b | **4.00** |" in md_of(b_clear, c)


def test_unknown_metric_is_an_error(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", str(run_dir), "--metrics", "fid,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_nan_is_never_best(tmp_path: Path) -> None:
    d = tmp_path / "run"
    write_job(d, synthetic_record("ds", "mat-large", "a", {"fid": float("nan")}))
    write_job(d, synthetic_record("ds", "mat-large", "b", {"fid": 4.0}))
    write_job(d, synthetic_record("ds", "mat-large", "c", {"fid": 5.0}))
    md = render(build_tables(load_entries([d])), "md")
    assert "| a | nan |" in md and "| b | **4.00** |" in md and "| c | 5.00 |" in md


def test_csv_text_cells_are_not_formulas_numbers_stay_numbers(tmp_path: Path) -> None:
    write_job(tmp_path, synthetic_record("places", "mat-large", "=cmd|' /C calc'!A0", {"fid": 3.0, "psnr": -2.5}))
    out = render(build_tables(load_entries([tmp_path])), "csv")
    assert "'=cmd|' /C calc'!A0" in out and ",=cmd" not in out
    assert "-2.5" in out and "'-2.5" not in out
