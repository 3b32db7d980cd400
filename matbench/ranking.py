"""Rank confidence and ranking robustness for models evaluated on the same images and masks. Pure numpy on loaded
results (matbench.comparison.Side); no report code.

Rank confidence: one set of joint paired resamples of the image indices (the same draws as `matbench compare`,
shared by every model, the ground truth and every metric) re-scores each model: per-image metrics by the resampled
mean, Fréchet distances by the resampled mean of their influence values (linearised) or, for fewer images than
feature dimensions (up to paired.EXACT_MAX_N), exactly, as compare does. From these resamples each model gets its
probability of being ranked first and a 95 % rank interval (paired.rank_probabilities), and each pair of
neighbours in the ranking by the recorded values gets a paired two-sided test of their difference; the neighbour
p-values are Holm-corrected over the pairs, and a pair is "separated" when its adjusted p-value is <= alpha.

Ranking robustness: Kendall's tau-b between the rankings by each metric, and how often random subsets of N/2 and
N/4 images (drawn without replacement) keep the full-N order (all models, the top model, the top-2 order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from matbench.comparison import _FRECHET, _REAL_FEATURES_RTOL, Side, check_comparable  # compare's own rules
from matbench.errors import InputError
from matbench.features.files import FEATURES_FILE
from matbench.metrics import METRIC_INFO
from matbench.metrics.fd import RealFactor, fd, fd_influence, fd_statistic
from matbench.paired import Resampling, fd_method, holm, index_chunks, interval, rank_probabilities

DEFAULT_RESAMPLING = Resampling()
FRACTIONS = (0.5, 0.25)  # subsample sizes N/2, N/4 for rank stability
# Metric families compared by `robustness` (the ones present are used; the sort metric is the reference).
ROBUSTNESS_METRICS = ("fid", "fd_dinov2", "clip_fid", "fid_pt", "kid", "cmmd", "pids", "uids", "lpips", "psnr",
                      "ssim", "l1")
_SUBSAMPLE_EXACT_FLOPS = 2e10  # exact Fréchet distances on subsamples up to about this much work, else linearised


def is_frechet(name: str) -> bool:
    """Whether a metric is a Fréchet distance on features.npz (FID, FD-DINOv2, CLIP-FID, ...); FID∞ and FD∞ are
    extrapolations over several set sizes, not the distance of these rows, and are left out."""
    return name in _FRECHET or name.startswith("fd_") and not name.endswith("_inf")


@dataclass(frozen=True)
class RankConfidence:
    """Rank confidence of one metric over a group of models, best first by the recorded values."""

    metric: str
    order: tuple[str, ...]  # model labels, best first (ties by label)
    values: tuple[float, ...]
    p_first: tuple[float, ...]  # P(rank 1) over the resamples
    rank_lo: tuple[int, ...]  # rank interval at level 1 - alpha
    rank_hi: tuple[int, ...]
    p_next: tuple[float | None, ...]  # Holm-adjusted p-value against the next model (None for the last)
    separated: tuple[bool | None, ...]  # separated from the next at alpha (None for the last)
    n: int
    method: str
    alpha: float
    n_resamples: int

    def of(self, label: str) -> dict[str, object] | None:
        """{"p_rank1", "rank_lo", "rank_hi", "p_next", "separated_from_next"} of one model, None if not ranked."""
        if label not in self.order:
            return None
        i = self.order.index(label)
        return {"p_rank1": self.p_first[i], "rank_lo": self.rank_lo[i], "rank_hi": self.rank_hi[i],
                "p_next": self.p_next[i], "separated_from_next": self.separated[i]}


def order_of(labels: Sequence[str], values: Sequence[float], higher_is_better: bool) -> list[int]:
    """Indices best first by value (ties by label), the leaderboard's order."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted(range(len(labels)), key=lambda i: (sign * float(values[i]), labels[i]))


def _align(sides: Sequence[Side]) -> list[np.ndarray] | str:
    """Row permutations putting every side in the first side's image order, or why they cannot be paired."""
    try:
        return [np.arange(len(sides[0].rows))] + [check_comparable(sides[0], s) for s in sides[1:]]
    except InputError as e:
        return str(e)


