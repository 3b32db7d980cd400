"""How a confidence interval is shown, decided once from (metric, value, lo, hi, n) for every output format.

- symmetric: `± half-width` (the two sides agree within 10 % of the width, or at display precision);
- asymmetric: `[lo, hi]` (e.g. FID's bias-corrected bootstrap, whose interval need not be centred on the value,
  and may even exclude it);
- unsupported: a zero-width interval (every bootstrap resample or KID subset gave the same value, e.g. KID with
  n = 8 where each subset is the whole set, or precision/recall saturated at 1.0) or one from fewer than two
  images. Such an interval says nothing about the uncertainty: it is never shown as exact, but marked with a
  dagger and a reason;
- none: no interval recorded.
HTML, Markdown, LaTeX and CSV all call `interval()`, so they cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from matbench.metrics import METRIC_INFO
from matbench.results import MetricValue, zero_width

DAGGER = "†"
# Sides differing by more than this fraction of the width make an interval asymmetric.
ASYMMETRY = 0.10


def _disp(metric: str, v: float) -> str:
    info = METRIC_INFO[metric]
    return f"{v * info.scale:.{info.digits}f}"


@dataclass(frozen=True)
class Interval:
    kind: str  # "none" | "symmetric" | "asymmetric" | "unsupported"
    lo: str | None = None  # display bounds (the recorded ones, also for "unsupported")
    hi: str | None = None
    half: str | None = None  # display half-width, for "symmetric"
    reason: str | None = None  # why "unsupported"

    @property
    def text(self) -> str:
        """Plain text after the value: '± 0.10', '[2.80, 3.50]', '†' or ''."""
        if self.kind == "symmetric":
            return f"± {self.half}"
        if self.kind == "asymmetric":
            return f"[{self.lo}, {self.hi}]"
        if self.kind == "unsupported":
            return DAGGER
        return ""


def interval(metric: str, value: float | None, lo: float | None, hi: float | None, n: int | None) -> Interval:
    """Classify and format the interval of one value (stored units in, display units out)."""
    if value is None or lo is None or hi is None:
        return Interval("none")
    if not all(math.isfinite(x) for x in (value, lo, hi)):
        return Interval("none")
    lo_s, hi_s = _disp(metric, lo), _disp(metric, hi)
    n_s = "?" if n is None else str(n)
    if n is not None and n < 2:
        return Interval("unsupported", lo_s, hi_s, reason=f"n = {n_s} image cannot support an interval")
    width = hi - lo
    if zero_width(value, lo, hi):
        return Interval("unsupported", lo_s, hi_s, reason=(
            f"zero-width interval: every resample of the n = {n_s} images gave the same value for this metric "
            "(no spread to report; not an exact value)"))
    below, above = value - lo, hi - value
    # Asymmetric: the value lies outside, or the sides differ by >10 % of the width and visibly at display
    # precision (a bootstrap percentile interval is never exactly centred; that alone is not worth [lo, hi]).
    visible = float(_disp(metric, abs(below - above))) != 0.0
    if below < 0 or above < 0 or (abs(below - above) > ASYMMETRY * width and visible):
        return Interval("asymmetric", lo_s, hi_s)
    half = _disp(metric, width / 2)
    if float(half) == 0.0:  # narrower than the display precision: do not print "± 0.00"
        digits = METRIC_INFO[metric].digits
        half = "<" + f"{10.0 ** -digits:.{digits}f}"
    return Interval("symmetric", lo_s, hi_s, half=half)


def of(metric: str, mv: MetricValue | None) -> Interval:
    if mv is None:
        return Interval("none")
    return interval(metric, mv.value, mv.ci_low, mv.ci_high, mv.n)


def footnote(reasons: list[str]) -> str:
    """One sentence for a table's † cells (distinct reasons joined)."""
    uniq = list(dict.fromkeys(reasons))
    return f"{DAGGER} No confidence interval shown: " + "; ".join(uniq) + "."
