"""Mask sets on disk: one PNG per mask plus ``maskset.json``.

Layout of a mask set folder::

    maskset.json        format, generator, params, seed, resolution, polarity, count, and per mask
                        {name, file, sha256, hole_ratio}
    <name>.png          8-bit gray, two levels (0 / 255); names may contain '/' (dataset ids) -> sub-folders

Files written by matbench use MAT's convention, ``polarity: "known=255"`` (255 = known pixel, 0 = hole), so they can
be fed to MAT's own tools unchanged.  In memory a mask is always a bool ``hole`` (True = missing).  Mask i of a
generated set comes from seed ``seed + i`` (i = position in ``names``), so a mask never depends on the set size.

``MaskSet.sha256`` is the sha256 of the ``maskset.json`` bytes; it pins every mask file through their sha256 entries.
"""

from __future__ import annotations

import io as _io
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from matbench.data.datasets import Dataset
from matbench.data.masks import MASK_KINDS, generate_mask, generator_params
from matbench.errors import InputError, SpecError
from matbench.io import atomic_path, sha256_bytes, write_bytes_atomic, write_json_atomic
from matbench.progress import track

log = logging.getLogger(__name__)

MASKSET_FORMAT = "matbench-maskset/1"
MASKSET_JSON = "maskset.json"
POLARITIES = ("known=255", "hole=255")
SUSPICIOUS_LOW, SUSPICIOUS_HIGH = 0.01, 0.9


def index_names(n: int) -> list[str]:
    return [f"{i:06d}" for i in range(n)]


