"""Comparing two evaluations of the same images: loading both sides, refusing incomparable pairs, and the paired
verdict per metric (the statistics are in matbench.paired).

A side is a `matbench eval` output folder (metrics.json + per_image.csv [+ features.npz]), a run directory's job
folder RUN_DIR/jobs/JOB, or `RUN_DIR::JOB` for the same job.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from matbench.errors import InputError, SpecError
from matbench.features.files import FEATURES_FILE
from matbench.layout import RunLayout
from matbench.metrics import METRIC_INFO
from matbench.metrics.fd import fd_influence
from matbench.metrics.ids import pids_uids
from matbench.metrics.prc import K as PR_K
from matbench.metrics.prc import manifold_membership
from matbench.metrics.registry import INCEPTION, get_metric
from matbench.paired import (
    REFIT_RESAMPLES,
    Paired,
    Resampling,
    paired_fd,
    paired_kid,
    paired_mean,
    paired_refit,
    verdict,
)
from matbench.results import PER_IMAGE_FILE, PROTOCOL_FIELDS, MetricValue, ResultRecord, read_record

JOB_SEP = "::"
# per_image.csv columns that are not metrics
_NON_METRIC_COLUMNS = ("id", "hole_ratio", "pair_check", "bin", "sample")
# Fréchet distances on features (features.npz key: the value's extra["extractor"]); KID, P-IDS/U-IDS and
# precision/recall are in _DATASET below; other dataset-level metrics (CMMD, density/coverage, ...) have no paired
# interval yet.
_FRECHET = ("fid", "clip_fid", "fid_pt", "fid_local", "sfid")
_REAL_FEATURES_RTOL = 1e-4  # ground-truth features of A and B must agree this closely (float16 storage passes)


@dataclass
class Side:
    """One evaluation: its record, per-image rows, and (lazily) its features."""

    label: str
    folder: Path
    record: ResultRecord
    rows: pd.DataFrame
    _features: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def has_features(self) -> bool:
        return (self.folder / FEATURES_FILE).is_file()

    def features(self) -> dict[str, np.ndarray]:
        if self._features is None:
            path = self.folder / FEATURES_FILE
            try:
                with np.load(path, allow_pickle=False) as z:
                    self._features = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                raise InputError(f"{path}: not a readable features file ({e})") from None
        return self._features


def _job_names(run_dir: Path) -> list[str]:
    jobs = RunLayout(run_dir).jobs_dir
    return sorted(p.name for p in jobs.iterdir() if p.is_dir()) if jobs.is_dir() else []


def resolve(arg: str) -> Path:
    """The result folder named by a compare argument (an eval folder, RUN_DIR/jobs/JOB or RUN_DIR::JOB)."""
    if JOB_SEP in arg:
        run, job = arg.split(JOB_SEP, 1)
        folder = RunLayout(run).job_dir(job)
        if not folder.is_dir():
            names = ", ".join(_job_names(Path(run))) or "none"
            raise InputError(f"{arg}: no job {job!r} in run directory {run} (jobs: {names})")
        return folder
    p = Path(arg)
    if not p.exists():
        raise InputError(f"{arg}: no such file or directory")
    if p.is_dir() and RunLayout(p).run_file.is_file():
        names = ", ".join(_job_names(p)) or "none"
        raise InputError(f"{arg}: a run directory holds several jobs; name one as {arg}{JOB_SEP}JOB (jobs: {names})")
    return p.parent if p.is_file() else p


def load_side(arg: str) -> Side:
    folder = resolve(arg)
    record = read_record(folder)
    csv = folder / PER_IMAGE_FILE
    try:
        rows = pd.read_csv(csv, dtype={"id": str}, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise InputError(f"{csv}: no such file (compare needs the per-image rows of both sides)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{csv}: not a readable CSV ({e})") from None
    for col in ("id", "hole_ratio"):
        if col not in rows.columns:
            raise InputError(f"{csv}: no {col!r} column")
    dup = rows["id"][rows["id"].duplicated()]
    if len(dup):
        raise InputError(f"{csv}: image id {dup.iloc[0]!r} appears more than once")
    return Side(arg, folder, record, rows)


def check_comparable(a: Side, b: Side) -> np.ndarray:
    """Raise InputError naming the first difference unless A and B evaluated the same images with the same masks
    and conventions; return the permutation that puts B's rows in A's order."""
    if a.record.smoke != b.record.smoke:
        smoke, real = (a, b) if a.record.smoke else (b, a)
        raise InputError(f"{smoke.label} is a smoke result (random weights) and {real.label} is not; not comparable")
    pa, pb = a.record.protocol, b.record.protocol
    for k in (*PROTOCOL_FIELDS, "resize"):
        if k in pa and k in pb and pa[k] != pb[k]:
            raise InputError(f"{a.label} and {b.label} are not comparable: protocol.{k} differs "
                             f"({pa[k]!r} vs {pb[k]!r})")
    ids_a, ids_b = a.rows["id"].tolist(), b.rows["id"].tolist()
    if len(ids_a) != len(ids_b):
        raise InputError(f"{a.label} and {b.label} did not evaluate the same images: {len(ids_a)} vs {len(ids_b)} "
                         f"rows in {PER_IMAGE_FILE}")
    pos_b = {k: i for i, k in enumerate(ids_b)}
    for k in ids_a:
        if k not in pos_b:
            raise InputError(f"{a.label} and {b.label} did not evaluate the same images: {k!r} of {a.label} is "
                             f"not in {b.label}")
    perm = np.array([pos_b[k] for k in ids_a], dtype=np.int64)
    ha = a.rows["hole_ratio"].to_numpy(dtype=np.float64)
    hb = b.rows["hole_ratio"].to_numpy(dtype=np.float64)[perm]
    bad = np.flatnonzero(~np.isclose(ha, hb, rtol=1e-9, atol=1e-12))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{a.label} and {b.label} used other masks: hole ratio of {ids_a[i]!r} is {ha[i]:.6g} vs "
                         f"{hb[i]:.6g}")
    return perm


def _per_image_columns(side: Side) -> set[str]:
    return {c for c in side.rows.columns if c not in _NON_METRIC_COLUMNS}


def _is_frechet(name: str) -> bool:
    # fd_*_inf (FD∞) is a fit over subset sizes, not a distance of these rows: it has no paired interval
    return name in _FRECHET or (name.startswith("fd_") and not name.endswith("_inf"))


@dataclass
class Comparison:
    a: str
    b: str
    n: int
    metrics: dict[str, Paired]
    skipped: dict[str, str]  # metric -> why it was not compared
    bins: list[dict] = field(default_factory=list)  # [{"label", "n", "metrics": {name: Paired}, "skipped"}]
    n_resamples: int = 0
    seed: int = 0
    alpha: float = 0.05

    def to_json(self) -> dict[str, object]:
        """The issue's shape: {"a", "b", "n", "metrics": {name: {a, b, delta, ci, p_value, verdict}}}."""
        out: dict[str, object] = {"a": self.a, "b": self.b, "n": self.n,
                                  "metrics": {k: v.to_json() for k, v in self.metrics.items()}}
        if self.bins:
            out["bins"] = [{"label": b["label"], "n": b["n"],
                            "metrics": {k: v.to_json() for k, v in b["metrics"].items()}} for b in self.bins]
        return out


