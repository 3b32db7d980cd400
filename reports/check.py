"""Regression gate: compare a current run with a baseline run, metric by metric.

Tolerances are ABSOLUTE and in the units stored in metrics.json (fractions for P-IDS/U-IDS, so
pids=0.005 allows half a percentage point; FID points for fid). Direction-aware: a metric fails only
when it moved in the worse direction by more than its tolerance; a better value never fails.

Statistical gate (issue 22): when a job's baseline and current results both have per-image rows (per_image.csv,
and features.npz for Fréchet distances) for the same image ids and masks, each metric that has a paired interval
is judged by matbench.paired.regression_test instead: a regression is a move in the worse direction beyond the
tolerance AND significant at alpha (one-sided paired bootstrap over image indices). Metrics without a paired
interval, and jobs without pairable rows, fall back to the tolerance alone, and the output says so per job.

Exit codes: 0 all within tolerance, 1 regression (or a baseline metric/job missing from the current
run), 2 protocol mismatch, smoke-vs-real comparison, nothing in common, or an invalid baseline (a structure
that is not a metrics.json, a NaN value: InputError, one line naming the file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from matbench.reports.leaderboard import entry_for, job_field, job_resolution

from matbench.comparison import Side, load_side
from matbench.comparison import compare as paired_compare
from matbench.errors import InputError, SpecError
from matbench.metrics import METRIC_INFO
from matbench.paired import Paired, regression_test
from matbench.results import PROTOCOL_FIELDS, ResultRecord

OK, REGRESSION, MISMATCH = 0, 1, 2
EPS = 1e-12  # float noise allowance on top of the tolerance

# Defaults for metrics not named in --tolerance (absolute, stored units).
DEFAULT_TOLERANCE: dict[str, float] = {
    "fid": 0.05, "kid": 0.0005, "pids": 0.005, "uids": 0.005, "lpips": 0.002, "precision": 0.005,
    "recall": 0.005, "psnr": 0.05, "ssim": 0.002, "l1": 0.001, "diversity": 0.005,
}


def parse_tolerance(spec: str | None) -> dict[str, float]:
    """'fid=0.05,pids=0.005' -> dict merged over DEFAULT_TOLERANCE; 'default=X' sets unnamed metrics."""
    tol = dict(DEFAULT_TOLERANCE)
    if not spec:
        return tol
    default = None
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, val = part.partition("=")
        name = name.strip().lower()
        if not sep:
            raise SpecError(f"--tolerance: '{part}' is not NAME=VALUE")
        try:
            x = float(val)
        except ValueError:
            raise SpecError(f"--tolerance: value of '{name}' is not a number: {val!r}") from None
        if x < 0:
            raise SpecError(f"--tolerance: '{name}' must be >= 0, got {x}")
        if name == "default":
            default = x
        elif name in METRIC_INFO:
            tol[name] = x
        else:
            raise SpecError(f"--tolerance: unknown metric '{name}'; known: {', '.join(METRIC_INFO)}, default")
    if default is not None:
        named = {p.partition("=")[0].strip().lower() for p in spec.split(",")}
        for m in METRIC_INFO:
            if m not in named:
                tol[m] = default
    return tol


def job_key(r: ResultRecord) -> tuple[str, str, str, int, int]:

    model = entry_for(r).model if r.path else job_field(r, "model")
    return (job_field(r, "dataset"), job_field(r, "maskset"), model, job_resolution(r) or 0,
            int(r.job.get("sample") or 0))


def key_str(k: tuple[str, str, str, int, int]) -> str:
    s = f"{k[0]}/{k[1]}/{k[2]}@{k[3]}"
    return s + (f" sample {k[4]}" if k[4] else "")


@dataclass
class Comparison:
    job: str
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: float
    higher_is_better: bool
    status: str  # "ok" | "better" | "regressed" | "missing"
    test: str = "tolerance"  # "paired" (tolerance AND one-sided paired test at alpha) | "tolerance" (alone)
    ci: tuple[float, float] | None = None  # paired: interval of delta at level 1 - 2 alpha (ends = one-sided bounds)
    p_value: float | None = None  # paired: one-sided p of H0 "worse by at most the tolerance"
    n: int | None = None  # paired: images


@dataclass(frozen=True)
class GateStats:
    """Options of the paired gate test: alpha (one-sided), bootstrap resamples, seed of the image draws."""

    alpha: float = 0.05
    n_resamples: int = 2000
    seed: int = 0


@dataclass
class Pairing:
    """How one job was gated: paired over n images (with the metrics left to the tolerance alone, and why), or
    tolerance only (why)."""

    job: str
    paired: bool
    n: int | None = None
    why: str | None = None  # unpaired: the reason
    tolerance_only: dict[str, str] = field(default_factory=dict)  # paired job: metric -> why it has no paired test


@dataclass
class CheckResult:
    exit_code: int
    comparisons: list[Comparison] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # protocol/smoke mismatches (exit 2)
    notes: list[str] = field(default_factory=list)
    smoke_vs_smoke: list[str] = field(default_factory=list)  # jobs whose both sides are smoke: a pipeline check only
    pairing: list[Pairing] = field(default_factory=list)  # per compared job, with the paired gate (stats given)
    alpha: float | None = None

    @property
    def status(self) -> str:
        return {OK: "ok", REGRESSION: "regression", MISMATCH: "mismatch"}[self.exit_code]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "problems": self.problems,
                "notes": self.notes, "smoke_vs_smoke": self.smoke_vs_smoke, "alpha": self.alpha,
                "pairing": [asdict(p) for p in self.pairing],
                "comparisons": [asdict(c) for c in self.comparisons]}


def _side(r: ResultRecord, label: str) -> Side | str:
    """The per-image side of a record read from a folder, or why there is none."""
    if r.path is None:
        return f"{label} was not read from a result folder"
    folder = r.path.parent if r.path.is_file() else r.path
    try:
        side = load_side(str(folder))
    except InputError as e:
        return str(e)
    side.label = f"{label} ({folder})"
    return side


def paired_results(base: ResultRecord, cur: ResultRecord, stats: GateStats) -> tuple[dict[str, Paired], Pairing]:
    """Paired comparisons (current against baseline) of one job's metrics, or none with the reason."""
    job = key_str(job_key(base))
    sides = [_side(r, label) for r, label in ((base, "baseline"), (cur, "current"))]
    for s in sides:
        if isinstance(s, str):
            return {}, Pairing(job, False, why=s)
    try:
        c = paired_compare(sides[0], sides[1], alpha=stats.alpha, n_resamples=stats.n_resamples,  # type: ignore
                           seed=stats.seed)
    except InputError as e:
        return {}, Pairing(job, False, why=str(e))
    if not c.metrics:
        return {}, Pairing(job, False, why="no metric has a paired interval: " + "; ".join(
            f"{k}: {v}" for k, v in c.skipped.items()))
    return c.metrics, Pairing(job, True, n=c.n, tolerance_only=dict(c.skipped))