def _encode_png(levels: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(levels).save(buf, format="PNG")
    return buf.getvalue()


def _hole_to_file(hole: np.ndarray, polarity: str) -> np.ndarray:
    return np.where(hole, 0, 255).astype(np.uint8) if polarity == "known=255" else \
        np.where(hole, 255, 0).astype(np.uint8)


def _check_names(names: list[str]) -> None:
    seen = set()
    for n in names:
        if not n or n.startswith("/") or ".." in n.split("/") or "\\" in n:
            raise SpecError(f"mask name {n!r} is not a safe relative name")
        if n in seen:
            raise SpecError(f"mask name {n!r} appears twice")
        seen.add(n)


class MaskSet:
    """A mask set folder (see module docstring)."""

    def __init__(self, root: Path, meta: dict[str, Any], raw: bytes) -> None:
        self.root = root
        self.meta: dict[str, Any] = meta
        self.entries: list[dict[str, Any]] = meta["masks"]
        self.names: list[str] = [e["name"] for e in self.entries]
        self._index = {n: i for i, n in enumerate(self.names)}
        self.resolution: int = int(meta["resolution"])
        self.polarity: str = meta["polarity"]
        self.sha256: str = sha256_bytes(raw)

    @classmethod
    def open(cls, path: str | os.PathLike) -> MaskSet:
        """Open a mask set folder (or its maskset.json)."""
        path = Path(path)
        js = path if path.name == MASKSET_JSON or path.is_file() else path / MASKSET_JSON
        root = js.parent
        if not root.exists():
            raise InputError(f"{root}: no such directory")
        try:
            raw = js.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{root}: no {MASKSET_JSON} (make one with `matbench masks make` or "
                             "`matbench masks import`)") from None
        except OSError as e:
            raise InputError(f"{js}: cannot read ({e.strerror or e})") from None
        try:
            meta = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{js}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != MASKSET_FORMAT:
            raise InputError(f"{js}: not a matbench mask set (expected format {MASKSET_FORMAT!r})")
        for key in ("resolution", "polarity", "masks"):
            if key not in meta:
                raise InputError(f"{js}: missing key {key!r}")
        if meta["polarity"] not in POLARITIES:
            raise InputError(f"{js}: polarity {meta['polarity']!r} is not one of {', '.join(POLARITIES)}")
        return cls(root, meta, raw)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"MaskSet({str(self.root)!r}, {len(self)} masks, {self.resolution}px, {self.meta.get('generator')})"

    def _entry(self, name_or_index: str | int) -> dict[str, Any]:
        if isinstance(name_or_index, (int, np.integer)):
            if not 0 <= int(name_or_index) < len(self.entries):
                raise InputError(f"{self.root}: mask index {name_or_index} out of range (0..{len(self.entries) - 1})")
            return self.entries[int(name_or_index)]
        if name_or_index not in self._index:
            raise InputError(f"{self.root}: no mask named {name_or_index!r}")
        return self.entries[self._index[name_or_index]]

    def path_of(self, name_or_index: str | int) -> Path:
        return self.root / self._entry(name_or_index)["file"]

    def hole(self, name_or_index: str | int, image_size: int | tuple[int, int] | None = None) -> np.ndarray:
        """bool (R, R), True = hole. InputError naming the file if missing, undecodable, wrong size or not binary.

        `image_size` (R or (H, W)) is the prepared image's size; a mask of another size is an error naming the file.
        """
        path = self.path_of(name_or_index)
        if image_size is not None:
            hw = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
            if hw != (self.resolution, self.resolution):
                raise InputError(f"{path}: mask is {self.resolution}x{self.resolution}, the image is {hw[1]}x{hw[0]}")
        levels = _read_levels(path)
        if levels.shape != (self.resolution, self.resolution):
            raise InputError(f"{path}: mask is {levels.shape[1]}x{levels.shape[0]}, the mask set says "
                             f"{self.resolution}x{self.resolution}")
        check_mask_levels(levels, path, self.polarity)
        bad = ~np.isin(levels, (0, 255))
        if bad.any():
            raise InputError(f"{path}: mask has values other than 0 and 255 (e.g. {int(levels[bad][0])})")
        return (levels == 0) if self.polarity == "known=255" else (levels == 255)

    def check_usable(self) -> None:
        """Refuse a set of 0/1 masks or one whose hole ratio is 0 or 1 everywhere (see `check_masks`)."""
        check_masks(((self.path_of(n), _read_levels(self.path_of(n))) for n in self.names), self.polarity, self.root)

    def hole_ratios(self) -> np.ndarray:
        """Hole ratio per mask, as recorded in maskset.json (float64, in `names` order)."""
        return np.array([float(e["hole_ratio"]) for e in self.entries], dtype=np.float64)

    def names_for(self, ids: list[str]) -> list[str]:
        """Mask names for dataset ids: the same names when the set is named by ids, else masks 0..len(ids)-1."""
        if all(i in self._index for i in ids):
            return list(ids)
        if self.names[: len(ids)] == index_names(min(len(ids), len(self.names))) and len(self.names) >= len(ids):
            return self.names[: len(ids)]
        missing = [i for i in ids if i not in self._index]
        raise InputError(f"{self.root}: {len(missing):,} dataset ids have no mask (e.g. {', '.join(missing[:3])}) "
                         f"and the set has only {len(self.names):,} index-named masks")

    def verify(self) -> list[str]:
        """Names whose file is missing or whose sha256 differs from maskset.json."""
        bad = []
        for e in self.entries:
            p = self.root / e["file"]
            try:
                if sha256_bytes(p.read_bytes()) != e["sha256"]:
                    bad.append(e["name"])
            except OSError:
                bad.append(e["name"])
        return bad


FIX_01 = ("rescale the files to 0/255, or import them with `matbench masks import SRC -o DIR --polarity P "
          "--binarize 1` (value >= 1 counts as 255) and use that mask set")


def check_mask_levels(levels: np.ndarray, where: str | os.PathLike, polarity: str) -> None:
    """Refuse one mask file stored as 0/1 instead of 0/255 (InputError naming it and the fix).

    Read with a 128 threshold such a file is all hole (known=255) or all known (hole=255): the model silently
    changes every pixel or none. A 0/255 mask never holds the value 1, so max == 1 means values {0, 1}.
    """
    if levels.size and int(levels.max()) == 1:
        reads = "all hole" if polarity == "known=255" else "all known (nothing to inpaint)"
        raise InputError(f"{where}: mask holds only the values 0 and 1 (a 0/1 mask saved as 8-bit, not 0/255), so "
                         f"with polarity {polarity} every pixel reads as {reads}; {FIX_01}")


def check_masks(masks: Iterable[tuple[str | os.PathLike, np.ndarray]], polarity: str,
                source: str | os.PathLike) -> None:
    """Refuse masks no model can use, before any work: 0/1 files, or a set whose hole ratio is 0 or 1 everywhere.

    `masks` yields (file, uint8 levels) lazily; `polarity` says what 255 means (files are thresholded at 128, as
    every reader does). Reading stops at the first mask with 0 < hole ratio < 1, so a usable set costs one file.
    Call it where masks are read: `inpaint`, `eval`, and spec validation for `run`.
    """
    if polarity not in POLARITIES:
        raise SpecError(f"mask polarity {polarity!r} must be one of {', '.join(POLARITIES)}")
    n = n_full = 0
    for where, levels in masks:
        check_mask_levels(levels, where, polarity)
        hole = levels < 128 if polarity == "known=255" else levels >= 128
        ratio = float(hole.mean()) if hole.size else 0.0
        if 0.0 < ratio < 1.0:
            return
        n += 1
        n_full += ratio == 1.0
    if n == 0:
        return
    what = ("all hole (hole ratio 1: every pixel missing)" if n_full == n else
            "hole-free (hole ratio 0: nothing to inpaint)" if n_full == 0 else "all hole or hole-free (ratio 0 or 1)")
    raise InputError(f"{source}: every one of the {n:,} masks is {what} with polarity {polarity}; check the "
                     "polarity (known=255: white = known, MAT; hole=255: white = hole, LaMa), or rescale 0/1 masks "
                     "to 0/255 / import them with `matbench masks import --binarize T`")


def check_maskset_dir(path: str | os.PathLike, key: str) -> None:
    """Spec validation of a mask set path (so `run` and `--dry-run` refuse it up front): SpecError naming `key`."""
    try:
        MaskSet.open(path).check_usable()
    except InputError as e:
        raise SpecError(f"{key}: {e}") from None


def _read_levels(path: Path) -> np.ndarray:
    """Decode a mask image file to uint8 HxW (RGB -> PIL 'L')."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise InputError(f"{path}: {im.mode} mask; expected 8-bit gray or RGB")
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path}: cannot decode mask image ({type(e).__name__}: {e})") from None


def _write_set(out_dir: Path, meta: dict[str, Any], holes, names: list[str]) -> MaskSet:
    """Write PNGs (known=255) and maskset.json last, so a folder with maskset.json is complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, hole in zip(names, holes, strict=True):
        data = _encode_png(_hole_to_file(hole, "known=255"))
        fname = f"{name}.png"
        write_bytes_atomic(out_dir / fname, data)
        entries.append({"name": name, "file": fname, "sha256": sha256_bytes(data),
                        "hole_ratio": round(float(hole.mean()), 8)})
    if entries:  # the files' size (imports learn it from the first file)
        meta = {**meta, "resolution": int(hole.shape[0])}
    meta = {**meta, "polarity": "known=255", "count": len(entries), "masks": entries}
    write_json_atomic(out_dir / MASKSET_JSON, meta)
    return MaskSet.open(out_dir)


def make_maskset(kind: str, n: int, resolution: int, seed: int, out_dir: str | os.PathLike,
                 names: list[str] | None = None, progress: bool | None = False, hole_range: Any = None) -> MaskSet:
    """Generate `n` masks (mask i from seed+i) into `out_dir`; named by `names` (e.g. dataset ids) or 000000..

    `hole_range` [lo, hi] (MAT kinds): the official `RandomMask(s, hole_range=[lo, hi])`, recorded in maskset.json.
    """
    if kind not in MASK_KINDS:
        raise SpecError(f"mask kind {kind!r} is unknown (choose from {', '.join(MASK_KINDS)})")
    if names is None:
        names = index_names(int(n))
    elif len(names) != n:
        raise SpecError(f"{len(names)} names given for {n} masks")
    _check_names(names)
    meta = {"format": MASKSET_FORMAT, "generator": kind, "params": generator_params(kind, resolution, hole_range),
            "seed": int(seed), "seeding": "mask i (position in the name list) from seed + i",
            "resolution": int(resolution)}
    idx = range(len(names))
    if progress is not False:
        idx = track(idx, desc=f"masks {kind}", unit="mask", enabled=progress)
    holes = (generate_mask(kind, resolution, seed + i, hole_range) for i in idx)
    return _write_set(Path(out_dir), meta, holes, names)


def import_maskset(src: str | os.PathLike, out_dir: str | os.PathLike, polarity: str,
                   binarize: int | None = None) -> MaskSet:
    """Import external mask images (folder tree or zip) into a matbench mask set (written known=255).

    `polarity` says what 255 means in the source files: "known=255" (MAT's released masks) or "hole=255" (LaMa).
    Without `binarize` every file must hold only 0 and 255; with it, values >= binarize count as 255.
    All masks must be square and of one size.  A mean hole ratio above 0.9 or below 0.01 logs a polarity warning.
    """

    if polarity not in POLARITIES:
        raise SpecError(f"polarity {polarity!r} must be one of {', '.join(POLARITIES)} "
                        "(what a 255 pixel means in the source files)")
    if binarize is not None and not 1 <= int(binarize) <= 255:
        raise SpecError(f"--binarize {binarize} must be in 1..255")
    ds = Dataset.open(src)
    res: list[int] = []  # the set's size, fixed by the first mask

    def holes():
        for image_id in ds.ids:
            yield _import_one(ds, image_id, res, polarity, binarize)

    meta = {"format": MASKSET_FORMAT, "generator": "import", "params": {
        "source": str(src), "source_polarity": polarity, "binarize": binarize,
        "source_manifest_sha256": ds.manifest_sha256()}, "seed": None, "resolution": None}
    mset = _write_set(Path(out_dir), meta, holes(), list(ds.ids))
    mean_hole = float(mset.hole_ratios().mean())
    if mean_hole > SUSPICIOUS_HIGH or mean_hole < SUSPICIOUS_LOW:
        log.warning("%s: mean hole ratio %.4f with polarity %s; the polarity may be inverted", src, mean_hole,
                    polarity)
    return mset


def _import_one(ds, image_id: str, res: list[int], polarity: str, binarize: int | None) -> np.ndarray:
    where = ds.source_name(image_id)
    try:
        with Image.open(_io.BytesIO(ds.read_bytes(image_id))) as im:
            im.load()
            levels = np.asarray(im.convert("L"), dtype=np.uint8)
    except Exception as e:
        raise InputError(f"{where}: cannot decode mask image ({type(e).__name__})") from None
    h, w = levels.shape
    if not res:
        if h != w:
            raise InputError(f"{where}: mask is {w}x{h}; masks must be square")
        res.append(h)
    if (h, w) != (res[0], res[0]):
        raise InputError(f"{where}: mask is {w}x{h}, the others are {res[0]}x{res[0]}")
    if binarize is None:
        bad = ~np.isin(levels, (0, 255))
        if bad.any():
            vals = np.unique(levels[bad])
            raise InputError(f"{where}: mask has values other than 0 and 255 ({len(vals)} other levels, e.g. "
                             f"{', '.join(map(str, vals[:3]))}); threshold them on purpose with "
                             "`matbench masks import SRC -o DIR --polarity P --binarize T`")
        white = levels == 255
    else:
        white = levels >= int(binarize)
    return ~white if polarity == "known=255" else white


def hole_ratio_stats(ratios: Any) -> dict[str, Any]:
    """n, mean, std (population), min, max and a 10-bin histogram over [0, 1] (last bin includes 1.0)."""
    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0:
        raise SpecError("no hole ratios to summarise")
    counts, edges = np.histogram(r, bins=10, range=(0.0, 1.0))
    labels = [f"{10 * i}-{10 * (i + 1)}%" for i in range(10)]
    return {
        "n": int(r.size), "mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
        "max": float(r.max()), "median": float(np.median(r)),
        "histogram": {"bins": labels, "edges": [round(float(e), 10) for e in edges], "counts": [int(c) for c in counts],
                      "fraction": [float(c) / r.size for c in counts]},
    }


def plot_hole_ratio_hist(ratios: Any, out_png: str | os.PathLike, title: str = "") -> Path:
    """Bar chart of the 10-bin hole-ratio histogram (percentage of masks per bin), like MAT supp. Fig. A.2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    stats = hole_ratio_stats(ratios)
    pct = [100 * f for f in stats["histogram"]["fraction"]]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.bar(range(10), pct, width=0.8, color="#4c72b0", edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(10))
    ax.set_xticklabels(stats["histogram"]["bins"], rotation=30, fontsize=8)
    ax.set_xlabel("hole ratio")
    ax.set_ylabel("masks (%)")
    ax.set_title(title or f"hole ratio, n={stats['n']:,}, mean {stats['mean']:.3f}")
    for i, p in enumerate(pct):
        ax.text(i, p, f"{p:.1f}", ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
