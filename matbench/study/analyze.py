"""`matbench study analyze`: preference rates, Bradley–Terry ranking, attention checks, metric agreement.

- Participants whose attention-check pass rate is below `min_attention` are excluded (and listed).
- Per system pair: how often each side was preferred, with a Wilson 95 % interval.
- Bradley–Terry log-strengths (mean 0) with percentile bootstrap intervals over resampled choices.
- Metric agreement: on the same pair trials, how often the side a per-image metric rates better (LPIPS/L1
  lower, PSNR/SSIM higher) is the side people chose; ties are left out. FID and other set-level metrics
  have no per-image value and do not appear.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matbench.errors import Hint, InputError
from matbench.metrics import METRIC_INFO
from matbench.study import bt

CHOICES_SCHEMA = "matbench.study-choices/1"
ANALYSIS_SCHEMA = "matbench.study-analysis/1"


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes out of n."""
    if n == 0:
        return None, None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a {what}")
    return data


def find_study(choice_files: Sequence[Path], study: str | os.PathLike | None) -> Path:
    if study:
        p = Path(study)
        return p / "study.json" if p.is_dir() else p
    for f in choice_files:  # DIR/choices/x.json -> DIR/study.json
        for d in (f.parent, f.parent.parent):
            if (d / "study.json").is_file():
                return d / "study.json"
    raise InputError("study.json not found next to the choice files", hints=[Hint("--study", "pass --study DIR")])


def analyze(choice_files: Sequence[str | os.PathLike], study: str | os.PathLike | None = None,
            min_attention: float = 1.0, n_bootstrap: int = 1000, seed: int = 0, prior: float = 0.0) -> dict[str, Any]:
    files = [Path(f) for f in choice_files]
    if not files:
        raise InputError("no choice files given")
    key_path = find_study(files, study)
    key = _read_json(key_path, "study.json")
    if key.get("schema") != "matbench.study/1":
        raise InputError(f"{key_path}: not a matbench study (schema {key.get('schema')!r})")
    trials = {t["id"]: t for t in key["trials"]}
    systems = key["systems"]
    participants = []
    outcomes: list[tuple[int, int]] = []
    answered: list[tuple[dict[str, Any], str]] = []  # (trial, chosen side) of included participants
    seen: dict[str, Path] = {}
    for f in files:
        c = _read_json(f, "choices file")
        if c.get("schema") != CHOICES_SCHEMA:
            raise InputError(f"{f}: not a matbench choices file (schema {c.get('schema')!r})")
        if c.get("study_id") != key["study_id"]:
            raise InputError(f"{f}: made for study {c.get('study_id')!r}, not {key['study_id']!r} ({key_path})")
        pid = str(c.get("participant", ""))
        if pid in seen:
            raise InputError(f"{f}: participant {pid!r} also in {seen[pid]}; pass each participant once")
        seen[pid] = f
        att_n = att_ok = 0
        resp = []
        answered_ids: set[str] = set()
        responses = c.get("responses", [])
        if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
            raise InputError(f"{f}: 'responses' must be a list of objects (trial, choice), got {responses!r:.60}")
        for r in responses:
            t = trials.get(r.get("trial")) if isinstance(r.get("trial"), str | int) else None  # a list: unhashable
            if t is None or r.get("choice") not in ("left", "right"):
                raise InputError(f"{f}: response {r!r} names no trial of this study or no side")
            if t["id"] in answered_ids:
                raise InputError(f"{f}: trial {t['id']} answered twice")
            answered_ids.add(t["id"])
            if t["kind"] == "attention":
                att_n += 1
                att_ok += r["choice"] == t["expected"]
            else:
                resp.append((t, r["choice"]))
        rate = att_ok / att_n if att_n else None
        excluded = rate is not None and rate < min_attention
        rts = [r.get("rt_ms") for r in c.get("responses", []) if isinstance(r.get("rt_ms"), int | float)]
        participants.append({"participant": pid, "file": str(f), "responses": len(c.get("responses", [])),
                             "attention_checks": att_n, "attention_passed": att_ok, "attention_rate": rate,
                             "excluded": excluded, "median_rt_ms": float(np.median(rts)) if rts else None})
        if excluded:
            continue
        for t, side in resp:
            win, lose = (t["left"], t["right"]) if side == "left" else (t["right"], t["left"])
            outcomes.append((int(win), int(lose)))
            answered.append((t, side))
    if not outcomes:
        raise InputError("no pair choices left to analyse (every participant excluded, or none answered)")

    k = len(systems)
    w = bt.win_matrix(k, outcomes)
    pairs = []
    for a in range(k):
        for b in range(a + 1, k):
            n = int(w[a, b] + w[b, a])
            if n:
                lo, hi = wilson(int(w[a, b]), n)
                pairs.append({"a": systems[a]["name"], "b": systems[b]["name"], "n": n, "a_wins": int(w[a, b]),
                              "b_wins": int(w[b, a]), "a_rate": w[a, b] / n, "a_rate_ci": [lo, hi]})
    in_study = sorted({x for o in outcomes for x in o})
    sub = w[np.ix_(in_study, in_study)]
    scores = bt.fit(sub, prior=prior)
    remap = {s: i for i, s in enumerate(in_study)}
    lo, hi, skipped = bt.bootstrap([(remap[a], remap[b]) for a, b in outcomes], len(in_study), n_bootstrap, seed,
                                   prior) if n_bootstrap else (np.full(len(in_study), np.nan),) * 2 + (0,)
    order = np.argsort(-scores, kind="stable")
    ranking = []
    for rank, i in enumerate(order, 1):
        s = systems[in_study[i]]
        ranking.append({"rank": rank, "system": s["name"], "score": float(scores[i]),
                        "ci_low": None if math.isnan(lo[i]) else float(lo[i]),
                        "ci_high": None if math.isnan(hi[i]) else float(hi[i]),
                        "wins": int(w[in_study[i]].sum()), "comparisons": int(w[in_study[i]].sum()
                                                                              + w[:, in_study[i]].sum()),
                        "smoke": bool(s.get("smoke"))})

    per_image = key.get("per_image", {})
    agreement = []
    metrics = sorted({m for d in per_image.values() for v in d.values() for m in v if m in METRIC_INFO},
                     key=list(METRIC_INFO).index)
    for m in metrics:
        hib = METRIC_INFO[m].higher_is_better
        agree = n = ties = 0
        for t, side in answered:
            lv = per_image.get(str(t["left"]), {}).get(t["image"], {}).get(m)
            rv = per_image.get(str(t["right"]), {}).get(t["image"], {}).get(m)
            if lv is None or rv is None or not (math.isfinite(lv) and math.isfinite(rv)):
                continue
            if lv == rv:
                ties += 1
                continue
            better = "left" if (lv > rv) == hib else "right"
            n += 1
            agree += better == side
        if n:
            lo_a, hi_a = wilson(agree, n)
            agreement.append({"metric": m, "agree": agree, "n": n, "ties": ties, "rate": agree / n,
                              "ci": [lo_a, hi_a]})
    return {"schema": ANALYSIS_SCHEMA, "study": str(key_path), "study_id": key["study_id"],
            "title": key.get("title"), "min_attention": min_attention, "prior": prior,
            "bootstrap": {"resamples": n_bootstrap, "seed": seed, "skipped_unidentifiable": skipped},
            "n_choices": len(outcomes), "participants": participants,
            "excluded": [p["participant"] for p in participants if p["excluded"]],
            "pairs": pairs, "ranking": ranking, "metric_agreement": agreement,
            "smoke": any(s.get("smoke") for s in systems)}