def _values(sides: Sequence[Side], metric: str) -> np.ndarray | str:
    out = []
    for s in sides:
        mv = s.record.metrics.get(metric)
        if mv is None or mv.value is None or not np.isfinite(mv.value):
            return f"{s.label} has no {metric} value"
        out.append(float(mv.value))
    return np.array(out)


def _per_image(sides: Sequence[Side], perms: Sequence[np.ndarray], metric: str) -> np.ndarray | str:
    """Per-image values [n, k] in the first side's order."""
    cols = []
    for s, p in zip(sides, perms, strict=True):
        if metric not in s.rows.columns:
            return f"no {metric!r} column in {s.label}'s per_image.csv"
        v = s.rows[metric].to_numpy(dtype=np.float64)[p]
        bad = np.count_nonzero(~np.isfinite(v))
        if bad:
            return f"non-finite per-image {metric} values in {s.label} ({bad} image(s))"
        cols.append(v)
    return np.stack(cols, axis=1)


def _features(sides: Sequence[Side], perms: Sequence[np.ndarray], metric: str
              ) -> tuple[np.ndarray, list[np.ndarray], str] | str:
    """(real [n, D], fakes [n, D] per side, convention) of a Fréchet distance, or why not."""
    missing = [s.label for s in sides if not s.has_features]
    if missing:
        return (f"dataset-level: needs {FEATURES_FILE} for every model, missing for {', '.join(missing)} "
                "(eval --save-features, or save_features = true in a run spec)")
    ext = {s.record.metrics[metric].extra.get("extractor") for s in sides}
    if len(ext) != 1 or None in ext:
        return f"{metric}: extractors differ or are not recorded"
    convs = {s.record.metrics[metric].convention or s.record.protocol.get("fid_convention") or "mat" for s in sides}
    if len(convs) != 1:
        return f"{metric}: covariance conventions differ"
    conv = convs.pop()
    name = ext.pop()
    real = None
    fakes = []
    for s, p in zip(sides, perms, strict=True):
        try:
            f = s.features()
        except InputError as e:  # a damaged features.npz costs this metric its rank confidence, not the report
            return str(e)
        for k in (f"{name}.real", f"{name}.fake"):
            if k not in f:
                return f"{s.folder / FEATURES_FILE} has no {k!r}"
        r, fk = f[f"{name}.real"], f[f"{name}.fake"]
        if r.shape[0] != len(p) or fk.shape[0] != len(p):
            return f"{s.folder / FEATURES_FILE}: rows do not match per_image.csv"
        r, fk = r[p].astype(np.float64), fk[p].astype(np.float64)
        if real is None:
            real = r
        elif not np.allclose(real, r, rtol=_REAL_FEATURES_RTOL,
                             atol=_REAL_FEATURES_RTOL * float(np.abs(real).max(initial=1.0))):
            return f"the ground-truth features ({name}.real) of {sides[0].label} and {s.label} differ"
        fakes.append(fk)
    return real, fakes, conv  # type: ignore[return-value]


