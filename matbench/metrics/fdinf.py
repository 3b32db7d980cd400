"""FD∞ (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them"): FID is
biased upwards by a term that is (to first order) linear in 1/N, so FID computed on several numbers N of result
images is fitted linearly in 1/N and extrapolated to 1/N = 0.

Procedure (as the authors' score_infinity.py): the ground-truth statistics use every image; the results are
subsampled, for each of N_POINTS sizes an independent random subset without replacement (here numpy's PCG64
seeded with the evaluation's seed, sizes in increasing order); the Fréchet distance of each subset to the
ground truth is fitted by ordinary least squares FD(N) = intercept + slope / N, and FD∞ = intercept.
Sizes: the authors use 15 sizes evenly spaced from 5000 to 50000, i.e. from a tenth of the set; here
np.linspace(min(5000, max(2, N // 10)), N, 15) rounded down, duplicates dropped, so large sets get the
official sizes and small sets keep the 1:10 span (at least 2 images per subset). Fewer than 2 distinct sizes
(N < 3): no value (NaN).
Interval: the 95 % interval of the fitted intercept from the regression's standard error (Student t with
k - 2 degrees of freedom for k sizes; none for k < 3). It reflects the scatter of the subset FDs around the
line, not the sampling of the ground-truth images ("fit-se").
The fit (sizes, values, slope, intercept, standard error) is recorded in the value's extra.

Distances are the one Fréchet distance of matbench.metrics.fd (its feature_stats and frechet_distance, with the
evaluation's covariance convention). When the ground truth has fewer images than feature dimensions, the same
distance is computed in its N×N form (as fd.fd_statistic), which needs no D×D matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats as sps

from matbench.metrics.fd import fd_statistic, fd_value, feature_stats, frechet_distance
from matbench.metrics.registry import INCEPTION, DatasetContext, register_group, register_metric
from matbench.results import MetricValue

N_POINTS = 15
MIN_START = 5000  # the authors' smallest subset


def subset_sizes(n: int, n_points: int = N_POINTS) -> np.ndarray:
    """The result-subset sizes FD∞ fits on, for n images (module doc)."""
    start = min(MIN_START, max(2, n // 10))
    return np.unique(np.linspace(start, n, n_points).astype(np.int64))


def subset_fds(real: np.ndarray, fake: np.ndarray, sizes: np.ndarray, seed: int, convention: str,
               device: str = "cpu") -> tuple[list[np.ndarray], np.ndarray]:
    """(subsets, FDs): for each size a random subset of fake rows without replacement and its FD to all of real."""
    rng = np.random.default_rng(seed)
    subsets = [np.sort(rng.choice(fake.shape[0], int(s), replace=False)) for s in sizes]
    n, d = real.shape
    if n >= d:
        mu1, s1 = feature_stats(real, convention)
        vals = [frechet_distance(mu1, s1, *feature_stats(fake[i], convention)) for i in subsets]
        return subsets, np.asarray(vals, dtype=np.float64)
    # N×N form: tr sqrt(S1 S2) = sqrt(c1 c2) ||A Bᵀ||_* for centred A, B (fd.fd_statistic, unpaired sizes)
    dev = torch.device(device)
    r = torch.as_tensor(real, dtype=torch.float64, device=dev)
    mr = r.mean(0)
    a = r - mr
    c1 = 1.0 / (n if convention == "mat" else n - 1)
    tr1 = c1 * float((a * a).sum())
    f_all = torch.as_tensor(fake, dtype=torch.float64, device=dev)
    vals = []
    for i in subsets:
        f = f_all.index_select(0, torch.as_tensor(i, dtype=torch.long, device=dev))
        mf = f.mean(0)
        b = f - mf
        c2 = 1.0 / (f.shape[0] if convention == "mat" else f.shape[0] - 1)
        tr = (c1 * c2) ** 0.5 * float(torch.linalg.svdvals(a @ b.T).sum())
        diff = mr - mf
        vals.append(float(diff @ diff) + tr1 + c2 * float((b * b).sum()) - 2.0 * tr)
    return subsets, np.asarray(vals, dtype=np.float64)


def linear_fit(sizes: np.ndarray, values: np.ndarray, at: float | None = None) -> dict[str, float | None]:
    """Least squares values = intercept + slope / sizes: intercept, slope, the intercept's standard error and
    its 95 % t interval (None below 3 sizes). With `at` (a number of images) also the line's value there and its
    standard error and 95 % t interval ("at", "at_se", "at_low", "at_high"; at = infinity is the intercept)."""
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    k = x.size
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    se = lo = hi = None
    if k >= 3:
        resid = y - (intercept + slope * x)
        s2 = float((resid ** 2).sum()) / (k - 2)
        se = float(np.sqrt(s2 * (1.0 / k + xm * xm / sxx)))
        t = float(sps.t.ppf(0.975, k - 2))
        lo, hi = intercept - t * se, intercept + t * se
    out: dict[str, float | None] = {"intercept": intercept, "slope": slope, "se": se, "ci_low": lo, "ci_high": hi}
    if at is not None:
        x0 = 1.0 / at
        out["at"] = intercept + slope * x0
        out["at_se"] = out["at_low"] = out["at_high"] = None
        if k >= 3:  # the standard error of the line's mean at x0
            se0 = float(np.sqrt(s2 * (1.0 / k + (x0 - xm) ** 2 / sxx)))
            out.update(at_se=se0, at_low=out["at"] - t * se0, at_high=out["at"] + t * se0)
    return out


def paired_subset_fds(real: np.ndarray, fake: np.ndarray, sizes: np.ndarray, repeats: int, seed: int,
                      convention: str, device: str = "cpu") -> list[list[float]]:
    """For each size, the FDs of `repeats` random paired subsets (the same rows of real and fake, without
    replacement): what an evaluation on that many image pairs would give. The whole set is drawn once; subsets of
    at least D rows take a D x D eigendecomposition each, so they get at most 3 draws."""
    rng = np.random.default_rng(seed)
    n, d = real.shape
    out = []
    for s in (int(x) for x in sizes):
        draws = 1 if s == n else repeats if s < d else min(repeats, 3)
        vals = []
        for _ in range(draws):
            i = np.sort(rng.choice(n, size=s, replace=False))
            r, f = real[i], fake[i]
            vals.append(fd_value(r, f, convention, fd_statistic(r, f, convention, device)))
        out.append(vals)
    return out


def fd_infinity(real: np.ndarray, fake: np.ndarray, seed: int = 0, convention: str = "mat", device: str = "cpu",
                n_points: int = N_POINTS) -> dict[str, object]:
    """FD∞ of result features `fake` against ground-truth features `real` (module doc): the fit and its inputs."""
    sizes = subset_sizes(fake.shape[0], n_points)
    if sizes.size < 2:
        return {"value": float("nan"), "sizes": sizes.tolist(), "values": [], "slope": None, "intercept": None,
                "se": None, "ci_low": None, "ci_high": None}
    _, vals = subset_fds(real, fake, sizes, seed, convention, device)
    fit = linear_fit(sizes, vals)
    return {"value": fit["intercept"], "sizes": sizes.tolist(), "values": vals.tolist(), **fit}


def _make(name: str, extractor: str):
    def evaluate(ctx: DatasetContext) -> dict[str, MetricValue]:
        real, fake = ctx.features(extractor)
        ev = ctx.ev
        r = fd_infinity(real, fake, ctx.seed, ev.fid_convention, ev.device)
        extra = {"extractor": ev.extractor_name(extractor), "ci_method": "fit-se", "n_points": N_POINTS,
                 **{k: r[k] for k in ("sizes", "values", "slope", "intercept", "se")}}
        return {name: MetricValue(float(r["value"]), r["ci_low"], r["ci_high"], ctx.n, convention=ev.fid_convention,
                                  extra=extra)}

    return evaluate


register_group("fid_inf", extractor=INCEPTION, dataset=_make("fid_inf", INCEPTION))
register_metric("fid_inf", higher_is_better=False, label="FID∞", extractor=INCEPTION, group="fid_inf",
                interval="fit-se", order=140,
                doc="FID extrapolated to infinitely many images, linear fit in 1/N (Chong & Forsyth 2020)")(None)
register_group("fd_dinov2_inf", extractor="dinov2-vitl14", dataset=_make("fd_dinov2_inf", "dinov2-vitl14"))
register_metric("fd_dinov2_inf", higher_is_better=False, label="FD_DINOv2∞", extractor="dinov2-vitl14",
                group="fd_dinov2_inf", interval="fit-se", order=141,
                doc="FD on DINOv2 ViT-L/14 extrapolated to infinitely many images (Chong & Forsyth 2020)")(None)
