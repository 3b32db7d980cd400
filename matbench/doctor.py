"""`matbench doctor`: why a number differs from a paper's, factor by factor (issue 23).

The doctor inspects results, ground truths and masks against a published protocol (matbench.protocols) and,
where it can, measures how much each deviation moves the metrics, one factor at a time:

- inputs: image count and dataset ids, file format (JPEG and its quality, from the quantization tables), image
  size, color mode, EXIF orientation, masks (kind, hole-ratio histogram against the protocol's generator, hash,
  polarity) and pairing (known-region check, swapped files);
- what-ifs, each with its extra cost: FID bias from N (FID on subsets, extrapolated in 1/N), JPEG (the PNG side
  re-encoded at the detected quality), FID covariance convention, LPIPS input range, Inception backend.

Every metric is computed here under the protocol's conventions (the baseline); an effect is
metric(as given) - metric(as the protocol would have it), so a positive FID effect is FID the deviation added.
"""

from __future__ import annotations

import dataclasses
import io as _io
import json
import math
import re
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from matbench import features as F
from matbench import protocols as P
from matbench.data.manifest import load_manifest
from matbench.data.masks import MASK_KINDS, generate_mask
from matbench.data.maskset import hole_ratio_stats
from matbench.data.presets import PRESETS
from matbench.errors import InputError
from matbench.evaluate.folders import _MaskSource
from matbench.evaluate.pairs import PAIR_TOL
from matbench.io import read_image
from matbench.layout import RunLayout
from matbench.metrics import fdinf
from matbench.metrics.fd import fd_in_dtype, fd_influence, fd_statistic, fd_value
from matbench.metrics.ids import pids_uids
from matbench.metrics.lpips import LPIPS
from matbench.metrics.pixel import psnr
from matbench.progress import track
from matbench.runner.models import precision_context

SAVE_SCHEMA = "matbench.doctor/1"
# the measured effects; "statistics" (float32 moments) reuses the features, "precision" (a bf16 network) and "batch"
# recompute up to PASS_SAMPLE pairs
WHAT_IFS = ("n", "jpeg", "convention", "lpips", "backend", "statistics", "precision", "batch")
REPORT_WHAT_IFS = ("n", "convention", "statistics")  # `matbench report` runs these: no network pass beyond the baseline
OTHER_BACKEND = {"inception-v3-compat": "pt-inception", "inception-nvidia": "pt-inception",
                 "pt-inception": "inception-v3-compat"}
LPIPS_RANGES = ("-1,1", "0,1")
KS_ALPHA = 0.01  # hole ratios differ from the generator's when the two-sample KS p-value is below this
HOLE_SAMPLE = 200  # generator masks drawn for the hole-ratio comparison
THUMB = 32  # side of the thumbnails compared when looking for swapped files
NO_MASK_AGREEMENT = 0.05  # without masks: a result sharing fewer equal cells with its ground truth is a candidate
SWAP_CHECK_MAX = 500  # mis-paired results compared with every ground truth (beyond: listed, not searched)
EQUAL_RTOL = 1e-5  # the project's equality policy: a relative effect below this is no effect (batch, precision)
PASS_SAMPLE = 256  # pairs whose features the batch-size and bf16 what-ifs recompute (all of them below this)
ALT_BATCH = 1  # the batch size compared with the doctor's (32 when the doctor's is 1)
N_SIZES = 8  # subset sizes of the N what-if (fdinf.subset_sizes: N/10 to N)
N_DRAWS = 10  # paired subsets per size (at most 3 from D images up: a D x D eigendecomposition each)
_SAMPLE = re.compile(r"(.+)_s[1-9][0-9]*")  # RUN_DIR/outputs/<job>/<id>_s<S>.png


@dataclass
class Factor:
    """One row of the doctor's table; `to_dict` is the JSON form (exactly these five keys plus effect)."""

    factor: str
    yours: Any
    protocol: Any
    ok: bool
    effect: dict[str, float] | None = None
    fix: str = ""
    cost: str = ""  # extra work of the what-if behind `effect` (shown in the table)

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "yours": self.yours, "protocol": self.protocol, "ok": bool(self.ok),
                "effect": None if self.effect is None else {k: float(v) for k, v in self.effect.items()},
                "fix": self.fix}


@dataclass
class DoctorReport:
    protocol: str
    title: str
    factors: list[Factor]
    metrics: dict[str, float]  # the baseline under the protocol's conventions
    n: int
    smoke: bool
    seconds: float = 0.0
    published: dict[str, Any] | None = None  # row, values, gap, order (with --published-row)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.factors)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` form, exactly {"protocol": NAME, "factors": [...]}."""
        return {"protocol": self.protocol, "factors": [f.to_dict() for f in self.factors]}

    def to_file_dict(self) -> dict[str, Any]:
        """`--save FILE` (what `matbench report --doctor FILE` shows): the --json form plus what a page needs."""
        return {"schema": SAVE_SCHEMA, **self.to_dict(), "title": self.title, "smoke": self.smoke, "n": self.n,
                "metrics": dict(self.metrics), "costs": {f.factor: f.cost for f in self.factors if f.cost},
                "verdict": (self.published or {}).get("line"), "seconds": round(self.seconds, 1)}

    def factor(self, name: str) -> Factor:
        for f in self.factors:
            if f.factor == name:
                return f
        raise KeyError(name)


# ------------------------------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class DoctorProtocol:
    """A protocol plus what the doctor checks beyond `require`: the dataset's ids, a pinned mask-set hash."""

    protocol: P.Protocol
    ids: tuple[str, ...] | None  # the dataset's ids (basenames) from a manifest or a dataset preset
    ids_source: str  # "manifest FILE", "preset places365-val" or "no manifest"
    maskset_sha256: str | None
    policy: str  # crop/resize policy the protocol prepares images with

    @property
    def name(self) -> str:
        return self.protocol.name

    @property
    def require(self) -> dict[str, Any]:
        return self.protocol.require