def weighted_means(columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Means [m, k] of per-image columns [n, k] under multiplicity weights [m, n] (each row sums to its size)."""
    return (weights @ columns) / weights.sum(axis=1, keepdims=True)


def resampled_means_all(columns: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """paired.resampled_means of [n, k] columns, same draws (paired.index_chunks), as one weight product per chunk:
    at 36,500 images a gather per column is the slow part, a bincount per resample is not."""
    v = np.asarray(columns, dtype=np.float64)
    n = v.shape[0]
    out = np.empty((n_resamples, v.shape[1]), dtype=np.float64)
    row = 0
    for idx in index_chunks(n, n_resamples, seed):  # chunks of at most _GATHER entries
        m = idx.shape[0]
        w = np.bincount((idx + (np.arange(m) * n)[:, None]).ravel(), minlength=m * n).reshape(m, n)
        out[row:row + m] = (w @ v) / n
        row += m
    return out


def _fd_deviations(real: np.ndarray, fakes: list[np.ndarray], conv: str, rs: Resampling
                   ) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(influence columns [n, k] for the shared linear pass, or exact deviations [B, k], method)."""
    n, d = real.shape
    if fd_method(n, d) == "exact":
        stats = [fd_statistic(real, f, conv) for f in fakes]
        star = np.empty((rs.n_resamples, len(fakes)))
        row = 0
        for idx in index_chunks(n, rs.n_resamples, rs.seed):
            for r in idx:
                star[row] = [st(r) for st in stats]
                row += 1
        return None, star - star.mean(axis=0), "exact paired bootstrap (bias-corrected)"
    xr = real - real.mean(axis=0)
    rf = RealFactor(xr, 1.0 / (n if conv == "mat" else n - 1)) if n >= d else None
    psi = np.stack([fd_influence(real, f, conv, rf) for f in fakes], axis=1)
    return psi, None, "linearised paired bootstrap"


@dataclass
class _Prepared:
    values: np.ndarray
    columns: np.ndarray | None = None  # per-image (or influence) columns: deviations from the shared pass
    deviations: np.ndarray | None = None  # exact deviations [B, k]
    method: str = "paired bootstrap of the per-image mean"
    labels: list[str] = field(default_factory=list)


def rank_metrics(sides: Sequence[Side], metrics: Sequence[str], rs: Resampling = DEFAULT_RESAMPLING
                 ) -> dict[str, RankConfidence | str]:
    """Rank confidence of each metric over `sides` (models on the same images and masks; random-weight models
    left out by the caller), or why there is none ("no rank confidence: <why>" is the caller's wording)."""
    out: dict[str, RankConfidence | str] = {}
    if len(sides) < 2:
        return {m: f"{len(sides)} ranked model(s): nothing to rank" for m in metrics}
    perms = _align(sides)
    if isinstance(perms, str):
        return {m: perms for m in metrics}
    n = len(perms[0])
    if n < 2:
        return {m: f"{n} image(s): resampling needs at least 2" for m in metrics}
    prepared: dict[str, _Prepared] = {}
    for m in metrics:
        info = METRIC_INFO.get(m)
        if info is None:
            out[m] = "direction unknown (not a registered metric)"
            continue
        have = [i for i, s in enumerate(sides) if (mv := s.record.metrics.get(m)) is not None
                and mv.value is not None and np.isfinite(mv.value)]
        if len(have) < 2:
            out[m] = f"{len(have)} model(s) with a {m} value: nothing to rank"
            continue
        keep, kp = [sides[i] for i in have], [perms[i] for i in have]
        vals = _values(keep, m)
        if all(m in s.rows.columns for s in keep):
            cols = _per_image(keep, kp, m)
            if isinstance(cols, str):
                out[m] = cols
                continue
            prepared[m] = _Prepared(vals, columns=cols, labels=[s.label for s in keep])  # type: ignore[arg-type]
        elif is_frechet(m) and not info.higher_is_better:
            feats = _features(keep, kp, m)
            if isinstance(feats, str):
                out[m] = feats
                continue
            psi, dev, method = _fd_deviations(*feats, rs)
            prepared[m] = _Prepared(vals, psi, dev, method, [s.label for s in keep])  # type: ignore[arg-type]
        else:
            out[m] = "dataset-level metric without a paired resampling (only per-image metrics and Fréchet distances)"
    # One shared pass over the resamples for every per-image and influence column (the same image draws).
    shared = [m for m, p in prepared.items() if p.columns is not None]
    if shared:
        big = np.concatenate([prepared[m].columns for m in shared], axis=1)  # type: ignore[misc]
        means = resampled_means_all(big, rs.n_resamples, rs.seed) - big.mean(axis=0)
        j = 0
        for m in shared:
            k = prepared[m].columns.shape[1]  # type: ignore[union-attr]
            prepared[m].deviations = means[:, j:j + k]
            j += k
    for m, p in prepared.items():
        out[m] = _confidence(m, p, n, rs)
    return {m: out[m] for m in metrics}


def _confidence(metric: str, p: _Prepared, n: int, rs: Resampling) -> RankConfidence:
    hib = METRIC_INFO[metric].higher_is_better
    dev = p.deviations
    assert dev is not None
    order = order_of(p.labels, p.values, hib)
    samples = p.values[None, :] + dev
    first, lo, hi = rank_probabilities(samples[:, order], hib, rs.alpha)
    raw = []
    for a, b in zip(order[:-1], order[1:], strict=True):
        _, _, pv = interval(float(p.values[b] - p.values[a]), dev[:, b] - dev[:, a], rs.alpha)
        raw.append(1.0 if not np.isfinite(pv) else pv)
    adj = holm(raw) if raw else np.array([])
    return RankConfidence(metric, tuple(p.labels[i] for i in order), tuple(float(p.values[i]) for i in order),
                          tuple(float(x) for x in first), tuple(int(x) for x in lo), tuple(int(x) for x in hi),
                          tuple([float(x) for x in adj] + [None]), tuple([bool(x <= rs.alpha) for x in adj] + [None]),
                          n, p.method, rs.alpha, rs.n_resamples)


# --------------------------------------------------------------------------------------------- robustness

def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two score vectors (ties allowed): (concordant - discordant) over the square root of the
    product of the pairs untied in x and untied in y; nan when either vector is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"kendall_tau needs two vectors of one length, got {a.shape} and {b.shape}")
    iu = np.triu_indices(a.size, k=1)
    sa = np.sign(a[:, None] - a[None, :])[iu]
    sb = np.sign(b[:, None] - b[None, :])[iu]
    den = np.sqrt(float(np.count_nonzero(sa)) * float(np.count_nonzero(sb)))
    return float((sa * sb).sum() / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class Stability:
    """Fractions of subsamples of `size` images that keep the full-N order: all models, top-1, top-2."""

    fraction: float
    size: int
    order: float
    top1: float
    top2: float


@dataclass(frozen=True)
class MetricRobustness:
    metric: str
    order: tuple[str, ...]  # best first by the recorded values
    tau: float | None  # Kendall tau-b against the reference metric's ranking (None for the reference itself)
    same_top1: bool | None
    same_top2: bool | None
    stability: tuple[Stability, ...] = ()
    stability_note: str = ""  # why no subsampling, or how it was done


@dataclass
class Robustness:
    reference: str
    models: tuple[str, ...]
    n: int
    rows: list[MetricRobustness]
    summary: str


def _subsample_scores(p: _Prepared, fd_parts: tuple[np.ndarray, list[np.ndarray], str] | None, size: int,
                      n_subsamples: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Scores [S, k] of each model on S random subsets of `size` images (without replacement)."""
    n = p.columns.shape[0] if p.columns is not None else fd_parts[0].shape[0]  # type: ignore[index]
    subsets = np.argsort(rng.random((n_subsamples, n)), axis=1)[:, :size]
    if fd_parts is None:
        w = np.zeros((n_subsamples, n))
        np.put_along_axis(w, subsets, 1.0, axis=1)
        return weighted_means(p.columns, w), "subset means"  # type: ignore[arg-type]
    real, fakes, conv = fd_parts
    d = real.shape[1]
    if n_subsamples * len(fakes) * (2.0 * size * d * d + 30.0 * d ** 3) <= _SUBSAMPLE_EXACT_FLOPS:
        scores = np.array([[fd(real[s], f[s], conv) for f in fakes] for s in subsets])
        return scores, "Fréchet distances recomputed on each subset"
    xr = real - real.mean(axis=0)
    rf = RealFactor(xr, 1.0 / (n if conv == "mat" else n - 1)) if n >= d else None
    psi = np.stack([fd_influence(real, f, conv, rf) for f in fakes], axis=1)
    w = np.zeros((n_subsamples, n))
    np.put_along_axis(w, subsets, 1.0, axis=1)
    return p.values[None, :] + weighted_means(psi, w), "linearised (influence values; no small-sample bias)"


def _kept(scores: np.ndarray, full: list[int], labels: list[str], hib: bool) -> tuple[float, float, float]:
    orders = [order_of(labels, s, hib) for s in scores]
    return (float(np.mean([o == full for o in orders])), float(np.mean([o[:1] == full[:1] for o in orders])),
            float(np.mean([o[:2] == full[:2] for o in orders])))


def robustness(sides: Sequence[Side], metrics: Sequence[str], reference: str, n_subsamples: int = 200,
               seed: int = 0) -> Robustness | str:
    """Kendall tau against the `reference` ranking and rank stability at N/2 and N/4 for each of `metrics` that
    every side has, or why there is no robustness verdict."""
    if len(sides) < 2:
        return f"{len(sides)} ranked model(s): nothing to compare"
    labels = [s.label for s in sides]
    present = [m for m in dict.fromkeys([reference, *metrics]) if m in METRIC_INFO
               and not isinstance(_values(sides, m), str)]
    if reference not in present:
        return f"not every model has a {reference} value"
    perms = _align(sides)
    n = len(sides[0].rows) if not isinstance(perms, str) else 0
    ref_vals = _values(sides, reference)
    assert not isinstance(ref_vals, str)
    ref_hib = METRIC_INFO[reference].higher_is_better
    ref_order = order_of(labels, ref_vals, ref_hib)
    ref_scores = ref_vals if ref_hib else -ref_vals
    rng = np.random.default_rng(seed)
    rows = []
    for m in present:
        vals = _values(sides, m)
        assert not isinstance(vals, str)
        hib = METRIC_INFO[m].higher_is_better
        full = order_of(labels, vals, hib)
        tau = same1 = same2 = None
        if m != reference:
            tau = kendall_tau(ref_scores, vals if hib else -vals)
            same1, same2 = full[:1] == ref_order[:1], full[:2] == ref_order[:2]
        stab: list[Stability] = []
        note = ""
        if isinstance(perms, str):
            note = perms
        elif n < 8:
            note = f"{n} images: too few to subsample"
        else:
            p, fd_parts, note = _subsample_input(sides, perms, m, vals)
            if p is not None:
                for frac in FRACTIONS:
                    size = max(2, int(n * frac))
                    scores, note = _subsample_scores(p, fd_parts, size, n_subsamples, rng)
                    stab.append(Stability(frac, size, *_kept(scores, full, labels, hib)))
        rows.append(MetricRobustness(m, tuple(labels[i] for i in full), tau, same1, same2, tuple(stab), note))
    return Robustness(reference, tuple(labels[i] for i in ref_order), n, rows, _summary(reference, rows))


def _subsample_input(sides: Sequence[Side], perms: list[np.ndarray], m: str, vals: np.ndarray
                     ) -> tuple[_Prepared | None, tuple[np.ndarray, list[np.ndarray], str] | None, str]:
    if all(m in s.rows.columns for s in sides):
        cols = _per_image(sides, perms, m)
        if isinstance(cols, str):
            return None, None, cols
        return _Prepared(vals, columns=cols), None, ""
    if is_frechet(m):
        feats = _features(sides, perms, m)
        if isinstance(feats, str):
            return None, None, feats
        return _Prepared(vals), feats, ""
    return None, None, "dataset-level metric: no per-image values to subsample"


def _label(m: str) -> str:
    return METRIC_INFO[m].label


def _summary(reference: str, rows: Sequence[MetricRobustness]) -> str:
    """One plain-language line: the first reason the ranking does not hold, else that it holds."""
    flips = [r for r in rows if r.same_top2 is False]
    first = [r for r in flips if r.same_top1 is False]
    parts = []
    if first:
        by_top: dict[str, list[str]] = {}
        for r in first:
            by_top.setdefault(r.order[0], []).append(_label(r.metric))
        said = [f"{', '.join(ms)} put{'s' if len(ms) == 1 else ''} {top} first" for top, ms in by_top.items()]
        parts.append(f"{' and '.join(said)} where {_label(reference)} puts {rows[0].order[0]} first")
    elif flips:
        parts.append(f"the top-2 order flips under {', '.join(_label(r.metric) for r in flips)}")
    shaky = [(r, s) for r in rows for s in r.stability if s.fraction == FRACTIONS[0] and s.top2 < 0.95]
    if shaky:
        r, s = shaky[0]
        parts.append(f"the top-2 order by {_label(r.metric)} is kept in only {s.top2:.0%} of the N/2 subsets")
    if parts:
        line = "; ".join(parts) + "."
        return line[0].upper() + line[1:]
    others = [r for r in rows if r.tau is not None]
    stable = [r for r in rows if r.stability]
    if not others and not stable:
        return f"only {_label(reference)} was computed and it could not be subsampled: no robustness verdict."
    said = []
    if others:
        taus = [r.tau for r in others if r.tau is not None and np.isfinite(r.tau)]
        low = f" (Kendall τ ≥ {min(taus):.2f})" if taus else ""
        said.append(f"every metric computed has the same top-2 as {_label(reference)}{low}")
    if stable:
        said.append("the top-2 order is kept in ≥ 95 % of the N/2 subsets")
    return "The ranking holds: " + " and ".join(said) + "."
