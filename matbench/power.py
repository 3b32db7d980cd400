"""Sample size of a paired comparison: how many images detect a given delta, and the smallest delta a run detects.

Normal approximation of a two-sided paired test at level alpha with power 1 - beta: the paired estimate of
delta = B - A has standard error sd / sqrt(n), where sd is the standard deviation of the per-image contributions
(per-image differences b_i - a_i; for a Fréchet distance the differences of the influence values, whose mean is
the linear part of delta, matbench.metrics.fd.fd_influence), so

    n_needed = ceil(((z_{1 - alpha/2} + z_{1 - beta}) * sd / delta)^2),   delta_detectable = (z + z) * sd / sqrt(n).

Assumptions: the pilot's images are exchangeable with the images that will be added (the per-image sd carries
over), and delta itself does not depend on n (a Fréchet distance has a small-sample bias of order D / n, so its
delta moves a little with n).

One evaluation alone (no pair): the paired sd is unknown. With sd_A the spread of A's own contributions and
equal spreads for B, var(b - a) = 2 sd_A^2 (1 - rho) <= 2 sd_A^2 whenever the two models' contributions are not
negatively correlated (rho >= 0), so sqrt(2) * sd_A is a conservative proxy. Real pairs share most of the image
effect (rho well above 0), so a pilot pair gives a much smaller, sharp answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

SINGLE_PROXY = math.sqrt(2.0)  # sd of b - a <= sqrt(2) sd_A for rho >= 0 (module doc)


def z_sum(alpha: float = 0.05, power: float = 0.8) -> float:
    """z_{1 - alpha/2} + z_{power}: the two-sided test's critical value plus the power quantile."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    nd = NormalDist()
    return nd.inv_cdf(1.0 - alpha / 2.0) + nd.inv_cdf(power)


def required_n(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Images needed to detect |delta| with the given power (module doc); at least 2."""
    if delta == 0.0:
        raise ValueError("delta must be non-zero")
    return max(2, math.ceil((z_sum(alpha, power) * sd / abs(delta)) ** 2))


def detectable_delta(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |delta| that n images detect with the given power."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return z_sum(alpha, power) * sd / math.sqrt(n)


@dataclass
class Power:
    """One metric's answer: the per-image sd used, where it came from, and the two directions of the formula."""

    sd: float
    source: str  # "paired" | "single (sqrt(2) x own spread, conservative for rho >= 0)"
    n: int
    detectable: float
    needed: dict[float, int] = field(default_factory=dict)  # asked delta -> images

    def to_json(self) -> dict[str, object]:
        return {"sd": self.sd, "source": self.source, "n": self.n, "detectable_delta": self.detectable,
                "needed": {f"{d:g}": k for d, k in self.needed.items()}}


def power_of(contrib: np.ndarray, paired: bool, deltas: list[float], alpha: float = 0.05, power: float = 0.8
             ) -> Power:
    """Power from per-image contributions (differences when paired, one model's own otherwise)."""
    c = np.asarray(contrib, dtype=np.float64).ravel()
    if c.size < 2:
        raise ValueError(f"need at least 2 images, got {c.size}")
    sd = float(c.std(ddof=1))
    source = "paired"
    if not paired:
        sd *= SINGLE_PROXY
        source = "single (sqrt(2) x own spread, conservative for rho >= 0)"
    return Power(sd, source, int(c.size), detectable_delta(sd, c.size, alpha, power),
                 {d: required_n(sd, d, alpha, power) for d in deltas})