def _paired_status(job: str, m: str, r: Paired, t: float, hib: bool, alpha: float) -> Comparison:
    g = regression_test(r, t, hib, alpha)
    worse_by = -r.delta if hib else r.delta
    status = "regressed" if g.regressed else ("better" if worse_by < 0 else "ok")
    return Comparison(job, m, r.a, r.b, r.delta, t, hib, status, "paired", g.ci, g.p_value, r.n)


def compare(current: Sequence[ResultRecord], baseline: Sequence[ResultRecord],
            tolerance: dict[str, float] | None = None, stats: GateStats | None = None) -> CheckResult:
    """Gate current against baseline per job and metric; with `stats`, jobs with per-image rows for the same
    images and masks on both sides use the paired test (module doc), the rest the tolerances alone."""
    tol = tolerance if tolerance is not None else dict(DEFAULT_TOLERANCE)
    check_baseline_values(baseline)
    cur = _index(current, "current")
    base = _index(baseline, "baseline")
    res = CheckResult(exit_code=OK, alpha=None if stats is None else stats.alpha)
    common = [k for k in base if k in cur]
    if not common:
        res.problems.append("no job of the baseline appears in the current run "
                            f"(baseline: {', '.join(key_str(k) for k in base) or 'none'}; "
                            f"current: {', '.join(key_str(k) for k in cur) or 'none'})")
    for k in base:
        if k not in cur:
            res.comparisons.append(Comparison(key_str(k), "*", None, None, None, 0.0, False, "missing"))
    for k in cur:
        if k not in base:
            res.notes.append(f"{key_str(k)}: new job, not in the baseline")
    for k in common:
        b, c = base[k], cur[k]
        if b.smoke != c.smoke:
            res.problems.append(f"{key_str(k)}: smoke-vs-real comparison (baseline smoke={b.smoke}, "
                                f"current smoke={c.smoke}); numbers from random weights cannot gate real ones")
            continue
        if b.smoke:  # both smoke: allowed (a CI smoke gate), but said, since it gates no real number
            res.smoke_vs_smoke.append(key_str(k))
        diff = [f for f in PROTOCOL_FIELDS if b.protocol.get(f) != c.protocol.get(f)]
        if diff:
            res.problems.extend(f"{key_str(k)}: protocol field '{f}' differs: baseline "
                                f"{b.protocol.get(f)!r} vs current {c.protocol.get(f)!r}" for f in diff)
            continue
        paired: dict[str, Paired] = {}
        if stats is not None:
            paired, pairing = paired_results(b, c, stats)
            res.pairing.append(pairing)
        for m, bv in b.metrics.items():
            if m not in METRIC_INFO or bv.value is None:
                continue
            info = METRIC_INFO[m]
            t = tol.get(m, 0.0)
            cv = c.metrics.get(m)
            if m in paired and stats is not None and cv is not None and cv.value is not None:
                res.comparisons.append(_paired_status(key_str(k), m, paired[m], t, info.higher_is_better,
                                                      stats.alpha))
                continue
            if cv is None or cv.value is None:
                res.comparisons.append(Comparison(key_str(k), m, bv.value, None, None, t, info.higher_is_better,
                                                  "missing"))
                continue
            delta = cv.value - bv.value
            worse_by = -delta if info.higher_is_better else delta
            if not math.isfinite(cv.value) and math.isfinite(bv.value):
                status = "regressed"  # NaN/inf where the baseline had a number never passes
            elif not math.isfinite(worse_by):
                status = "ok" if cv.value == bv.value or (cv.value != cv.value and bv.value != bv.value) \
                    else "regressed"
            else:
                status = "regressed" if worse_by > t + EPS else ("better" if worse_by < 0 else "ok")
            res.comparisons.append(Comparison(key_str(k), m, bv.value, cv.value, delta, t, info.higher_is_better,
                                              status))
        for m in c.metrics:
            if m in METRIC_INFO and m not in b.metrics:
                res.notes.append(f"{key_str(k)}: metric '{m}' is new, not in the baseline")
    if res.problems:
        res.exit_code = MISMATCH
    elif any(x.status in ("regressed", "missing") for x in res.comparisons):
        res.exit_code = REGRESSION
    return res


