"""Degenerate, asymmetric and symmetric intervals: one decision (reports.intervals) in every output format."""

from __future__ import annotations

from pathlib import Path

import pytest
from matbench.reports.intervals import interval
from matbench.reports.leaderboard import build_tables, load_entries
from matbench.reports.sample import synthetic_record, write_job
from matbench.reports.tables import render


@pytest.mark.parametrize("metric,value,lo,hi,n,kind,text", [
    # KID with n = 8: every subset is the whole set, so all subset values are equal (the example).
    ("kid", -0.04873, -0.04873, -0.04873, 8, "unsupported", "†"),
    ("precision", 1.0, 1.0, 1.0, 8, "unsupported", "†"),
    ("fid", 3.0, 3.0, 3.0, 1, "unsupported", "†"),
    ("fid", 3.0, 2.9, 3.1, 1, "unsupported", "†"),  # one image cannot carry an interval whatever it says
    # FID's bias-corrected bootstrap: not centred on the value (or not even around it) -> bounds.
    ("fid", 10.0, 9.2, 10.3, 100, "asymmetric", "[9.20, 10.30]"),
    ("fid", 10.0, 10.1, 10.4, 100, "asymmetric", "[10.10, 10.40]"),
    ("fid", 2.9, 2.8, 3.0, 100, "symmetric", "± 0.10"),
    ("fid", 2.9, 2.79, 3.0, 100, "symmetric", "± 0.10"),  # sides 0.11 / 0.10: within 10 % of the width
    ("pids", 0.1234, 0.1200, 0.1268, 100, "symmetric", "± 0.34"),  # display units (%)
    # Narrower than the display precision: never "± 0.0000"; a sub-unit skew is not shown as [lo, hi].
    ("lpips", 0.2, 0.19995, 0.20004, 100, "symmetric", "± <0.0001"),
    ("fid", 2.9, None, None, 100, "none", ""),
])
def test_interval_classification(metric: str, value: float, lo: float | None, hi: float | None, n: int,
                                 kind: str, text: str) -> None:
    iv = interval(metric, value, lo, hi, n)
    assert (iv.kind, iv.text) == (kind, text)
    if kind == "unsupported":
        assert f"n = {n} image" in (iv.reason or "")


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    rec = synthetic_record("places", "mat-large", "mat", {
        "fid": (10.0, 9.2, 10.3), "kid": (-0.04873, -0.04873, -0.04873), "lpips": (0.2012, 0.2000, 0.2024),
        "precision": (1.0, 1.0, 1.0)}, n=8, smoke=True)
    rec.provenance["metric_smoke"] = True  # smoke metric networks, the model's own weights (the demo's case)
    write_job(d, rec)
    return d


NOTE = ("† No confidence interval shown: zero-width interval: every resample of the n = 8 images gave the same "
        "value for this metric (no spread to report; not an exact value).")

MD = f"""\
### places @ 512×512

> **SMOKE: computed with random weights or stand-ins; not comparable to published numbers.**

| Model | mat-large FID↓ | mat-large KID (×10³)↓ | mat-large LPIPS↓ | mat-large Precision↑ |
|:---|---:|---:|---:|---:|
| mat (smoke) | 10.00 [9.20, 10.30] | -48.73 † | 0.2012 ± 0.0012 | 1.0000 † |

{NOTE}
"""

LATEX = r"""% places @ 512×512
\begin{tabular}{lcccc}
\toprule
 & \multicolumn{4}{c}{mat-large} \\
\cmidrule(lr){2-5}
Method & FID$\downarrow$ & KID ($\times10^3$)$\downarrow$ & LPIPS$\downarrow$ & Precision$\uparrow$ \\
\midrule
mat (smoke) & 10.00{\scriptsize[9.20, 10.30]} & -48.73$^\dagger$ & 0.2012{\scriptsize$\pm$0.0012} & 1.0000$^\dagger$ \\
\bottomrule
\end{tabular}
\par{\footnotesize \textbf{SMOKE:} computed with random weights or stand-ins; not comparable to published numbers.\par}
""" + r"\par{\footnotesize $^\dagger$" + NOTE[1:] + r"\par}" + "\n"

CSV = """\
dataset,resolution,maskset,model,metric,label,value,ci_low,ci_high,n,best,smoke,ci_kind,ci_note,p_rank1,rank_lo,rank_hi,separated_from_next
places,512,mat-large,mat,fid,FID,10.0,9.2,10.3,8,False,True,asymmetric,,,,,
places,512,mat-large,mat,kid,KID (×10³),-48.73,,,8,False,True,unsupported,"recorded [-48.73, -48.73]; \
zero-width interval: every resample of the n = 8 images gave the same value for this metric \
(no spread to report; not an exact value)",,,,
places,512,mat-large,mat,lpips,LPIPS,0.2012,0.2,0.2024,8,False,True,symmetric,,,,,
places,512,mat-large,mat,precision,Precision,1.0,,,8,False,True,unsupported,"recorded [1.0000, 1.0000]; \
zero-width interval: every resample of the n = 8 images gave the same value for this metric \
(no spread to report; not an exact value)",,,,
"""


def test_markdown_marks_degenerate_and_asymmetric(run_dir: Path) -> None:
    tables = build_tables(load_entries([run_dir]))
    assert render(tables, "md", ci=True) == MD
    assert "[-48.73, -48.73]" not in render(tables, "md", ci=True)


def test_latex_marks_degenerate_and_has_a_visible_smoke_note(run_dir: Path) -> None:
    tex = render(build_tables(load_entries([run_dir])), "latex", ci=True)
    assert tex == LATEX
    # The smoke note is typeset text, not a % comment (invisible in the PDF).
    assert not any(line.lstrip().startswith("%") and "SMOKE" in line for line in tex.splitlines())


def test_csv_leaves_unsupported_bounds_empty_and_says_why(run_dir: Path) -> None:
    assert render(build_tables(load_entries([run_dir])), "csv") == CSV


def test_eval_summary_does_not_print_a_zero_width_interval_as_exact() -> None:
    from matbench.commands.eval import format_summary

    rec = synthetic_record("places", "mat-large", "mat", {
        "kid": (-0.04873, -0.04873, -0.04873), "fid": (10.0, 9.2, 10.3)}, n=8)
    text = format_summary(rec, "out")
    assert "[-48.73, -48.73]" not in text
    assert ("KID (×10³)         -48.73  no CI (zero-width interval: every resample of the n = 8 images gave the "
            "same value for this metric (no spread to report; not an exact value))") in text
    assert "FID                10.00  [9.20, 10.30]" in text