def read_analysis(path: str | os.PathLike) -> dict[str, Any]:
    data = _read_json(Path(path), "study analysis")
    if data.get("schema") != ANALYSIS_SCHEMA:
        raise InputError(f"{path}: not a study analysis (schema {data.get('schema')!r}); make one with "
                         "`matbench study analyze`")
    return data


def _f(x: float | None, d: int = 2) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def render_tables(a: dict[str, Any], fmt: str = "md") -> str:
    """The human-preference ranking and the metric agreement as Markdown, LaTeX or CSV."""
    smoke = " (smoke)"
    rank_rows = [[str(r["rank"]), r["system"] + (smoke if r["smoke"] else ""), _f(r["score"]),
                  f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]", f"{r['wins']}/{r['comparisons']}"]
                 for r in a["ranking"]]
    agree_rows = [[METRIC_INFO[g["metric"]].label, f"{100 * g['rate']:.1f}",
                   f"[{100 * g['ci'][0]:.1f}, {100 * g['ci'][1]:.1f}]", str(g["n"])] for g in a["metric_agreement"]]
    rank_head = ["#", "Model", "Bradley–Terry score", "95% CI", "wins/comparisons"]
    agree_head = ["Metric", "agrees with people (%)", "95% CI", "trials"]
    n_part = len(a["participants"]) - len(a["excluded"])
    caption = (f"User study (2AFC): {a['n_choices']} choices from {n_part} participant(s); "
               f"{len(a['excluded'])} excluded by attention checks.")
    if fmt == "csv":
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow(["table"] + rank_head)
        wr.writerows([["ranking"] + r for r in rank_rows])
        wr.writerow(["table"] + agree_head)
        wr.writerows([["metric_agreement"] + r for r in agree_rows])
        return buf.getvalue()
    if fmt == "latex":
        def tex(head: list[str], rows: list[list[str]], cap: str) -> str:
            esc = [[c.replace("%", r"\%").replace("_", r"\_") for c in r] for r in [head] + rows]
            body = " \\\\\n".join(" & ".join(r) for r in esc[1:])
            return ("\\begin{table}[t]\n\\centering\n\\caption{" + cap.replace("%", r"\%") + "}\n"
                    "\\begin{tabular}{" + "l" * len(head) + "}\n\\toprule\n" + " & ".join(esc[0])
                    + " \\\\\n\\midrule\n" + body + " \\\\\n\\bottomrule\n\\end{tabular}\n\\end{table}\n")
        return tex(rank_head, rank_rows, caption) + "\n" + tex(agree_head, agree_rows,
                                                               "Per-image metrics against human choices.")

    def md(head: list[str], rows: list[list[str]]) -> str:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    out = [f"**{caption}**", "", md(rank_head, rank_rows), "", md(agree_head, agree_rows)]
    if a.get("smoke"):
        out += ["", "SMOKE: some results came from runs with random weights; not comparable with real results."]
    return "\n".join(out) + "\n"


def render_text(a: dict[str, Any]) -> str:
    lines = [render_tables(a, "md").rstrip(), "", "Participants:"]
    for p in a["participants"]:
        rate = "no checks" if p["attention_rate"] is None else (
            f"attention {p['attention_passed']}/{p['attention_checks']}")
        lines.append(f"  {p['participant']}: {p['responses']} responses, {rate}"
                     + ("  EXCLUDED" if p["excluded"] else ""))
    lines.append("Pairs (how often A was preferred):")
    for p in a["pairs"]:
        lo, hi = p["a_rate_ci"]
        lines.append(f"  {p['a']} vs {p['b']}: {p['a_wins']}/{p['n']} = {100 * p['a_rate']:.1f}% "
                     f"[{100 * lo:.1f}, {100 * hi:.1f}]")
    return "\n".join(lines)