def check_baseline_values(baseline: Sequence[ResultRecord]) -> None:
    """A NaN in the baseline is a broken baseline (InputError, exit 2), not a regression of the current run."""
    for r in baseline:
        for m, v in r.metrics.items():
            if isinstance(v.value, float) and math.isnan(v.value):
                raise InputError(f"{r.path or 'baseline'}: metric '{m}' of {key_str(job_key(r))} is NaN; "
                                 "a baseline value must be a number (or null to skip it)")


def _index(records: Sequence[ResultRecord], which: str) -> dict[tuple[str, str, str, int, int], ResultRecord]:
    out: dict[tuple[str, str, str, int, int], ResultRecord] = {}
    for r in records:
        k = job_key(r)
        if k in out:
            raise SpecError(f"{which}: two results for {key_str(k)}: {out[k].path} and {r.path}")
        out[k] = r
    return out


def _num(metric: str, x: float | None) -> str:
    if x is None:
        return "—"
    info = METRIC_INFO.get(metric)
    digits = (info.digits + 2) if info else 4
    return f"{x:.{digits}f}"


def _pairing_line(p: Pairing, alpha: float | None, verbose: bool) -> str:
    if not p.paired:
        return f"UNPAIRED   {p.job}: fixed tolerances only, no statistical test ({p.why})"
    line = (f"PAIRED     {p.job}: paired test over n = {p.n} images (worse beyond the tolerance and significant "
            f"at alpha = {alpha:g}, one-sided)")
    if p.tolerance_only:
        why = "; ".join(f"{k}: {v}" for k, v in p.tolerance_only.items()) if verbose else \
            ", ".join(p.tolerance_only)
        line += f"; tolerance only for {why}"
    return line


