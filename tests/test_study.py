"""User study: Bradley–Terry against hand-computed fits, the analysis on hand-made choices, and the page
made by `matbench study make` answered in a real headless Chromium (clicks and keys), exported, analysed.

A screenshot of the study page is kept under pytest's tmp dir and copied to docs/img/study.png when
MATBENCH_UPDATE_SCREENSHOT=1 (with MATBENCH_STUDY_SIZE=256 for a legible one).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import browser  # noqa: F401  (fixture)

from matbench.cli import main
from matbench.errors import InputError
from matbench.study import bt
from matbench.study.analyze import analyze, render_tables, wilson

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- Bradley–Terry, hand-computed

def test_bt_two_systems_closed_form() -> None:
    # A beat B 3 times out of 4: the MLE odds are 3:1, so s_A - s_B = log 3, centred to ±log(3)/2
    s = bt.fit(bt.win_matrix(2, [(0, 1)] * 3 + [(1, 0)]))
    assert s == pytest.approx([math.log(3) / 2, -math.log(3) / 2], abs=1e-9)
    # with a prior of 0.5 virtual wins each way: odds 3.5:1.5
    s = bt.fit(bt.win_matrix(2, [(0, 1)] * 3 + [(1, 0)]), prior=0.5)
    assert s[0] - s[1] == pytest.approx(math.log(3.5 / 1.5), abs=1e-9)


def test_bt_three_systems_hand_computed() -> None:
    # Strengths p = (4, 2, 1). With these counts every system's wins equal their expectation under p
    # (A: 3*4/6 + 5*4/5 = 2 + 4 = 6; B: 3*2/6 + 3*2/3 = 1 + 2 = 3; C: 3*1/3 + 5*1/5 = 1 + 1 = 2), which is the
    # likelihood equation; the comparison graph is strongly connected, so p is the unique MLE.
    w = np.array([[0, 2, 4],
                  [1, 0, 2],
                  [1, 1, 0]], dtype=float)
    expected = np.log([4.0, 2.0, 1.0])
    expected -= expected.mean()
    assert bt.fit(w) == pytest.approx(expected, abs=1e-9)
    assert bt.identifiable(w)


def test_bt_refuses_when_the_mle_does_not_exist() -> None:
    w = bt.win_matrix(3, [(0, 1), (1, 2), (0, 2), (1, 2)])  # A never lost
    assert not bt.identifiable(w)
    with pytest.raises(InputError, match="prior"):
        bt.fit(w)
    s = bt.fit(w, prior=0.5)
    assert s[0] > s[1] > s[2]


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson(5, 10)  # textbook: 5/10 -> [0.2366, 0.7634]
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert wilson(0, 0) == (None, None)


# ----------------------------------------------------------------------------- analysis on hand-made choices

def _key(tmp: Path) -> Path:
    trials = []
    # the (4, 2, 1) design above: A-B 3 trials, B-C 3, A-C 5; each trial shows image "x<k>"
    for k, (a, b) in enumerate([(0, 1)] * 3 + [(1, 2)] * 3 + [(0, 2)] * 5):
        trials.append({"id": f"t{k:02d}", "kind": "pair", "group": "g", "image": f"x{k}", "left": a, "right": b})
    trials += [{"id": "a1", "kind": "attention", "group": "g", "image": "x0", "left": "gt", "right": "broken",
                "expected": "left"},
               {"id": "a2", "kind": "attention", "group": "g", "image": "x1", "left": "broken", "right": "gt",
                "expected": "right"}]
    # per-image LPIPS: system 0 always best, so LPIPS picks the left side (system a) in every pair trial
    per_image = {str(s): {f"x{k}": {"lpips": 0.1 * (s + 1), "psnr": 20.0} for k in range(11)} for s in range(3)}
    key = {"schema": "matbench.study/1", "study_id": "abc", "seed": 0, "title": "t",
           "systems": [{"name": n, "group": "g", "source": "-", "smoke": False} for n in ("A", "B", "C")],
           "trials": trials, "per_image": per_image}
    (tmp / "choices").mkdir(parents=True)
    (tmp / "study.json").write_text(json.dumps(key))
    return tmp


def _choices(tmp: Path, pid: str, answers: dict[str, str]) -> Path:
    p = tmp / "choices" / f"{pid}.json"
    p.write_text(json.dumps({"schema": "matbench.study-choices/1", "study_id": "abc", "participant": pid,
                             "responses": [{"trial": t, "choice": c, "rt_ms": 500 + i}
                                           for i, (t, c) in enumerate(answers.items())]}))
    return p


def test_analysis_of_hand_made_choices(tmp_path: Path) -> None:
    d = _key(tmp_path)
    # winners per design trial so that W = [[0,2,4],[1,0,2],[1,1,0]]: A-B: A,A,B; B-C: B,B,C; A-C: A,A,A,A,C
    sides = ["left", "left", "right", "left", "left", "right", "left", "left", "left", "left", "right"]
    good = {f"t{k:02d}": s for k, s in enumerate(sides)} | {"a1": "left", "a2": "right"}
    f1 = _choices(d, "p1", good)
    # p2 fails one attention check and always picks C: excluded, so the fit is unchanged
    bad = {f"t{k:02d}": ("right" if k >= 3 else "left") for k in range(11)} | {"a1": "right", "a2": "right"}
    f2 = _choices(d, "p2", bad)
    a = analyze([f1, f2], min_attention=1.0, n_bootstrap=200, seed=1)
    assert a["excluded"] == ["p2"]
    p2 = next(p for p in a["participants"] if p["participant"] == "p2")
    assert (p2["attention_passed"], p2["attention_checks"], p2["attention_rate"]) == (1, 2, 0.5)
    assert a["n_choices"] == 11
    scores = {r["system"]: r["score"] for r in a["ranking"]}
    expected = np.log([4.0, 2.0, 1.0]) - np.log([4.0, 2.0, 1.0]).mean()
    assert [scores[n] for n in "ABC"] == pytest.approx(expected, abs=1e-8)
    assert [r["system"] for r in a["ranking"]] == ["A", "B", "C"]
    for r in a["ranking"]:
        assert r["ci_low"] <= r["score"] <= r["ci_high"]
    ab = next(p for p in a["pairs"] if (p["a"], p["b"]) == ("A", "B"))
    assert (ab["a_wins"], ab["b_wins"], ab["n"]) == (2, 1, 3)
    # LPIPS prefers the left side (lower system index) in all 11 trials; people chose left 8 times
    (lp,) = [g for g in a["metric_agreement"] if g["metric"] == "lpips"]
    assert (lp["agree"], lp["n"], lp["rate"]) == (8, 11, 8 / 11)
    assert not [g for g in a["metric_agreement"] if g["metric"] == "psnr"]  # all ties: no verdict
    # with a lower bar p2 is kept (and adds C's wins)
    assert analyze([f1, f2], min_attention=0.5, n_bootstrap=0)["n_choices"] == 22
    md = render_tables(a, "md")
    assert "| 1 | A |" in md and "72.7" in md
    assert "\\toprule" in render_tables(a, "latex")
    assert render_tables(a, "csv").startswith("table,#,Model")


def test_analysis_rejects_foreign_or_duplicate_files(tmp_path: Path) -> None:
    d = _key(tmp_path)
    f1 = _choices(d, "p1", {"t00": "left"})
    dup = d / "choices" / "again.json"
    shutil.copyfile(f1, dup)
    with pytest.raises(InputError, match="also in"):
        analyze([f1, dup], n_bootstrap=0)
    twice = json.loads(f1.read_text())
    twice["responses"] *= 2
    dup.write_text(json.dumps(twice))
    with pytest.raises(InputError, match="t00 answered twice"):
        analyze([dup], n_bootstrap=0)
    other = json.loads(f1.read_text()) | {"study_id": "zzz"}
    dup.write_text(json.dumps(other))
    with pytest.raises(InputError, match="made for study 'zzz'"):
        analyze([dup], n_bootstrap=0)


# ----------------------------------------------------------------------------- the page in Chromium

PREFERENCE = {"opencv-telea": 0, "opencv-ns": 1, "mean-fill": 2}  # how the simulated participants rank


@pytest.mark.browser
def test_study_page_end_to_end(tmp_path: Path, browser: object) -> None:  # noqa: F811
    from matbench.reports.sample import make_sample_run

    size = int(os.environ.get("MATBENCH_STUDY_SIZE", "64"))
    run = make_sample_run(tmp_path / "run", n_images=5, size=size, masksets=("mat-large",), samples=0)
    out = tmp_path / "study"
    assert main(["study", "make", str(run), "--pairs", "9", "--attention", "2", "--seed", "3", "-o", str(out)]) == 0
    key = json.loads((out / "study.json").read_text())
    names = [s["name"] for s in key["systems"]]
    trials = key["trials"]
    assert len(trials) == 11 and sum(t["kind"] == "attention" for t in trials) == 2
    pairs = [t for t in trials if t["kind"] == "pair"]
    assert {tuple(sorted((t["left"], t["right"]))) for t in pairs} == {(0, 1), (0, 2), (1, 2)}  # balanced
    assert sum(t["left"] < t["right"] for t in pairs) not in (0, len(pairs))                   # sides shuffled
    page_js = (out / "trials.js").read_text()
    assert not any(n in page_js for n in names)  # the page does not say which model is which

    def answer(t: dict, flip: bool, attentive: bool = True) -> str:
        if t["kind"] == "attention":
            return t["expected"] if attentive else ("left" if t["expected"] == "right" else "right")
        best = "left" if PREFERENCE[names[t["left"]]] < PREFERENCE[names[t["right"]]] else "right"
        return ({"left": "right", "right": "left"}[best]) if flip else best

    def participant(pid: str, flip_trials: set[int], attentive: bool = True, shot: Path | None = None) -> Path:
        errors: list[str] = []
        ctx = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})  # type: ignore
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").resolve().as_uri())
        page.fill("#pid", pid)
        page.keyboard.press("Enter")
        for i, t in enumerate(trials):
            page.wait_for_function("document.getElementById('progress-text').textContent.startsWith('Trial "
                                   f"{i + 1} of {len(trials)}')")
            page.wait_for_function("document.body.dataset.ready === '1'")  # choices count once images decoded
            if i == 1:
                if shot is not None:
                    page.screenshot(path=str(shot))
                # full-size view: F opens it at natural size, Esc closes; a click on an image opens it too
                page.keyboard.press("f")
                assert page.locator("#full").is_visible()
                nat = page.evaluate("[document.getElementById('full-left').naturalWidth, "
                                    "document.getElementById('full-left').getBoundingClientRect().width]")
                assert nat[0] == size and abs(nat[1] - size) < 1
                page.keyboard.press("Escape")
                assert not page.locator("#full").is_visible()
                page.click("#img-right")
                assert page.locator("#full").is_visible()
                page.click("#full")
                assert not page.locator("#full").is_visible()
            if i == 3 and pid == "P1":  # a participant who must stop early can export what they answered
                with page.expect_download() as part:
                    page.click("#export-partial")
                partial = json.loads(Path(part.value.path()).read_text())
                assert [r["trial"] for r in partial["responses"]] == [t["id"] for t in trials[:3]]
                assert partial["finished"] is None
            if i == 4:  # reload mid-way: answers so far are kept in the browser, Start resumes
                page.reload()
                assert page.locator("#resume-note").is_visible()
                page.click("#begin")
                page.wait_for_function(f"document.getElementById('progress-text').textContent.startsWith("
                                       f"'Trial {i + 1} of') && document.body.dataset.ready === '1'")
            side = answer(t, i in flip_trials, attentive)
            if i % 3 == 0:
                page.click(f"#choose-{side}")
            elif i % 3 == 1:
                page.keyboard.press("ArrowLeft" if side == "left" else "ArrowRight")
            else:
                page.keyboard.press("1" if side == "left" else "2")
        page.wait_for_selector("#done", state="visible")
        with page.expect_download() as dl:
            page.keyboard.press("e")
        dst = out / "choices" / dl.value.suggested_filename
        dl.value.save_as(str(dst))
        ctx.close()
        assert errors == []
        return dst

    shot = tmp_path / "study.png"
    pair_idx = [i for i, t in enumerate(trials) if t["kind"] == "pair"]
    f1 = participant("P1", set(), shot=shot)
    f2 = participant("P2", set(pair_idx[:2]))          # disagrees on a few trials: every model wins and loses
    f3 = participant("P3", set(), attentive=False)     # picks the broken fill: excluded
    assert shot.stat().st_size > 5_000
    if os.environ.get("MATBENCH_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "img" / "study.png")

    data = json.loads(f1.read_text())
    assert data["participant"] == "P1" and data["study_id"] == key["study_id"]
    assert [r["trial"] for r in data["responses"]] == [t["id"] for t in trials]
    assert all(isinstance(r["rt_ms"], int) and r["rt_ms"] >= 0 for r in data["responses"])

    assert main(["study", "analyze", str(f1), str(f2), str(f3), "--bootstrap", "100", "--prior", "0.5"]) == 0
    a = json.loads((out / "analysis.json").read_text())
    assert a["excluded"] == ["P3"]
    # the analysis counts exactly what was clicked/pressed
    w = np.zeros((3, 3))
    for flips in (set(), set(pair_idx[:2])):
        for i, t in enumerate(trials):
            if t["kind"] == "pair":
                chosen = answer(t, i in flips)
                win, lose = (t["left"], t["right"]) if chosen == "left" else (t["right"], t["left"])
                w[win, lose] += 1
    for p in a["pairs"]:
        ia, ib = names.index(p["a"]), names.index(p["b"])
        assert (p["a_wins"], p["b_wins"]) == (w[ia, ib], w[ib, ia])
    expected = bt.fit(w, prior=0.5)
    for r in a["ranking"]:
        assert r["score"] == pytest.approx(expected[names.index(r["system"])], abs=1e-8)
    assert a["ranking"][0]["system"] == "opencv-telea" and a["ranking"][-1]["system"] == "mean-fill"
    assert {g["metric"] for g in a["metric_agreement"]} >= {"psnr", "ssim", "l1"}


def test_study_from_eval_folders(tmp_path: Path) -> None:
    from matbench.io import read_image, save_png

    rng = np.random.default_rng(0)
    hole = np.zeros((32, 32), bool)
    hole[8:20, 6:24] = True
    for i in range(4):
        gt = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        save_png(tmp_path / "gt" / f"im{i}.png", gt)
        save_png(tmp_path / "masks" / f"im{i}.png", hole.astype(np.uint8) * 255)  # LaMa polarity: 255 = hole
        for name, fill in (("grey", 128), ("dark", 20)):
            res = gt.copy()
            res[hole] = fill
            save_png(tmp_path / name / f"im{i}.png", res)
    outs = []
    for name in ("grey", "dark"):
        out = tmp_path / f"eval-{name}"
        assert main(["eval", "--results", str(tmp_path / name), "--gt", str(tmp_path / "gt"), "--masks",
                     str(tmp_path / "masks"), "--mask-polarity", "hole=255", "--metrics", "psnr,l1",
                     "--bootstrap", "0", "--workers", "0", "--device", "cpu", "--no-cache", "-o", str(out)]) == 0
        outs.append(out)
    with pytest.raises(InputError, match="no two results share"):
        from matbench.study.make import make_study

        make_study(outs[:1], tmp_path / "one", pairs=2)
    study = tmp_path / "study"
    assert main(["study", "make", *map(str, outs), "--pairs", "4", "--attention", "1", "-o", str(study)]) == 0
    key = json.loads((study / "study.json").read_text())
    assert [s["name"] for s in key["systems"]] == ["grey", "dark"]
    pair = next(t for t in key["trials"] if t["kind"] == "pair")
    names = {0: "grey", 1: "dark"}
    page = json.loads((study / "trials.js").read_text().split("=", 1)[1].rstrip().rstrip(";"))
    shown = next(t for t in page["trials"] if t["id"] == pair["id"])
    # the page shows the masked input (hole grey 127) and each side's own result file
    masked = read_image(study / shown["masked"])
    gt = read_image(tmp_path / "gt" / f"{pair['image']}.png")
    assert (masked[hole] == 127).all() and (masked[~hole] == gt[~hole]).all()
    left = read_image(study / shown["left"])
    assert (left == read_image(tmp_path / names[pair["left"]] / f"{pair['image']}.png")).all()
    # attention check: a model's result (the answer) against the same result with a broken fill
    att = next(t for t in key["trials"] if t["kind"] == "attention")
    shown_att = next(t for t in page["trials"] if t["id"] == att["id"])
    bad_side = "right" if att["expected"] == "left" else "left"
    assert att[att["expected"]] == att["source"] and att[bad_side] == "broken"
    result = read_image(tmp_path / names[att["source"]] / f"{att['image']}.png")
    assert (read_image(study / shown_att[att["expected"]]) == result).all()
    broken = read_image(study / shown_att[bad_side])
    assert (broken[~hole] == result[~hole]).all()
    assert {tuple(x) for x in broken[hole].reshape(-1, 3).tolist()} == {(255, 0, 255), (0, 200, 0)}
    # ... or against the ground truth, which is then the answer
    assert main(["study", "make", *map(str, outs), "--pairs", "2", "--attention", "2", "--attention-against", "gt",
                 "-o", str(tmp_path / "study-gt")]) == 0
    for t in json.loads((tmp_path / "study-gt" / "study.json").read_text())["trials"]:
        if t["kind"] == "attention":
            assert t[t["expected"]] == "gt" and t["left" if t["expected"] == "right" else "right"] == t["source"]
    assert set(key["per_image"]["0"][pair["image"]]) == {"psnr", "l1"}


@pytest.mark.parametrize("responses", ["abc", [1, 2], [{"trial": ["t00"], "choice": "left"}], {"t00": "left"}])
def test_malformed_choices_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            responses: object) -> None:
    d = _key(tmp_path)
    f = _choices(d, "p1", {"t00": "left"})
    f.write_text(json.dumps(json.loads(f.read_text()) | {"responses": responses}))
    assert main(["study", "analyze", str(f), "-o", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and str(f) in err
    assert not (tmp_path / "a.json").exists()


def test_choices_glob_that_matches_nothing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _key(tmp_path)
    pattern = str(d / "choices" / "*.json")
    assert main(["study", "analyze", pattern]) == 2
    assert capsys.readouterr().err.strip() == f"matbench: error: {pattern}: matched no choice file"