def _allowed(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def load_protocol(name_or_file: str) -> DoctorProtocol:
    """A published protocol by name, or a TOML file holding one protocol table (the presets.toml layout; extra keys
    `manifest` (a dataset manifest, relative to the file), `maskset_sha256` and `policy` are the doctor's)."""
    path = Path(name_or_file)
    extra: dict[str, Any] = {}
    if name_or_file.endswith(".toml"):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such protocol file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise InputError(f"{path}: not a readable protocol TOML ({e})") from None
        if len(raw) != 1 or not isinstance(next(iter(raw.values())), dict):
            raise InputError(f"{path}: expected exactly one protocol table, found {len(raw)} top-level keys")
        name, d = next(iter(raw.items()))
        if "title" not in d or not isinstance(d.get("require", {}), dict):
            raise InputError(f"{path}: protocol {name!r} needs a title and a [require] table")
        proto = P.Protocol(name=name, title=d["title"], require=dict(d.get("require", {})),
                           published={k: dict(v) for k, v in d.get("published", {}).items()},
                           description={k: d[k] for k in P.DESCRIPTION_FIELDS if k in d},
                           sources=tuple(d.get("sources", ())))
        extra = {k: d[k] for k in ("manifest", "maskset_sha256", "policy") if k in d}
        if "manifest" in extra:
            extra["manifest"] = str((path.parent / extra["manifest"]).resolve())
    else:
        proto = P.get(name_or_file)
    ids, source = None, "no manifest"
    if "manifest" in extra:
        m = load_manifest(extra["manifest"])
        ids, source = tuple(f["id"].rsplit("/", 1)[-1] for f in m["files"]), f"manifest {extra['manifest']}"
    else:  # the built-in protocols name their dataset preset first in `dataset`
        preset = PRESETS.get(proto.description.get("dataset", "").split(" ")[0])
        if preset is not None and preset.expected_names:
            ids, source = preset.expected_names, f"preset {preset.name}"
    policy = extra.get("policy") or ("mat-val" if "mat-val" in proto.description.get("dataset", "") else "any")
    return DoctorProtocol(proto, ids, source, extra.get("maskset_sha256") or proto.require.get("maskset_sha256"),
                          policy)


# ------------------------------------------------------------------------------------------------- run jobs


def job_inputs(job_dir: str | Path) -> tuple[Path, Path, Path | None, str | None]:
    """(results, ground truths, masks, mask polarity) of a run directory's job RUN_DIR/jobs/<job>: the saved outputs,
    the saved prepared inputs and the job's mask set (its generated set, else the saved hole PNGs, hole=255)."""
    found = RunLayout.of_job_dir(job_dir)
    if found is None:
        raise InputError(f"{job_dir}: not a run directory's job (expected RUN_DIR/jobs/<job>)")
    lay, job = found
    state = lay.state_file(job)
    try:
        fp = json.loads(state.read_text(encoding="utf-8"))["fingerprint"]
        dataset, maskset, res = fp["dataset"]["name"], fp["maskset"]["name"], fp["resolution"]
    except FileNotFoundError:
        raise InputError(f"{state}: no such file (has the job run?)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{state}: no readable job fingerprint ({type(e).__name__}: {e})") from None
    results, gt = lay.outputs_dir(job), lay.inputs_dir(dataset, res)
    for d, key in ((results, "save_outputs"), (gt, "save_inputs")):
        if not d.is_dir():
            raise InputError(f"{d}: not there; the doctor reads the job's saved images (set {key} in the spec)")
    generated = lay.maskset_dir(maskset, res)
    if (generated / "maskset.json").is_file():
        return results, gt, generated, None
    holes = lay.masks_dir(maskset, res)
    return results, gt, (holes if holes.is_dir() else None), ("hole=255" if holes.is_dir() else None)


# ------------------------------------------------------------------------------------------------- files


@lru_cache(maxsize=1)
def _reference_luma_tables() -> dict[int, np.ndarray]:
    """The luma quantization table libjpeg writes at each quality 1..100 (read back through PIL, so the table order
    is whatever PIL reports for any file)."""
    out = {}
    img = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    for q in range(1, 101):
        buf = _io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        with Image.open(buf) as im:
            out[q] = np.asarray(im.quantization[0], dtype=np.float64)
    return out


def jpeg_quality(quantization: dict[int, Sequence[int]] | None) -> tuple[int | None, bool]:
    """(estimated IJG quality, exact) from a JPEG's quantization tables: the quality whose standard luma table is
    nearest; exact when equal (libjpeg/PIL/OpenCV encoders), else a camera or another encoder's table."""
    if not quantization or 0 not in quantization:
        return None, False
    t = np.asarray(quantization[0], dtype=np.float64)
    refs = _reference_luma_tables()
    if t.shape != (64,):
        return None, False
    err = {q: float(np.abs(r - t).sum()) for q, r in refs.items()}
    best = min(err, key=lambda q: (err[q], -q))
    return best, err[best] == 0.0


@dataclass
class FileInfo:
    format: str
    mode: str
    size: tuple[int, int]  # (W, H)
    quality: int | None = None
    orientation: int | None = None


def inspect_file(path: Path) -> FileInfo:
    """Format, mode, size, JPEG quality and EXIF orientation from the header (no pixel decoding)."""
    try:
        with Image.open(path) as im:
            q = jpeg_quality(getattr(im, "quantization", None))[0] if im.format == "JPEG" else None
            try:
                orient = im.getexif().get(274)
            except Exception:  # a broken EXIF block is not the question here
                orient = None
            return FileInfo(str(im.format), im.mode, im.size, q, int(orient) if orient else None)
    except Exception as e:
        raise InputError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def _few(items: Sequence[str], k: int = 5) -> str:
    s = ", ".join(items[:k])
    return s + (f", ... ({len(items)} in all)" if len(items) > k else "")


# ------------------------------------------------------------------------------------------------- measuring


def fid(real: np.ndarray, fake: np.ndarray, convention: str) -> float:
    """FD of paired features under a covariance convention (the N x N form below 2048 images: fast)."""
    return fd_value(real, fake, convention, fd_statistic(real, fake, convention))


def fid_vs_n(real: np.ndarray, fake: np.ndarray, convention: str, n_target: int, seed: int = 0,
             draws: int = N_DRAWS) -> dict[str, Any]:
    """What FID `n_target` image pairs would give, estimated from the given N pairs (docs/doctor.md):

    the mean FID of `draws` random paired subsets at each of fdinf's subset sizes (N/10 to N), a least-squares line
    FID(N) = FID_inf + k / N through them (fdinf.linear_fit, as FD-infinity, Chong & Forsyth 2020) read at
    n_target. The 95 % interval adds the fit's scatter (t) and the sampling of the N pairs (the linearized standard
    error of FID, fd.fd_influence) in quadrature. No estimate (None, with `why`) when N cannot say: below the
    feature dimension D (the 1/N law is an expansion in D/N), fewer than 3 subset sizes, or a quadratic in 1/N
    whose value at n_target leaves that interval (FID is not linear in 1/N over the given sizes)."""
    n, d = real.shape
    sizes = fdinf.subset_sizes(n, N_SIZES)
    per_size = fdinf.paired_subset_fds(real, fake, sizes, draws, seed, convention)
    points = [(int(s), float(np.mean(v))) for s, v in zip(sizes, per_size, strict=True)]
    at_n = points[-1][1]
    out: dict[str, Any] = {"points": points, "at_n": at_n, "estimate": None, "low": None, "high": None,
                           "why": None, "slope": None, "intercept": None}
    if n < d:
        out["why"] = (f"N too small to say anything: {n:,} pairs are fewer than the {d:,} feature dimensions, and "
                      "the 1/N law FD-infinity extrapolates with is an expansion in D/N")
        return out
    if len(points) < 3:
        out["why"] = f"too few images: {n} give {len(points)} subset size(s), a line with an interval needs 3"
        return out
    x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    fit = fdinf.linear_fit(x, y, at=n_target)
    se_sampling = float(np.std(fd_influence(real, fake, convention), ddof=1) / math.sqrt(n))
    half = math.hypot(fit["at_high"] - fit["at"], 1.96 * se_sampling)
    out.update(slope=fit["slope"], intercept=fit["intercept"], estimate=fit["at"], low=fit["at"] - half,
               high=fit["at"] + half, se_sampling=se_sampling)
    quad = float(np.polyval(np.polyfit(1.0 / x, y, 2), 1.0 / n_target)) if len(points) >= 4 else None
    if quad is not None and abs(quad - fit["at"]) > half + 1e-9 * abs(fit["at"]):  # (rounding of exact lines)
        out["why"] = (f"FID is not linear in 1/N over {points[0][0]:,}..{n:,} pairs (a quadratic term moves the value "
                      f"at {n_target:,} to {quad:.4g}, outside [{out['low']:.4g}, {out['high']:.4g}]): too few "
                      "images for the 1/N law")
    return out


def compare_hole_ratios(ratios: Sequence[float], kind: str, size: int, n_sample: int = HOLE_SAMPLE,
                        seed: int = 0) -> dict[str, Any]:
    """Hole ratios of the given masks against `n_sample` masks of the protocol's generator at the same size:
    fraction per 10 % bin of each, and the two-sample Kolmogorov-Smirnov statistic and p-value."""
    ref = np.array([generate_mask(kind, size, seed + i).mean() for i in range(n_sample)], dtype=np.float64)
    yours = np.asarray(ratios, dtype=np.float64)
    d, p = ks_two_sample(yours, ref)
    return {"yours": hole_ratio_stats(yours), "protocol": hole_ratio_stats(ref), "ks": d, "p": p}


def ks_two_sample(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic D = max |F_a - F_b| and its asymptotic p-value (Kolmogorov's
    distribution at (sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) D, ne = n m / (n + m), Stephens' small-sample correction).
    Here rather than scipy.stats, whose import costs every `matbench` command a second or more."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError("KS needs two non-empty samples")
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / a.size
    fb = np.searchsorted(b, x, side="right") / b.size
    d = float(np.abs(fa - fb).max())
    ne = a.size * b.size / (a.size + b.size)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    if lam < 1e-3:
        return d, 1.0
    k = np.arange(1, 101)
    p = float(2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k * k * lam * lam)))
    return d, min(1.0, max(0.0, p))


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = _io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=int(quality))
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _thumb(a: np.ndarray) -> np.ndarray:
    """THUMB x THUMB box average, uint8 (36,500 of them fit in 110 MB): RGB levels, or 255 x the known fraction."""
    return np.asarray(Image.fromarray(a).resize((THUMB, THUMB), Image.BOX), dtype=np.uint8)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def _hist_text(frac: Sequence[float]) -> str:
    return " ".join(f"{100 * f:.0f}" for f in frac)