def _select(a: Side, b: Side, names: list[str] | None) -> list[str]:
    in_a, in_b = list(a.record.metrics), set(b.record.metrics)
    if names is None:
        return [m for m in in_a if m in in_b]
    for m in names:
        for side, have in ((a, in_a), (b, in_b)):
            if m not in have:
                raise SpecError(f"--metrics: {m} is not in {side.label}'s metrics.json (it has: "
                                f"{', '.join(side.record.metrics) or 'none'})")
    return list(dict.fromkeys(names))


def _mean_metric(name: str, a: Side, b: Side, perm: np.ndarray, rows: np.ndarray | None, hib: bool,
                 rs: Resampling, values: tuple[float, float] | None) -> Paired | str:
    va = a.rows[name].to_numpy(dtype=np.float64)
    vb = b.rows[name].to_numpy(dtype=np.float64)[perm]
    if rows is not None:
        va, vb = va[rows], vb[rows]
    empty = np.isnan(va) & np.isnan(vb)  # no value on either side (a region metric's empty region): left out
    if empty.any():
        va, vb = va[~empty], vb[~empty]
    for side, v in ((a, va), (b, vb)):
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            return f"non-finite per-image values in {side.label} ({bad.size} image(s))"
    if va.size < 2:
        return f"{va.size} image(s): a paired interval needs at least 2"
    r = paired_mean(va, vb, hib, rs)
    if values is None:
        return r
    return _with_values(r, values, hib)


def _with_values(r: Paired, values: tuple[float, float], hib: bool) -> Paired:
    """The same interval around the recorded values (per_image.csv keeps 10 digits, metrics.json all)."""
    va, vb = values
    shift = (vb - va) - r.delta
    lo, hi = r.ci[0] + shift, r.ci[1] + shift
    return Paired(va, vb, vb - va, (lo, hi), r.p_value, verdict(lo, hi, hib), r.n, r.method, r.deviations)