def _signed(metric: str, x: float) -> str:
    info = METRIC_INFO.get(metric)
    digits = (info.digits + 2) if info else 4
    return f"{x:+.{digits}f}"


def format_text(res: CheckResult, verbose: bool = False) -> str:
    """A readable diff: every failing line, then a one-line summary (all lines with verbose)."""
    lines: list[str] = []
    for p in res.problems:
        lines.append(f"MISMATCH   {p}")
    lines.extend(_pairing_line(p, res.alpha, verbose) for p in res.pairing)
    if res.alpha is None and res.comparisons:
        lines.append("UNPAIRED   all jobs: fixed tolerances only, no statistical test (no paired test was run for "
                     "this baseline)")
    shown = [c for c in res.comparisons if verbose or c.status in ("regressed", "missing")]
    for c in shown:
        if c.status == "missing" and c.metric == "*":
            lines.append(f"MISSING    {c.job}: in the baseline, not in the current run")
            continue
        if c.status == "missing":
            lines.append(f"MISSING    {c.job} {c.metric}: baseline {_num(c.metric, c.baseline)}, "
                         "absent from the current run")
            continue
        direction = "higher is better" if c.higher_is_better else "lower is better"
        if c.test == "paired" and c.ci is not None and c.p_value is not None:
            level = f"{round(100 * (1 - 2 * (res.alpha or 0.05)), 6):g}"
            lines.append(f"{c.status.upper():<10} {c.job} {c.metric}: {_num(c.metric, c.baseline)} -> "
                         f"{_num(c.metric, c.current)} ({c.delta:+.6g}; {level} % interval "
                         f"[{_signed(c.metric, c.ci[0])}, {_signed(c.metric, c.ci[1])}], p = {c.p_value:.3g}; "
                         f"tolerance {c.tolerance:g}, {direction})")
            continue
        lines.append(f"{c.status.upper():<10} {c.job} {c.metric}: {_num(c.metric, c.baseline)} -> "
                     f"{_num(c.metric, c.current)} ({c.delta:+.6g}; tolerance {c.tolerance:g}, {direction})")
    if res.smoke_vs_smoke:
        lines.append(f"SMOKE      smoke vs smoke for {len(res.smoke_vs_smoke)} job(s): both sides ran on random "
                     "weights, so this checks the pipeline, not real numbers")
    if verbose:
        lines.extend(f"note       {n}" for n in res.notes)
    counts = {s: sum(1 for c in res.comparisons if c.status == s) for s in ("ok", "better", "regressed", "missing")}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    verdict = {OK: "PASS", REGRESSION: "FAIL (regression)", MISMATCH: "FAIL (not comparable)"}[res.exit_code]
    lines.append(f"{verdict}: {summary}; {len(res.problems)} mismatch(es)")
    return "\n".join(lines)


def format_json(res: CheckResult) -> str:
    return json.dumps(res.to_json(), indent=2)