# ------------------------------------------------------------------------------------------------- the doctor


@dataclass
class _Pass:
    """What one read over the pairs collects (per id, in id order)."""

    feats: dict[str, list[np.ndarray]] = field(default_factory=dict)
    psnr: list[float] = field(default_factory=list)
    lpips: dict[str, list[float]] = field(default_factory=dict)
    psnr_jpeg: list[float] = field(default_factory=list)
    known_diff: list[float | None] = field(default_factory=list)
    known_diff_inv: list[float | None] = field(default_factory=list)
    hole_ratio: list[float | None] = field(default_factory=list)
    thumbs_gt: list[np.ndarray] = field(default_factory=list)
    thumbs_res: list[np.ndarray] = field(default_factory=list)
    thumbs_known: list[np.ndarray | None] = field(default_factory=list)
    mask_size: int | None = None

    def add_feat(self, key: str, f: np.ndarray) -> None:
        self.feats.setdefault(key, []).append(np.asarray(f, dtype=np.float32))  # half the memory at 36,500

    def feat(self, key: str) -> np.ndarray:
        return np.concatenate(self.feats[key]).astype(np.float64)


@dataclass(frozen=True)
class DoctorOptions:
    """How the doctor reads and measures (the fields are also keyword options of `diagnose`)."""

    mask_polarity: str | None = None  # for a plain mask folder
    smoke: bool = False  # seeded random networks (labelled SMOKE)
    device: str = "cpu"
    cache_dir: str | Path | bool | None = None  # feature cache: None/True default place, False none
    what_ifs: Sequence[str] = WHAT_IFS  # measured effects to run
    published_row: str | None = None  # add the verdict against this published row
    # how the user computed their own number, when they say (fid_convention, inception, lpips_range): a stated
    # convention other than the protocol's is a deviation whose effect is measured
    stated: dict[str, str | None] = field(default_factory=dict)
    seed: int = 0  # subsets and generator masks
    batch_size: int = 8
    allow_download: bool = True
    progress: bool | None = None  # None: matbench.progress's policy