def _fd_inputs(name: str, a: Side, b: Side | None, perm: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str] | str:
    """(real, fake A, fake B in A's order or None, convention) of a Fréchet distance, or why they are unusable."""
    ma = a.record.metrics[name]
    ext = ma.extra.get("extractor")
    conv = ma.convention or a.record.protocol.get("fid_convention") or "mat"
    if b is not None:
        mb = b.record.metrics[name]
        if not ext or mb.extra.get("extractor") != ext:
            return f"extractors differ or are not recorded ({ext!r} vs {mb.extra.get('extractor')!r})"
        if (mb.convention or b.record.protocol.get("fid_convention") or "mat") != conv:
            return "covariance conventions differ"
    elif not ext:
        return "the extractor is not recorded"
    rows = _feature_rows(str(ext), a, b, perm)
    return rows if isinstance(rows, str) else (*rows, conv)


def _feature_rows(ext: str, a: Side, b: Side | None, perm: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | str:
    """(real, fake A, fake B in A's order or None) of features.npz's `ext` arrays, or why they are unusable."""
    sides = (a,) if b is None else (a, b)
    missing = [s.label for s in sides if not s.has_features]
    if missing:
        return (f"dataset-level: needs {FEATURES_FILE}{' on both sides' if b is not None else ''}, missing in "
                f"{' and '.join(missing)} (eval --save-features, or save_features = true in a run spec)")
    keys = (f"{ext}.real", f"{ext}.fake")
    for side in sides:
        f = side.features()
        for k in keys:
            if k not in f:
                return f"{side.folder / FEATURES_FILE} has no {k!r}"
    fa = a.features()
    real_a, fake_a = fa[keys[0]], fa[keys[1]]
    n = len(a.rows) if perm is None else len(perm)
    if real_a.shape[0] != n or fake_a.shape[0] != n:
        return f"{FEATURES_FILE} rows do not match {PER_IMAGE_FILE}"
    if b is None or perm is None:
        used = ~np.isnan(real_a).any(1)  # fid_local's images without a hole (NaN rows)
        return real_a[used], fake_a[used], None
    fb = b.features()
    real_b, fake_b = fb[keys[0]][perm], fb[keys[1]]
    if fake_b.shape[0] != n:
        return f"{FEATURES_FILE} rows do not match {PER_IMAGE_FILE}"
    fake_a, fake_b = fa[keys[1]], fb[keys[1]][perm]
    used = ~np.isnan(real_a).any(1)  # fid_local: images without a hole have no crop (NaN rows), on both sides
    if not used.all():
        if not np.array_equal(used, ~np.isnan(real_b).any(1)):
            return f"{keys[0]}: {a.label} and {b.label} leave out different images"
        if used.sum() < 2:
            return f"{keys[0]}: fewer than 2 images with features"
        real_a, real_b, fake_a, fake_b = real_a[used], real_b[used], fake_a[used], fake_b[used]
    if not np.allclose(real_a, real_b, rtol=_REAL_FEATURES_RTOL, atol=_REAL_FEATURES_RTOL * float(
            np.abs(real_a).max(initial=1.0))):
        return f"the ground-truth features ({keys[0]}) of {a.label} and {b.label} differ"
    return real_a, fake_a, fake_b  # fake_b is in A's order already


def _extractor(name: str, a: Side, b: Side) -> str | None:
    """features.npz name of a dataset metric's features: the configured Inception backend for "inception"."""
    reg = get_metric(name).extractor
    if reg != INCEPTION:
        return reg
    ext = a.record.protocol.get("feature_extractor") or a.record.metrics.get("fid", MetricValue(0.0)).extra.get(
        "extractor")
    other = b.record.protocol.get("feature_extractor") or ext
    return ext if ext == other else None


def _ids(key: str) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda real, fake: float(pids_uids(real, fake)[key])


def _pr(key: str) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda real, fake: float(manifold_membership(real, fake, k=PR_K)[key].mean(dtype=np.float64))


# dataset metrics with a paired interval besides the Fréchet distances: name -> refit statistic (None: KID)
_DATASET: dict[str, Callable[[str], Callable[[np.ndarray, np.ndarray], float]] | None] = {
    "kid": None, "pids": _ids, "uids": _ids, "precision": _pr, "recall": _pr}


def _dataset_metric(name: str, a: Side, b: Side, perm: np.ndarray, rs: Resampling) -> Paired | str:
    ext = _extractor(name, a, b)
    if not ext:
        return "the feature extractors differ or are not recorded"
    rows = _feature_rows(ext, a, b, perm)
    if isinstance(rows, str):
        return rows
    real, fa, fb = rows
    values = (a.record.metrics[name].value, b.record.metrics[name].value)
    make = _DATASET[name]
    if make is None:
        return paired_kid(real, fa, fb, values=values, rs=rs)  # type: ignore[arg-type]
    refit = Resampling(min(rs.n_resamples, REFIT_RESAMPLES), rs.seed, rs.alpha)
    return paired_refit(make(name), real, fa, fb, METRIC_INFO[name].higher_is_better, values=values,
                        rs=refit)  # type: ignore[arg-type]


def _fd_metric(name: str, a: Side, b: Side, perm: np.ndarray, rs: Resampling) -> Paired | str:
    inputs = _fd_inputs(name, a, b, perm)
    if isinstance(inputs, str):
        return inputs
    real, fa, fb, conv = inputs
    values = (a.record.metrics[name].value, b.record.metrics[name].value)
    return paired_fd(real, fa, fb, conv, values=values, rs=rs)  # type: ignore[arg-type]


def contributions(name: str, a: Side, b: Side | None = None, perm: np.ndarray | None = None) -> np.ndarray | str:
    """Per-image contributions whose mean's standard error is the metric's (B - A with b, else A's own): the
    per-image values (differences) of a per-image metric, the influence values of a Fréchet distance; or why
    there are none. perm: B's rows in A's order (check_comparable)."""
    if b is not None and perm is None:
        perm = check_comparable(a, b)
    if name in _per_image_columns(a) and (b is None or name in _per_image_columns(b)):
        v = a.rows[name].to_numpy(dtype=np.float64)
        if b is not None:
            v = b.rows[name].to_numpy(dtype=np.float64)[perm] - v
        return v if np.all(np.isfinite(v)) else "non-finite per-image values"
    info = METRIC_INFO.get(name)
    if _is_frechet(name) and info is not None and not info.higher_is_better:
        inputs = _fd_inputs(name, a, b, perm)
        if isinstance(inputs, str):
            return inputs
        real, fa, fb, conv = inputs
        phi = fd_influence(real, fa, conv)
        return phi if fb is None else fd_influence(real, fb, conv) - phi
    return "dataset-level: no per-image contributions for this metric"


def compare(a: Side, b: Side, metrics: list[str] | None = None, *, alpha: float = 0.05, n_resamples: int = 2000,
            seed: int = 0, bins: bool = False) -> Comparison:
    """Paired verdicts for B against A on every metric both have (or `metrics`); InputError if incomparable."""
    if not 0.0 < alpha < 1.0:
        raise SpecError(f"--alpha must be in (0, 1), got {alpha}")
    if n_resamples < 1:
        raise SpecError(f"--n-resamples must be >= 1, got {n_resamples}")
    perm = check_comparable(a, b)
    n = len(perm)
    if n < 2:
        raise InputError(f"{a.label} and {b.label}: {n} image(s); a paired comparison needs at least 2")
    names = _select(a, b, metrics)
    per_image = _per_image_columns(a) & _per_image_columns(b)
    rs = Resampling(n_resamples, seed, alpha)
    out = Comparison(a.label, b.label, n, {}, {}, n_resamples=n_resamples, seed=seed, alpha=alpha)
    for name in names:
        info = METRIC_INFO.get(name)
        if info is None:
            out.skipped[name] = "direction unknown (not a registered metric)"
            continue
        hib = info.higher_is_better
        if name in per_image:
            r = _mean_metric(name, a, b, perm, None, hib, rs, (a.record.metrics[name].value,
                                                               b.record.metrics[name].value))
        elif _is_frechet(name) and not hib:
            r = _fd_metric(name, a, b, perm, rs)
        elif name in _DATASET:
            r = _dataset_metric(name, a, b, perm, rs)
        else:
            r = "dataset-level: no paired interval for this metric yet"
        if isinstance(r, str):
            out.skipped[name] = r
        else:
            out.metrics[name] = r
    if bins:
        out.bins = _bins(a, b, perm, [m for m in names if m in per_image and m in METRIC_INFO], rs)
    return out


def _bins(a: Side, b: Side, perm: np.ndarray, names: list[str], rs: Resampling) -> list[dict]:
    """Per hole-ratio bin (per_image.csv's `bin` column of A): per-image metrics only."""
    if "bin" not in a.rows.columns:
        return []
    labels = a.rows["bin"].astype(str).to_numpy()
    out = []
    for label in dict.fromkeys(sorted(labels, key=_bin_order)):
        rows = np.flatnonzero(labels == label)
        entry: dict = {"label": label, "n": int(rows.size), "metrics": {}, "skipped": {}}
        for name in names:
            r = _mean_metric(name, a, b, perm, rows, METRIC_INFO[name].higher_is_better, rs, None)
            if isinstance(r, str):
                entry["skipped"][name] = r
            else:
                entry["metrics"][name] = r
        out.append(entry)
    return out


def _bin_order(label: str) -> tuple[float, str]:
    head = label.split("-")[0].rstrip("%")
    try:
        return float(head), label
    except ValueError:
        return float("inf"), label


def compare_paths(a: str | os.PathLike, b: str | os.PathLike, **kw: object) -> Comparison:
    """compare(load_side(a), load_side(b), **kw)."""
    return compare(load_side(str(a)), load_side(str(b)), **kw)  # type: ignore[arg-type]
