"""Reference statistics files (`matbench stats make`, `stats fd`): mean and covariance of a dataset's features, with
everything needed to refuse comparing them with features of another kind.

ref.npz (schema "matbench.refstats/1", np.savez, no pickles):
  mu [D] float64, sigma [D, D] float64 (covariance with 1/(N-1); FD under the "mat" 1/N convention rescales it),
  n, and string fields: extractor, weights_sha256, resize, dataset_manifest_sha256, dataset, resolution,
  preprocess, smoke ("true"/"false"), enlarged (how many images were smaller than the resolution and were
  reflect-padded or upscaled: only with --allow-upscale; "" in files from before it was recorded).

`stats fd` compares only like with like: the extractor, weights and resize convention must match, and every
generated image must be resolution x resolution (the preprocessing of the statistics is the identity on such an
image, so scoring them raw is the same as preparing them the same way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from matbench.data.datasets import Dataset, enlarged_images, enlargement_message
from matbench.data.preprocess import DEFAULT_POLICY
from matbench.errors import Hint, InputError
from matbench.features import get_extractor, get_spec
from matbench.features.base import FeatureExtractor
from matbench.features.cache import FeatureCache, extract_cached
from matbench.features.folders import list_images
from matbench.io import atomic_path, read_image
from matbench.metrics import bootstrap
from matbench.metrics.fd import fd_to_reference_statistic, fd_to_stats, feature_stats
from matbench.progress import track

SCHEMA = "matbench.refstats/1"
_STR_FIELDS = ("schema", "extractor", "weights_sha256", "resize", "dataset_manifest_sha256", "dataset",
               "resolution", "preprocess", "smoke", "enlarged")
# fields that must be equal before features may be compared with the file, in the order they are checked
MATCH_FIELDS = ("extractor", "weights_sha256", "resize")


@dataclass
class RefStats:
    mu: np.ndarray
    sigma: np.ndarray  # 1/(N-1)
    n: int
    meta: dict[str, str]
    path: Path | None = None

    def sigma_for(self, convention: str) -> np.ndarray:
        if convention == "mat":
            return self.sigma * (self.n - 1) / self.n
        if convention == "torch-fidelity":
            return self.sigma
        raise ValueError(f"unknown covariance convention {convention!r}")

    def check(self, extractor: str, weights_sha256: str, resize: str) -> None:
        """InputError naming the first field whose value differs from the features about to be compared."""
        given = {"extractor": extractor, "weights_sha256": weights_sha256, "resize": resize}
        for f in MATCH_FIELDS:
            if self.meta.get(f) != given[f]:
                raise InputError(f"{self.path}: reference statistics have {f} {self.meta.get(f)!r}, "
                                 f"these features have {given[f]!r}; make the file with the same {f}")

    def fd(self, fake_feats: np.ndarray, convention: str = "mat") -> float:
        if fake_feats.shape[1] != self.mu.shape[0]:
            raise InputError(f"{self.path}: {self.mu.shape[0]}-d statistics, {fake_feats.shape[1]}-d features")
        return fd_to_stats(fake_feats, self.mu, self.sigma_for(convention), convention)


def stats_from_features(feats: np.ndarray, meta: dict[str, str]) -> RefStats:
    mu, sigma = feature_stats(feats, "torch-fidelity")
    return RefStats(mu=mu, sigma=sigma, n=int(feats.shape[0]), meta={"schema": SCHEMA, **meta})


def save(stats: RefStats, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {k: np.asarray(str(stats.meta.get(k, ""))) for k in _STR_FIELDS}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=stats.mu, sigma=stats.sigma, n=np.asarray(stats.n), **fields)
    return path


def load(path: str | os.PathLike) -> RefStats:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "schema" not in z.files or str(z["schema"]) != SCHEMA:
                raise InputError(f"{path}: not a matbench reference statistics file (schema {SCHEMA} expected)")
            meta = {k: str(z[k]) for k in _STR_FIELDS if k in z.files}
            mu, sigma, n = z["mu"].astype(np.float64), z["sigma"].astype(np.float64), int(z["n"])
    except FileNotFoundError:
        raise InputError(f"{path}: no such reference statistics file") from None
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: cannot read reference statistics ({e})") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or n < 2:
        raise InputError(f"{path}: malformed statistics (mu {mu.shape}, sigma {sigma.shape}, n {n})")
    if (problem := covariance_problem(mu, sigma)) is not None:
        raise InputError(f"{path}: invalid reference statistics: {problem}")
    return RefStats(mu=mu, sigma=sigma, n=n, meta=meta, path=path)


# A covariance computed in float64 is symmetric to rounding and its eigenvalues are >= 0 up to rounding; anything
# beyond these relative tolerances was not produced by `stats make` (a NaN/inf, a negated or edited matrix).
SYMMETRY_RTOL = 1e-6
PSD_RTOL = 1e-6


def covariance_problem(mu: np.ndarray, sigma: np.ndarray) -> str | None:
    """Why (mu, sigma) cannot be a mean and covariance: non-finite values, asymmetry, a negative eigenvalue
    below -PSD_RTOL x the largest; None when they can."""
    for name, a in (("mu", mu), ("sigma", sigma)):
        bad = ~np.isfinite(a)
        if bad.any():
            kinds = sorted({"NaN" if np.isnan(x) else "inf" for x in a[bad].ravel()[:1000]})
            return f"{name} has {int(bad.sum())} non-finite value(s) ({', '.join(kinds)})"
    scale = float(np.abs(sigma).max()) if sigma.size else 0.0
    asym = float(np.abs(sigma - sigma.T).max()) if sigma.size else 0.0
    if asym > SYMMETRY_RTOL * scale:
        return f"sigma is not symmetric (max |sigma - sigma^T| = {asym:.3g}, max |sigma| = {scale:.3g})"
    w = np.linalg.eigvalsh(0.5 * (sigma + sigma.T))
    if w.size and w[0] < -PSD_RTOL * max(float(w[-1]), 0.0):
        return (f"sigma is not positive semi-definite (smallest eigenvalue {w[0]:.3g}, largest {w[-1]:.3g}; "
                f"tolerance {PSD_RTOL:g} x largest)")
    return None


@dataclass(frozen=True)
class StatsOptions:
    """Options of `stats make` and `stats fd`, declared once (the CLI flags and the keyword arguments of make and
    fd_folder have these names)."""

    resize: str | None = None  # make: resize convention of the extractor (None: its native one)
    resolution: int = 512  # make: images prepared at this size
    preprocess: str | None = None  # make: crop/resize policy (None: DEFAULT_POLICY)
    limit: int | None = None  # make: the first N images only
    allow_upscale: bool = False  # make: allow images smaller than the resolution (padded / upscaled)
    progress: bool | None = False  # None: matbench.progress's policy
    convention: str = "mat"  # fd: covariance convention
    n_bootstrap: int = 200  # fd
    seed: int = 0  # fd
    smoke: bool = False
    device: str = "cpu"
    batch_size: int = 16
    weights_path: str | os.PathLike | None = None
    allow_download: bool = True
    cache_dir: str | os.PathLike | None | bool = None


def make(dataset: str | os.PathLike, extractor: str, out: str | os.PathLike, **options: object) -> RefStats:
    """Features of every image of a dataset (prepared at `resolution`) -> reference statistics file.

    Images smaller than `resolution` on a side would be reflect-padded or upscaled: InputError unless
    `allow_upscale` (the number of such images is then recorded as "enlarged")."""
    o = StatsOptions(**options)  # unknown names: TypeError, as a signature would
    ds = Dataset.open(dataset)
    ids = ds.ids[:o.limit] if o.limit else ds.ids
    if len(ids) < 2:
        raise InputError(f"{dataset}: need at least 2 images for statistics, found {len(ids)}")
    policy = o.preprocess or DEFAULT_POLICY
    resolution, batch_size = o.resolution, o.batch_size
    small = enlarged_images(ds, ids, resolution)
    if small and not o.allow_upscale:
        smallest = min(min(h, w) for _, h, w in small)
        raise InputError(f"{dataset}: {enlargement_message(ds, small, len(ids), resolution, policy)}",
                         hints=[Hint("--resolution", f"use --resolution {smallest} (or less)"),
                                Hint("--allow-upscale", "or --allow-upscale to make the statistics anyway")])
    ex = get_extractor(extractor, o.device, o.smoke, o.weights_path, batch_size=batch_size,
                       allow_download=o.allow_download, resize_convention=o.resize)
    cache = None if o.cache_dir is False else FeatureCache(None if o.cache_dir in (None, True) else o.cache_dir)
    parts = []
    for i in track(range(0, len(ids), batch_size), desc="stats", unit="batch", enabled=o.progress):
        batch = torch.stack([torch.from_numpy(ds.load(j, resolution, policy)).permute(2, 0, 1)
                             for j in ids[i:i + batch_size]])
        parts.append(extract_cached(ex, batch, cache))
    feats = np.concatenate(parts)
    meta = {"extractor": extractor, "weights_sha256": ex.weights_sha256, "resize": extractor_resize(ex),
            "dataset_manifest_sha256": ds.manifest_sha256() if o.limit is None else "",
            "dataset": str(dataset), "resolution": str(resolution), "preprocess": policy,
            "smoke": "true" if ex.smoke else "false", "enlarged": str(len(small))}
    stats = stats_from_features(feats, meta)
    stats.path = save(stats, out)
    return stats


def extractor_resize(ex: FeatureExtractor) -> str:
    """The resize convention of an extractor (the built-in Inceptions resize like TF1 inside the network)."""
    return getattr(ex, "resize_convention", "") or "legacy-tf"


def fd_folder(folder: str | os.PathLike, ref_path: str | os.PathLike, **options: object) -> dict:
    """FD of a folder of generated images against a reference statistics file (no ground-truth images).

    The extractor, its weights and its resize convention come from the file; features of another kind are
    refused (InputError naming the field)."""
    o = StatsOptions(**options)
    convention, n_bootstrap, seed, batch_size = o.convention, o.n_bootstrap, o.seed, o.batch_size
    ref = load(ref_path)
    name, resize = ref.meta.get("extractor", ""), ref.meta.get("resize", "")
    spec = get_spec(name)
    # a uint8-input extractor has only its native resize: a file claiming another is refused by ref.check below
    conv = resize if resize and not spec.uint8_input and resize != spec.native_resize else None
    ex = get_extractor(name, o.device, o.smoke, o.weights_path, batch_size=batch_size,
                       allow_download=o.allow_download, resize_convention=conv)
    ref.check(name, ex.weights_sha256, extractor_resize(ex))
    files = list_images(folder)
    if len(files) < 2:
        raise InputError(f"{folder}: need at least 2 images, found {len(files)}")
    res = int(ref.meta["resolution"]) if ref.meta.get("resolution", "").isdigit() else None
    parts, batch, shape = [], [], None
    for iid in track(sorted(files), desc="fd", enabled=o.progress):
        arr = read_image(files[iid])
        if res is not None and arr.shape[:2] != (res, res):
            raise InputError(f"{files[iid]}: {arr.shape[1]}x{arr.shape[0]} image, but {ref.path} was made from "
                             f"images prepared at {res}x{res} ({ref.meta.get('preprocess') or DEFAULT_POLICY}); "
                             f"score {res}x{res} images (matbench data prepare --res {res}) or make the statistics "
                             f"at this size (matbench stats make --resolution {min(arr.shape[:2])})")
        im = torch.from_numpy(arr).permute(2, 0, 1)
        if batch and (im.shape != shape or len(batch) == batch_size):
            parts.append(ex(torch.stack(batch)))
            batch = []
        batch.append(im)
        shape = im.shape
    parts.append(ex(torch.stack(batch)))
    fake = np.concatenate(parts)
    value = ref.fd(fake, convention)
    lo = hi = None
    if n_bootstrap > 0:
        stat = fd_to_reference_statistic(ref.mu, ref.sigma_for(convention), fake, convention)
        lo, hi = bootstrap.bootstrap_ci(stat, fake.shape[0], n_bootstrap, seed, method="bias-corrected")
        lo, hi = max(float(lo), 0.0), float(hi)
    return {"fd": value, "ci_low": lo, "ci_high": hi, "n": int(fake.shape[0]), "convention": convention,
            "extractor": name, "weights_sha256": ex.weights_sha256, "resize": extractor_resize(ex),
            "smoke": bool(ex.smoke), "reference": str(ref.path), "reference_n": ref.n,
            "reference_dataset_manifest_sha256": ref.meta.get("dataset_manifest_sha256", ""),
            "ci_method": "bias-corrected bootstrap, generated side resampled"}