def diagnose(results_dir: str | Path, gt_dir: str | Path, protocol: str, masks_dir: str | Path | None = None,
             options: DoctorOptions | None = None, **kw: Any) -> DoctorReport:
    """Inspect results/ground truths/masks against `protocol` (a name or a protocol TOML file); see the module doc.
    `kw`: fields of DoctorOptions, as an alternative to `options`."""
    t0 = time.perf_counter()
    o = dataclasses.replace(options or DoctorOptions(), **kw)
    mask_polarity, smoke, device, cache_dir, what_ifs = o.mask_polarity, o.smoke, o.device, o.cache_dir, o.what_ifs
    published_row, stated, seed, batch_size, allow_download = (o.published_row, o.stated, o.seed, o.batch_size,
                                                               o.allow_download)
    dp = load_protocol(protocol)
    req = dp.require
    stated = {k: v for k, v in (stated or {}).items() if v is not None}
    bad = set(what_ifs) - set(WHAT_IFS)
    if bad:
        raise InputError(f"unknown what-if(s) {', '.join(sorted(bad))}; known: {', '.join(WHAT_IFS)}")
    if published_row is not None:
        P.choose_row(dp.protocol, published_row, None)  # an unknown row is one line now, not after the work
    res = F.list_images(results_dir)
    gt = F.list_images(gt_dir)
    factors: list[Factor] = []

    # ---- pairing by id and header inspection
    ids = sorted(set(gt) & set(res))
    unpaired_gt, unpaired_res = sorted(set(gt) - set(res)), sorted(set(res) - set(gt))
    # a run's further samples (<id>_s<S>, pluralistic models) are not extra results
    unpaired_res = [i for i in unpaired_res if not (_SAMPLE.fullmatch(i) and _SAMPLE.fullmatch(i)[1] in gt)]
    if len(ids) < 2:
        raise InputError(f"{results_dir}: only {len(ids)} result id(s) match a ground truth in {gt_dir} "
                         f"({len(res)} results, {len(gt)} ground truths); ids are relative paths without extension")
    info_res = {i: inspect_file(res[i]) for i in ids}
    info_gt = {i: inspect_file(gt[i]) for i in ids}
    size_mismatch = [i for i in ids if info_res[i].size != info_gt[i].size]
    ids = [i for i in ids if i not in size_mismatch]
    if len(ids) < 2:
        raise InputError(f"{results_dir}: fewer than 2 results have the size of their ground truth in {gt_dir}")
    n = len(ids)

    # ---- masks
    masks = _MaskSource(Path(masks_dir), mask_polarity) if masks_dir is not None else None
    if masks is not None:
        masks.check_ids(ids)

    # ---- networks
    backend = stated.get("inception") if stated.get("inception") in _allowed(req.get("feature_extractor")) else None
    backend = backend or _allowed(req.get("feature_extractor", "inception-v3-compat"))[0]
    if backend not in F.names():
        raise InputError(f"protocol {dp.name}: feature_extractor {backend!r} is not a known extractor")
    conv = _allowed(req.get("fid_convention", "mat"))[0]
    cache = None if cache_dir is False else F.FeatureCache(None if cache_dir in (None, True) else cache_dir)
    net = _network(backend, device, smoke, batch_size, allow_download)
    other = OTHER_BACKEND[backend] if "backend" in what_ifs else None
    net_other = _network(other, device, smoke, batch_size, allow_download) if other else None
    lp = _lpips(device, smoke, allow_download)

    jpeg_res = [i for i in ids if info_res[i].format == "JPEG"]
    jpeg_gt = [i for i in ids if info_gt[i].format == "JPEG"]
    q_res = Counter(info_res[i].quality for i in jpeg_res).most_common(1)[0][0] if jpeg_res else None
    q_gt = Counter(info_gt[i].quality for i in jpeg_gt).most_common(1)[0][0] if jpeg_gt else None
    # the what-if encodes the lossless side at the lossy side's quality
    jpeg_side = ("gt", q_res) if jpeg_res and q_res else ("res", q_gt) if jpeg_gt and q_gt else (None, None)
    do_jpeg = "jpeg" in what_ifs and jpeg_side[0] is not None

    # ---- one read over the pairs
    acc = _Pass()
    batch: list[tuple[np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        shapes = Counter(b[0].shape for b in batch)
        for shape in shapes:  # networks take same-sized batches
            part = [b for b in batch if b[0].shape == shape]
            real = torch.cat([_t(g) for g, _ in part])
            fake = torch.cat([_t(r) for _, r in part])
            # results are cached too (content-addressed): a rerun after fixing one factor recomputes only what changed
            acc.add_feat("real", F.extract_cached(net, real, cache))
            acc.add_feat("fake", F.extract_cached(net, fake, cache))
            if net_other is not None:
                acc.add_feat("real_other", F.extract_cached(net_other, real, cache))
                acc.add_feat("fake_other", F.extract_cached(net_other, fake, cache))
            acc.lpips.setdefault("-1,1", []).extend(lp(real, fake).tolist())
            if "lpips" in what_ifs:  # the MAT PR#115 / pyiqa#271 mistake: [0, 1] into a [-1, 1] network
                with torch.no_grad():
                    d = lp.model(real.to(lp.device).float() / 255.0, fake.to(lp.device).float() / 255.0)
                acc.lpips.setdefault("0,1", []).extend(d.reshape(-1).float().cpu().tolist())
            if do_jpeg:
                side, q = jpeg_side
                if side == "gt":
                    real_j = torch.cat([_t(_jpeg(g, q)) for g, _ in part])
                    acc.add_feat("real_jpeg", F.extract_cached(net, real_j, cache))
                    acc.add_feat("fake_jpeg", acc.feats["fake"][-1])
                    acc.psnr_jpeg += [psnr(_jpeg(g, q), r) for g, r in part]
                else:
                    fake_j = torch.cat([_t(_jpeg(r, q)) for _, r in part])
                    acc.add_feat("real_jpeg", acc.feats["real"][-1])
                    acc.add_feat("fake_jpeg", F.extract_cached(net, fake_j, cache))
                    acc.psnr_jpeg += [psnr(g, _jpeg(r, q)) for g, r in part]
        batch.clear()

    order: list[str] = []
    mask_shape_bad: list[str] = []
    for iid in track(ids, desc="doctor", enabled=o.progress):
        g, r = read_image(gt[iid]), read_image(res[iid])
        hole = masks.hole(iid) if masks is not None else None
        if hole is not None and hole.shape != g.shape[:2]:
            mask_shape_bad.append(iid)
            hole = None
        acc.psnr.append(psnr(g, r))
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64)).mean(axis=2)
        if hole is not None:
            known = ~hole
            kd = float(diff[known].mean()) if known.any() else 0.0
            q = info_res[iid].quality
            if kd > PAIR_TOL and q and known.any():  # a JPEG result: its known pixels are the encoded ground truth's
                dj = np.abs(_jpeg(g, q).astype(np.float64) - r.astype(np.float64)).mean(axis=2)
                kd = min(kd, float(dj[known].mean()))
            acc.known_diff.append(kd)
            acc.known_diff_inv.append(float(diff[hole].mean()) if hole.any() else 0.0)
            acc.hole_ratio.append(float(hole.mean()))
            acc.thumbs_known.append(_thumb(known.astype(np.uint8) * 255))
            acc.mask_size = acc.mask_size or int(hole.shape[0])
        else:
            acc.known_diff.append(None)
            acc.known_diff_inv.append(None)
            acc.hole_ratio.append(None)
            acc.thumbs_known.append(None)
        acc.thumbs_gt.append(_thumb(g))
        acc.thumbs_res.append(_thumb(r))
        order.append(iid)
        batch.append((g, r))
        if len(batch) >= batch_size:
            flush()
    flush()

    real, fake = acc.feat("real"), acc.feat("fake")
    base_pids = pids_uids(real, fake)
    metrics = {"fid": fid(real, fake, conv), "pids": base_pids["pids"], "uids": base_pids["uids"],
               "psnr": float(np.mean([p for p in acc.psnr if math.isfinite(p)] or [float("inf")])),
               "lpips": float(np.mean(acc.lpips["-1,1"]))}

    # ---- image count and dataset ids
    n_req = req.get("n_images")
    missing = extra = None
    if dp.ids is not None:
        want = set(dp.ids)
        have = {i.rsplit("/", 1)[-1] for i in ids}
        missing, extra = sorted(want - have), sorted(have - want)
    yours: dict[str, Any] = {"n": n}
    if missing is not None:
        yours.update(missing=len(missing), extra=len(extra), missing_ids=missing[:5], extra_ids=extra[:5])
    if unpaired_gt or unpaired_res:
        yours.update(unpaired_gt=unpaired_gt[:10], unpaired_results=unpaired_res[:10])
    count_ok = (n_req is None or n == n_req) and not missing and not extra and not unpaired_gt and not unpaired_res
    effect, cost = None, ""
    if "n" in what_ifs and n_req and n != n_req:
        curve = fid_vs_n(real, fake, conv, int(n_req), seed)
        yours["fid_by_n"] = {str(s): round(v, 4) for s, v in curve["points"]}
        if curve["estimate"] is not None:
            yours["fid_expected_at_protocol_n"] = round(curve["estimate"], 4)
            yours["interval_95"] = [round(curve["low"], 4), round(curve["high"], 4)]
        if curve["why"] is None:
            effect = {"fid": curve["at_n"] - curve["estimate"]}
        else:
            yours["n_effect"] = curve["why"]
        cost = (f"no new features: FID of {N_DRAWS} random paired subsets (3 from {real.shape[1]:,} pairs up) at each "
                f"of {len(curve['points'])} sizes ({curve['points'][0][0]:,}..{n:,}), a line in 1/N read at "
                f"{int(n_req):,}; 95 % interval from the fit's scatter and the sampling of your pairs")
        if curve["why"] is not None:
            cost += "; no effect given (n_effect says why)"
    fix_parts = []
    if n_req and n != n_req:
        fix_parts.append(f"evaluate all {n_req:,} images of the protocol's dataset")
    if missing:
        fix_parts.append(f"{len(missing):,} protocol ids have no result ({_few(missing, 3)})")
    if extra:
        fix_parts.append(f"{len(extra):,} ids are not in the protocol's dataset ({_few(extra, 3)})")
    if unpaired_gt or unpaired_res:
        fix_parts.append(f"{len(unpaired_gt)} ground truths without result, {len(unpaired_res)} results without "
                         "ground truth (ids = relative paths without extension)")
    factors.append(Factor("image count", yours, {"n": n_req, "ids": dp.ids_source}, count_ok, effect,
                          "; ".join(fix_parts) or "-", cost))

    # ---- file format
    fmt_yours = {"results": _formats(info_res, ids), "gt": _formats(info_gt, ids)}
    fmt_ok = not jpeg_res and not jpeg_gt
    effect, cost, fix = None, "", "-"
    if not fmt_ok:
        side, q = jpeg_side
        fix = ("save results losslessly (PNG)" if jpeg_res else "") + \
              (" and " if jpeg_res and jpeg_gt else "") + \
              ("use ground truths prepared losslessly (`matbench data prepare` writes PNG)" if jpeg_gt else "")
        if do_jpeg:
            rj, fj = acc.feat("real_jpeg"), acc.feat("fake_jpeg")
            effect = {"fid": metrics["fid"] - fid(rj, fj, conv),
                      "psnr": metrics["psnr"] - float(np.mean([p for p in acc.psnr_jpeg if math.isfinite(p)]))}
            cost = (f"{n} JPEG encodes of the {'ground truths' if side == 'gt' else 'results'} at quality {q} and "
                    f"{n} extra Inception passes")
    factors.append(Factor("file format", fmt_yours, "lossless (PNG) results and ground truths", fmt_ok, effect, fix,
                          cost))

    # ---- image size (and the protocol's crop/resize policy)
    res_req = req.get("resolution")
    sizes = Counter(f"{info_gt[i].size[0]}x{info_gt[i].size[1]}" for i in ids)
    want_size = f"{res_req}x{res_req}" if res_req else None
    size_ok = (want_size is None or set(sizes) == {want_size}) and not size_mismatch
    fix = "-"
    if not size_ok:
        fix = (f"prepare the images at {res_req} px with the protocol's policy (`matbench data prepare --res {res_req}"
               f" --policy {dp.policy if dp.policy != 'any' else 'mat-val'}`) and inpaint those"
               if want_size and set(sizes) != {want_size} else "")
        if size_mismatch:
            fix += ("; " if fix else "") + f"results differ in size from their ground truth: {_few(size_mismatch)}"
    factors.append(Factor("image size", dict(sizes), {"size": want_size, "policy": dp.policy}, size_ok, None, fix,
                          "not measured: the model would have to inpaint the prepared images"))

    # ---- color mode
    modes = {"results": dict(Counter(info_res[i].mode for i in ids)), "gt": dict(Counter(info_gt[i].mode for i in ids))}
    odd = [f"{side}:{i} ({info[i].mode})" for side, info in (("results", info_res), ("gt", info_gt)) for i in ids
           if info[i].mode != "RGB"]
    factors.append(Factor("color mode", modes, "RGB (8 bits per channel)", not odd, None,
                          "-" if not odd else f"use 8-bit RGB files: {_few(odd)} (gray is replicated, alpha dropped, "
                                              "16-bit scaled, palettes expanded)"))

    # ---- EXIF orientation
    rot = [f"{side}:{i} ({info[i].orientation})" for side, info in (("results", info_res), ("gt", info_gt))
           for i in ids if info[i].orientation not in (None, 1)]
    factors.append(Factor("exif orientation", rot[:10] or "none", "none (pixels as stored)", not rot, None,
                          "-" if not rot else "apply and strip the EXIF orientation (PIL.ImageOps.exif_transpose) "
                                              "before inpainting: readers differ in whether they rotate"))

    # ---- masks: kind, hole ratios, hash, polarity
    kind_req = req.get("mask_kind")
    if masks is None:
        factors.append(Factor("masks", "none given", kind_req, False, None,
                              "give --masks (the protocol's mask set) to check the masks and the pairing"))
    else:
        factors += _mask_factors(masks, acc, dp, kind_req, mask_shape_bad, seed)

    # ---- pairing (known region, swapped files)
    factors.append(_pairing_factor(acc, order, masks is not None, metrics, real, fake, (gt, res), lp))

    # ---- metric conventions (recomputed from the same features / images)
    factors += _convention_factors(acc, metrics, (real, fake), req, (conv, backend, other), stated, what_ifs)
    factors += _precision_factors(net, (gt, res), order, (real, fake, metrics["fid"]), conv, o, stated)

    report = DoctorReport(dp.name, dp.protocol.title, factors, metrics, n, smoke)
    if published_row is not None:
        report.published = _verdict(dp.protocol, published_row, report)
    report.seconds = time.perf_counter() - t0
    return report


@lru_cache(maxsize=4)
def _network(name: str, device: str, smoke: bool, batch_size: int, allow_download: bool) -> F.FeatureExtractor:
    """Networks are built once per process (several diagnoses in one session, the tests)."""
    return F.get_extractor(name, device, smoke, batch_size=batch_size, allow_download=allow_download)


@lru_cache(maxsize=2)
def _lpips(device: str, smoke: bool, allow_download: bool) -> LPIPS:
    return LPIPS("alex", device, smoke, allow_download=allow_download)


def _formats(info: dict[str, FileInfo], ids: Sequence[str]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for i in ids:
        f = info[i]
        out[f"JPEG q{f.quality}" if f.format == "JPEG" and f.quality else f.format] += 1
    return dict(out)


def _mask_factors(masks: _MaskSource, acc: _Pass, dp: DoctorProtocol, kind_req: str | None,
                  shape_bad: Sequence[str], seed: int) -> list[Factor]:
    out = []
    kind = masks.maskset.meta.get("generator") if masks.maskset is not None else None
    yours_kind = kind or f"plain folder ({masks.polarity})"
    fix = "-"
    kind_ok = kind_req is None or kind in _allowed(kind_req)
    if not kind_ok:
        fix = (f"use the protocol's masks ({kind_req}: `matbench masks make {kind_req} ...` or the authors' "
               "released set)")
    if shape_bad:
        kind_ok = False
        fix = f"masks differ in size from their images: {_few(list(shape_bad))}"
    out.append(Factor("mask kind", yours_kind, kind_req, kind_ok, None, fix))
    ratios = [r for r in acc.hole_ratio if r is not None]
    if kind_req in MASK_KINDS and len(ratios) >= 2:
        # the generator at the masks' own size (hole ratios of MAT's brushes depend on it)
        size = masks.maskset.resolution if masks.maskset is not None else acc.mask_size
        size = size or int(dp.require.get("resolution") or 512)
        cmp = compare_hole_ratios(ratios, kind_req, size, seed=seed)
        ok = cmp["p"] >= KS_ALPHA
        yours = {"mean": round(cmp["yours"]["mean"], 4), "per_10pct_bin": _hist_text(cmp["yours"]["histogram"]
                                                                                     ["fraction"]),
                 "ks": round(cmp["ks"], 4), "p": float(f"{cmp['p']:.3g}")}
        proto = {"generator": kind_req, "size": size, "mean": round(cmp["protocol"]["mean"], 4),
                 "per_10pct_bin": _hist_text(cmp["protocol"]["histogram"]["fraction"])}
        out.append(Factor("hole ratios", yours, proto, ok, None,
                          "-" if ok else f"your masks' hole ratios differ from {kind_req}'s (KS {cmp['ks']:.2f}, "
                                         f"p {cmp['p']:.2g}): use the protocol's mask set (MAT#46)",
                          f"{HOLE_SAMPLE} generator masks at {size} px (no network)"))
    pin = dp.maskset_sha256
    if pin:
        ok = masks.sha256 == pin
        out.append(Factor("mask-set hash", masks.sha256 or "plain folder (no maskset.json)", pin, ok, None,
                          "-" if ok else "use the pinned mask set (maskset.json's sha256 differs)"))
    # polarity: a set read inverted changes the hole, not the known pixels; the known-region test shows it
    kd = [d for d in acc.known_diff if d is not None]
    ki = [d for d in acc.known_diff_inv if d is not None]
    inverted = bool(kd) and sum(d > PAIR_TOL for d in kd) > len(kd) / 2 and sum(d <= PAIR_TOL for d in ki) > len(ki) / 2
    mean_hole = float(np.mean(ratios)) if ratios else None
    out.append(Factor("mask polarity", {"polarity": masks.polarity or masks.maskset.polarity,
                                        "mean_hole_ratio": None if mean_hole is None else round(mean_hole, 4)},
                      "hole = the pixels the model filled", not inverted, None,
                      "-" if not inverted else "the results match their ground truths where the masks say 'hole' "
                                               "and differ where they say 'known': invert --mask-polarity"))
    return out


def _pairing_factor(acc: _Pass, order: list[str], have_masks: bool, metrics: dict[str, float], real: np.ndarray,
                    fake: np.ndarray, files: tuple[dict[str, Path], dict[str, Path]], lp: LPIPS) -> Factor:
    gt, res = files
    n = len(order)
    thumbs_gt = np.stack(acc.thumbs_gt)  # N, T, T, 3 uint8
    # result i is the completion of ground truth j with j's mask: compare over j's known region
    w = np.stack([k if k is not None else np.full((THUMB, THUMB), 255, np.uint8) for k in acc.thumbs_known])
    if have_masks and all(d is not None for d in acc.known_diff):
        bad = [i for i, d in enumerate(acc.known_diff) if d > PAIR_TOL]
        how = f"known region mean |diff| <= {PAIR_TOL:g} levels"
    else:  # no masks: a result that shares few pixels with its own ground truth and many with another one's
        own = _agreement(thumbs_gt, np.stack(acc.thumbs_res))
        bad = [int(i) for i in np.argsort(own, kind="stable") if own[i] < NO_MASK_AGREEMENT]
        how = "no masks: share of equal 32-px thumbnail cells"
    swaps: dict[int, int] = {}
    for i in bad[:SWAP_CHECK_MAX]:
        r = acc.thumbs_res[i]
        if have_masks:  # the fit must pass the known-region check (thumbnail blur aside) and beat its own
            d = np.concatenate([_masked_diff(thumbs_gt[c:c + 4096], w[c:c + 4096], r.astype(np.float32))
                                for c in range(0, n, 4096)])
            j = int(np.argmin(d))
            if j != i and d[j] < 0.5 * d[i] and d[j] <= 2 * PAIR_TOL:
                swaps[i] = j
        else:  # the unchanged known pixels: far more equal cells than with its own ground truth
            a = np.concatenate([_agreement(thumbs_gt[c:c + 4096], r[None]) for c in range(0, n, 4096)])
            j = int(np.argmax(a))
            if j != i and a[j] >= NO_MASK_AGREEMENT and a[j] > 2 * a[i]:
                swaps[i] = j
    mismatched = [order[i] for i in bad] if have_masks else []
    if not have_masks:
        bad = sorted(swaps)
    yours: dict[str, Any] = {"checked": how, "mismatched": len(bad), "ids": [order[i] for i in bad][:10]}
    if swaps:
        yours["fits_other_gt"] = {order[i]: order[j] for i, j in list(swaps.items())[:10]}
    ok = not bad
    effect, fix, cost = None, "-", ""
    if swaps:
        # the repaired pairing: result i against the ground truth it fits
        idx = np.arange(n)
        for i, j in swaps.items():
            idx[i] = j
        r2 = real[idx]
        rep = pids_uids(r2, fake)
        ps = list(acc.psnr)
        lps = list(acc.lpips["-1,1"])
        for i, j in swaps.items():
            g, r = read_image(gt[order[j]]), read_image(res[order[i]])
            if g.shape == r.shape:
                ps[i] = psnr(g, r)
                lps[i] = float(lp(_t(g), _t(r))[0])
        fin = [p for p in ps if math.isfinite(p)]
        effect = {"pids": metrics["pids"] - rep["pids"], "uids": metrics["uids"] - rep["uids"],
                  "psnr": metrics["psnr"] - float(np.mean(fin)), "lpips": metrics["lpips"] - float(np.mean(lps))}
        cost = f"{len(swaps)} re-read pairs, one SVM fit (features reused)"
        fix = ("rename the results so each carries its ground truth's id (MAT#86: P-IDS/U-IDS of 0 from mis-paired "
               f"files): {_few([f'{order[i]} -> {order[j]}' for i, j in swaps.items()])}")
    elif bad:
        fix = (f"{len(bad)} result(s) changed known pixels and fit no other ground truth: wrong images, shifted or "
               f"resized results, or another mask set ({_few(mismatched or [order[i] for i in bad])})")
    return Factor("pairing", yours, "every result keeps its ground truth's known pixels", ok, effect, fix, cost)


def _agreement(gts: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Share of thumbnail cells whose mean |gt - result| is within PAIR_TOL levels (per ground truth)."""
    d = np.abs(gts.astype(np.float32) - res.astype(np.float32)).mean(axis=3)
    return (d <= PAIR_TOL).mean(axis=(1, 2))


def _masked_diff(gts: np.ndarray, known: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Mean |gt - r| (levels) of thumbnails over each ground truth's known cells."""
    w = known.astype(np.float32) / 255.0
    d = np.abs(gts.astype(np.float32) - r[None]).mean(axis=3)
    return (d * w).sum(axis=(1, 2)) / np.maximum(w.sum(axis=(1, 2)), 1e-6)


def _convention_factors(acc: _Pass, metrics: dict[str, float], feats: tuple[np.ndarray, np.ndarray],
                        req: dict[str, Any], chosen: tuple[str, str, str | None], stated: dict[str, str],
                        what_ifs: Sequence[str]) -> list[Factor]:
    """Conventions recomputed from the same features (or images): chosen = (FID convention, backend, other one)."""
    real, fake = feats
    conv, backend, other = chosen
    out = []
    if "convention" in what_ifs:
        alt = stated.get("fid_convention")
        alt = alt if alt and alt != conv else ("torch-fidelity" if conv == "mat" else "mat")
        v = fid(real, fake, alt)
        mine = stated.get("fid_convention", "not stated")
        ok = mine == "not stated" or mine in _allowed(req.get("fid_convention", conv))
        out.append(Factor("fid covariance", mine, conv, ok, {"fid": v - metrics["fid"]},
                          "-" if ok else f"--fid-convention {conv}",
                          f"none: same features; under {alt} FID would be {v:.4g}"))
    if "lpips" in what_ifs:
        v = float(np.mean(acc.lpips["0,1"]))
        mine = stated.get("lpips_range", "not stated")
        ok = mine in ("not stated", "-1,1")
        out.append(Factor("lpips input range", mine, "-1,1", ok, {"lpips": v - metrics["lpips"]},
                          "-" if ok else "scale images to [-1, 1] before LPIPS (x / 127.5 - 1; MAT PR#115)",
                          f"{len(acc.lpips['0,1'])} extra LPIPS passes; with [0, 1] inputs LPIPS would be {v:.4g}"))
    if other is not None:
        v = fid(acc.feat("real_other"), acc.feat("fake_other"), conv)
        mine = stated.get("inception", "not stated")
        ok = mine == "not stated" or mine in _allowed(req.get("feature_extractor", backend))
        out.append(Factor("inception backend", mine, req.get("feature_extractor", backend), ok,
                          {"fid": v - metrics["fid"]}, "-" if ok else f"--inception {backend}",
                          f"{2 * len(real)} extra {other} passes; under {other} FID would be {v:.4g}"))
    return out


def _features(net: F.FeatureExtractor, images: Sequence[np.ndarray]) -> np.ndarray:
    """Features of uint8 HxWx3 images in their order, fresh (no cache: the what-if is how they are computed)."""
    out: list[np.ndarray | None] = [None] * len(images)
    for shape in dict.fromkeys(a.shape for a in images):  # networks take same-sized batches
        idx = [i for i, a in enumerate(images) if a.shape == shape]
        for i, f in zip(idx, net(torch.cat([_t(images[i]) for i in idx])), strict=True):
            out[i] = f
    return np.stack(out)


def _precision_factors(net: F.FeatureExtractor, files: tuple[dict[str, Path], dict[str, Path]], order: list[str],
                       base: tuple[np.ndarray, np.ndarray, float], conv: str, o: DoctorOptions,
                       stated: dict[str, str]) -> list[Factor]:
    """torch-fidelity#43: FID under another batch size, float32 statistics and a bf16 (autocast) network. The
    features of up to PASS_SAMPLE pairs are recomputed without the cache; ok when the relative effect is within
    EQUAL_RTOL, or (precision) when you state the protocol's precision."""
    real, fake, fid0 = base
    out: list[Factor] = []

    def rel(v: float, ref: float) -> float:
        return abs(v - ref) / max(abs(ref), 1e-12)

    if "statistics" in o.what_ifs:
        v = fd_in_dtype(real, fake, conv, torch.float32)
        mine = stated.get("statistics", "not stated")
        small = rel(v, fid0) <= EQUAL_RTOL
        ok = mine in ("not stated", "float64") or small
        out.append(Factor("statistics precision", mine, "float64", ok, {"fid": v - fid0},
                          "-" if ok else "accumulate the mean and covariance in float64 (the protocol's statistics)",
                          f"none: same features; with float32 statistics FID would be {v:.7g} "
                          f"({rel(v, fid0):.1e} relative)"))
    if not {"precision", "batch"} & set(o.what_ifs):
        return out
    gt, res = files
    n = len(order)
    pick = sorted(np.random.default_rng(o.seed).choice(n, size=min(n, PASS_SAMPLE), replace=False).tolist())
    g = [read_image(gt[order[i]]) for i in pick]
    r = [read_image(res[order[i]]) for i in pick]
    rb, fb = _features(net, g), _features(net, r)
    at_b = fid(rb, fb, conv)
    on = f"{len(pick):,} pairs" + ("" if len(pick) == n else f" of {n:,} (a seeded sample)")
    if "precision" in o.what_ifs:
        with precision_context("bf16", o.device):
            r16, f16 = _features(net, g), _features(net, r)
        v = fid(r16, f16, conv)
        mine = stated.get("precision", "not stated")
        ok = mine in ("not stated", "fp32") or rel(v, at_b) <= EQUAL_RTOL
        out.append(Factor("network precision", mine, "fp32 (no autocast)", ok, {"fid": v - at_b},
                          "-" if ok else "compute the features in float32 (no autocast / bf16)",
                          f"{2 * len(pick):,} bf16-autocast passes (the runner's `precision = \"bf16\"` path) against "
                          f"{2 * len(pick):,} fresh fp32 ones ({on}; the fp32 ones shared with the batch what-if); "
                          f"with a bf16 network FID would be {v:.5g} against {at_b:.5g} ({rel(v, at_b):.1e} relative)"))
    if "batch" in o.what_ifs:
        alt = ALT_BATCH if net.batch_size != ALT_BATCH else 32
        keep = net.batch_size
        net.batch_size = alt
        try:
            ra, fa = _features(net, g), _features(net, r)
        finally:
            net.batch_size = keep
        v = fid(ra, fa, conv)
        feat = float(max(np.abs(ra - rb).max(), np.abs(fa - fb).max()) / max(np.abs(rb).max(), 1e-12))
        ok = rel(v, at_b) <= EQUAL_RTOL
        yours = {"batch_size": keep, "compared_with": alt, "max_feature_diff": float(f"{feat:.3g}")}
        out.append(Factor("batch size", yours,
                          "not pinned: a feature must not depend on its batch", ok, {"fid": v - at_b},
                          "-" if ok else "on this device the features depend on the batch (torch-fidelity#43): state "
                                         "the batch size with the number, or compute in float32 with TF32 off "
                                         "(torch.backends.cudnn.allow_tf32 = False) or on the CPU",
                          f"{2 * len(pick):,} extra passes at batch size {keep} and {2 * len(pick):,} at {alt} ({on}); "
                          f"at batch size {alt} FID would be {v:.7g} ({rel(v, at_b):.1e} relative)"))
    return out


def _verdict(protocol: P.Protocol, row: str, report: DoctorReport) -> dict[str, Any]:
    """The gap to a published row and the factors ordered by their measured effect on it."""
    pub = protocol.published[row]
    metric = next((m for m in ("fid", "pids", "uids") if m in pub and m in report.metrics), None)
    if metric is None:
        return {"row": row, "metric": None, "line": f"{row}: no published metric the doctor measures"}
    gap = report.metrics[metric] - pub[metric]
    ranked = sorted((f for f in report.factors if f.effect and metric in f.effect and not f.ok),
                    key=lambda f: -abs(f.effect[metric]))
    explained = sum(f.effect[metric] for f in ranked)
    scale = 100.0 if metric in ("pids", "uids") else 1.0
    parts = ", ".join(f"{f.factor} {f.effect[metric] * scale:+.2f}" for f in ranked) or "no measured factor"
    line = (f"gap to {row}: {metric.upper()} {report.metrics[metric] * scale:.2f} vs {pub[metric] * scale:.2f} "
            f"({gap * scale:+.2f}); by measured effect: {parts}; unexplained {(gap - explained) * scale:+.2f}")
    if report.smoke:
        line = "SMOKE (random networks, not comparable): " + line
    return {"row": row, "metric": metric, "published": pub[metric], "gap": gap, "explained": explained,
            "order": [f.factor for f in ranked], "line": line}


# ------------------------------------------------------------------------------------------------- output


# label, scale, digits of each metric the doctor measures (P-IDS/U-IDS in %, as the papers print them)
METRIC_DISPLAY = {"fid": ("FID", 1.0, 2), "pids": ("P-IDS", 100.0, 2), "uids": ("U-IDS", 100.0, 2),
           "psnr": ("PSNR", 1.0, 2), "lpips": ("LPIPS", 1.0, 4)}


def _show(v: Any, top: bool = True) -> str:
    if isinstance(v, dict):
        inner = ", ".join(f"{k} {_show(x, False)}" if top else f"{k}: {_show(x, False)}" for k, x in v.items())
        return inner if top else "{" + inner + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x, False) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def read_saved(path: str | Path) -> dict[str, Any]:
    """A file written by `matbench doctor --save` (InputError naming it when it is not one)."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (write it with `matbench doctor ... --save FILE`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable doctor file ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != SAVE_SCHEMA or not isinstance(d.get("factors"), list):
        raise InputError(f"{path}: not a `matbench doctor --save` file (expected schema {SAVE_SCHEMA!r})")
    return d


def format_metric(name: str, value: float) -> str:
    """'FID 13.28', 'P-IDS 0.00' (in %)."""
    label, scale, digits = METRIC_DISPLAY.get(name, (name, 1.0, 4))
    return f"{label} {value * scale:.{digits}f}"


def format_effect(effect: dict[str, float] | None) -> str:
    if not effect:
        return "-"
    out = []
    for m, d in effect.items():
        label, scale, digits = METRIC_DISPLAY.get(m, (m, 1.0, 4))
        out.append(f"{label} {d * scale:+.{digits}f}")
    return ", ".join(out)


def format_table(report: DoctorReport) -> str:
    """The readable table: one block per factor (factor, ok, yours, protocol, effect, fix, cost)."""
    lines = []
    if report.smoke:
        lines.append("SMOKE: random network weights; the measured effects are not comparable with real ones")
    lines.append(f"matbench doctor: protocol {report.protocol} ({report.title})")
    base = "  ".join(format_metric(m, v) for m, v in report.metrics.items())
    lines.append(f"measured under the protocol's conventions on {report.n:,} images: {base}")
    lines.append("")
    w = max(len(f.factor) for f in report.factors)
    lines.append(f"{'factor':<{w}}  ok   effect (yours - protocol)")
    for f in report.factors:
        lines.append(f"{f.factor:<{w}}  {'ok ' if f.ok else 'NO '}  {format_effect(f.effect)}")
        pad = " " * (w + 2)
        lines.append(f"{pad}yours:    {_show(f.yours)}")
        lines.append(f"{pad}protocol: {_show(f.protocol)}")
        if not f.ok or f.fix != "-":
            lines.append(f"{pad}fix:      {f.fix}")
        if f.cost and (f.effect is not None or not f.ok):
            lines.append(f"{pad}cost:     {f.cost}")
    lines.append("")
    bad = [f.factor for f in report.factors if not f.ok]
    lines.append(f"{len(bad)} of {len(report.factors)} factors deviate" + (f": {', '.join(bad)}" if bad else "")
                 + f" ({report.seconds:.1f} s)")
    if report.published:
        lines.append(report.published["line"])
    return "\n".join(lines)


__all__ = ["METRIC_DISPLAY", "REPORT_WHAT_IFS", "SAVE_SCHEMA", "WHAT_IFS", "DoctorOptions", "DoctorProtocol",
           "DoctorReport", "Factor", "compare_hole_ratios", "diagnose", "fid_vs_n", "format_effect", "format_metric",
           "format_table",
           "inspect_file", "job_inputs", "jpeg_quality", "ks_two_sample", "load_protocol", "read_saved"]
