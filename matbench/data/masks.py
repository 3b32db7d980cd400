"""Free-form mask generators: MAT's large/small settings (bit-exact) and LaMa's thick/medium/thin families.

In memory a mask is a bool ``hole`` array (H, W), True = missing pixel.

MAT kinds ("mat-large", "mat-small") reproduce the official ``datasets/mask_generator_512.py`` and
``mask_generator_512_small.py`` (fenglinglwb/MAT) draw for draw: ``generate_mask(kind, R, seed)`` equals the official
``RandomMask(R)`` called right after ``np.random.seed(seed)``, but draws from a private
``np.random.RandomState(seed)`` so the global numpy state is never touched.  Things that matter for bit-exactness:

* every draw comes from the legacy RandomState (``randint``, ``uniform``, ``normal`` with its cached second Gaussian,
  ``random``), in the official order;
* per brush stroke two ``random()`` draws decide image flips whose results the official code throws away -- the draws
  are still consumed here, nothing is flipped;
* strokes are rasterised with Pillow's ``ImageDraw.line`` + vertex ellipses (pixels depend on Pillow's rasteriser);
* masks with hole ratio 0 or 1 (outside the open ``hole_range``) are discarded and redrawn from the same stream.

LaMa kinds ("lama-thick", "lama-medium", "lama-thin") follow LaMa's ``MixedMaskGenerator`` as configured by
``configs/data_gen/random_{thick,medium,thin}_512.yaml`` (advimman/lama): pick irregular strokes (weight 1) or boxes
(weight 0.3), cv2 line strokes / axis-aligned boxes with the same parameter ranges, up to 5 variants, keep the first
with hole area <= 0.5.  LaMa itself never seeds these draws, so exact LaMa masks cannot be reproduced; ours come from
``np.random.RandomState(seed)`` per mask (documented in docs/masks.md).  Parameters are scaled linearly from 512 for
other resolutions (LaMa ships only 256 and 512 configs; at 256 we use its 256 configs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from matbench.errors import SpecError

MASK_KINDS: tuple[str, ...] = ("mat-large", "mat-small", "lama-thick", "lama-medium", "lama-thin")

# Official MAT settings: (box fills of size s//2, box fills of size s, brush strokes) upper bounds for randint.
_MAT_SETTINGS: dict[str, tuple[int, int, int]] = {
    "mat-large": (5, 3, 9),
    "mat-small": (3, 2, 4),
}

# LaMa configs/data_gen/random_*_{512,256}.yaml (irregular_proba 1, box_proba 0.3, max_angle 4 everywhere).
_LAMA_CONFIGS: dict[int, dict[str, dict[str, Any]]] = {
    512: {
        "lama-thick": {"irregular": dict(min_times=1, max_times=5, max_width=250, max_angle=4, max_len=450),
                       "box": dict(margin=10, bbox_min_size=30, bbox_max_size=300, min_times=1, max_times=4)},
        "lama-medium": {"irregular": dict(min_times=4, max_times=10, max_width=100, max_angle=4, max_len=200),
                        "box": dict(margin=0, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=5)},
        "lama-thin": {"irregular": dict(min_times=4, max_times=70, max_width=20, max_angle=4, max_len=100),
                      "box": None},
    },
    256: {
        "lama-thick": {"irregular": dict(min_times=1, max_times=5, max_width=100, max_angle=4, max_len=200),
                       "box": dict(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=3)},
        "lama-medium": {"irregular": dict(min_times=4, max_times=5, max_width=50, max_angle=4, max_len=100),
                        "box": dict(margin=0, bbox_min_size=10, bbox_max_size=50, min_times=1, max_times=5)},
        "lama-thin": {"irregular": dict(min_times=4, max_times=50, max_width=10, max_angle=4, max_len=40),
                      "box": None},
    },
}
_LAMA_IRREGULAR_PROBA = 1.0
_LAMA_BOX_PROBA = 0.3
_LAMA_VARIANTS = 5
_LAMA_MAX_AREA = 0.5


def _check(kind: str, resolution: int) -> None:
    if kind not in MASK_KINDS:
        raise SpecError(f"mask kind {kind!r} is unknown (choose from {', '.join(MASK_KINDS)})")
    if int(resolution) != resolution or resolution < 16:
        raise SpecError(f"mask resolution {resolution!r} must be an integer >= 16")


# ----------------------------------------------------------------------------------------------------------------
# MAT


def _mat_brush(rng: np.random.RandomState, max_tries: int, s: int) -> np.ndarray:
    """Brush-stroke layer (uint8 0/1, 1 = stroke), official draw order."""
    min_vertex, max_vertex = 4, 18
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    min_width, max_width = 12, 48
    average_radius = math.sqrt(2 * s * s) / 8
    canvas = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.randint(max_tries)):
        n_vertex = rng.randint(min_vertex, max_vertex)
        a_min = mean_angle - rng.uniform(0, angle_range)
        a_max = mean_angle + rng.uniform(0, angle_range)
        angles = [(2 * math.pi - rng.uniform(a_min, a_max)) if i % 2 == 0 else rng.uniform(a_min, a_max)
                  for i in range(n_vertex)]
        # The official code reads (h, w) from PIL's (width, height); identical for square canvases.
        pts = [(int(rng.randint(0, s)), int(rng.randint(0, s)))]
        for i in range(n_vertex):
            # scale is a float floor division in the official code (45.0 at 512), kept so the normal draw matches.
            r = np.clip(rng.normal(loc=average_radius, scale=average_radius // 2), 0, 2 * average_radius)
            x = np.clip(pts[-1][0] + r * math.cos(angles[i]), 0, s)
            y = np.clip(pts[-1][1] + r * math.sin(angles[i]), 0, s)
            pts.append((int(x), int(y)))
        width = int(rng.uniform(min_width, max_width))
        draw.line(pts, fill=1, width=width)
        half = width // 2
        for x, y in pts:
            draw.ellipse((x - half, y - half, x + half, y + half), fill=1)
        # Two flips whose results the official code discards: consume the draws, change nothing.
        rng.random_sample()
        rng.random_sample()
    layer = np.asarray(canvas, dtype=np.uint8)
    if rng.random_sample() > 0.5:
        layer = layer[::-1, :]
    if rng.random_sample() > 0.5:
        layer = layer[:, ::-1]
    return layer


MAX_REDRAWS = 100_000  # the official loop never gives up; a range no mask reaches would hang it


def check_hole_range(kind: str, hole_range: Any) -> tuple[float, float]:
    """Validate `RandomMask(s, hole_range=[lo, hi])` for a MAT kind: 0 <= lo < hi <= 1, and lo + hi large enough
    that every official `randint(int(n * (lo + hi)))` has a positive bound (the official code raises otherwise)."""
    if kind not in _MAT_SETTINGS:
        raise SpecError(f"hole_range exists only for MAT kinds ({', '.join(_MAT_SETTINGS)}), not {kind!r}")
    try:
        lo, hi = (float(x) for x in hole_range)
    except (TypeError, ValueError):
        raise SpecError(f"hole_range must be two numbers [lo, hi], got {hole_range!r}") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise SpecError(f"hole_range [{lo}, {hi}] must satisfy 0 <= lo < hi <= 1")
    coef = min(lo + hi, 1.0)
    need = max(1.0 / n for n in _MAT_SETTINGS[kind])
    if any(int(n * coef) < 1 for n in _MAT_SETTINGS[kind]):
        raise SpecError(f"hole_range [{lo}, {hi}]: {kind} needs lo + hi >= {need:.3f} (the official generator draws "
                        f"randint(int(n * (lo + hi))) for n in {_MAT_SETTINGS[kind]}, which fails below that)")
    return lo, hi


def spec_hole_range(value: Any, kind: str | None, key: str) -> tuple[float, float] | None:
    """A spec's `hole_range = [lo, hi]` for a generated mask set, validated (SpecError naming `key`)."""
    if value is None:
        return None
    if kind is None:
        raise SpecError(f"{key}: only for generated masks (kind = ...), not a path")
    if not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise SpecError(f"{key}: must be [lo, hi] (two numbers), got {value!r}")
    try:
        return check_hole_range(kind, value)
    except SpecError as e:
        raise SpecError(f"{key}: {e}") from None


def _mat_mask(rng: np.random.RandomState, kind: str, s: int,
              hole_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """One MAT mask from `rng` as bool hole (True = hole)."""
    n_half, n_full, n_brush = _MAT_SETTINGS[kind]
    lo, hi = hole_range
    coef = min(lo + hi, 1.0)
    for _ in range(MAX_REDRAWS):
        known = np.ones((s, s), dtype=bool)
        for n_max, size in ((int(n_half * coef), s // 2), (int(n_full * coef), s)):
            for _ in range(rng.randint(n_max)):
                w, h = rng.randint(size), rng.randint(size)
                ww, hh = w // 2, h // 2
                x, y = rng.randint(-ww, s - w + ww), rng.randint(-hh, s - h + hh)
                known[max(y, 0):min(y + h, s), max(x, 0):min(x + w, s)] = False
        known &= _mat_brush(rng, int(n_brush * coef), s) == 0
        hole_ratio = 1.0 - known.mean()
        if hole_ratio <= lo or hole_ratio >= hi:
            continue  # official: discard and redraw from the same stream
        return ~known
    raise SpecError(f"{kind} at {s}px: no mask with hole ratio in ({lo}, {hi}) after {MAX_REDRAWS:,} draws; "
                    "widen hole_range")


# ----------------------------------------------------------------------------------------------------------------
# LaMa


def lama_config(kind: str, resolution: int) -> dict[str, Any]:
    """Generator parameters for a LaMa family at `resolution` (LaMa's own config at 256/512, else scaled from 512)."""
    _check(kind, resolution)
    if not kind.startswith("lama-"):
        raise SpecError(f"{kind!r} is not a LaMa mask family")
    if resolution in _LAMA_CONFIGS:
        return {k: (dict(v) if v else None) for k, v in _LAMA_CONFIGS[resolution][kind].items()}
    base = _LAMA_CONFIGS[512][kind]
    f = resolution / 512.0
    out: dict[str, Any] = {}
    irr = dict(base["irregular"])
    for key in ("max_width", "max_len"):
        irr[key] = max(1, round(irr[key] * f))
    out["irregular"] = irr
    if base["box"]:
        box = dict(base["box"])
        for key in ("margin", "bbox_min_size", "bbox_max_size"):
            box[key] = max(1 if key != "margin" else 0, round(box[key] * f))
        out["box"] = box
    else:
        out["box"] = None
    return out


def _lama_irregular(rng: np.random.RandomState, s: int, max_angle: int, max_len: int, max_width: int,
                    min_times: int, max_times: int) -> np.ndarray:
    import cv2

    canvas = np.zeros((s, s), np.float32)
    # LaMa's RandomIrregularMaskGenerator (no ramp) passes max_times + 1 as the inclusive upper bound.
    for i in range(rng.randint(min_times, max_times + 2)):
        x0, y0 = rng.randint(s), rng.randint(s)
        for _ in range(1 + rng.randint(5)):
            angle = 0.01 + rng.randint(max_angle)
            if i % 2 == 0:
                angle = 2 * 3.1415926 - angle
            length = 10 + rng.randint(max_len)
            brush_w = 5 + rng.randint(max_width)
            x1 = int(np.clip(np.int32(x0 + length * np.sin(angle)), 0, s))
            y1 = int(np.clip(np.int32(y0 + length * np.cos(angle)), 0, s))
            cv2.line(canvas, (int(x0), int(y0)), (x1, y1), 1.0, int(brush_w))
            x0, y0 = x1, y1
    return canvas > 0


def _lama_box(rng: np.random.RandomState, s: int, margin: int, bbox_min_size: int, bbox_max_size: int,
              min_times: int, max_times: int) -> np.ndarray:
    canvas = np.zeros((s, s), bool)
    # RandomRectangleMaskGenerator (no ramp) passes bbox_max_size + 1; make_random_rectangle_mask clips it.
    bmax = min(bbox_max_size + 1, s - 2 * margin)
    for _ in range(rng.randint(min_times, max_times + 1)):
        bw, bh = rng.randint(bbox_min_size, bmax), rng.randint(bbox_min_size, bmax)
        x, y = rng.randint(margin, s - margin - bw + 1), rng.randint(margin, s - margin - bh + 1)
        canvas[y:y + bh, x:x + bw] = True
    return canvas


def _lama_mask(rng: np.random.RandomState, kind: str, s: int) -> np.ndarray:
    cfg = lama_config(kind, s)
    probas = np.array([_LAMA_IRREGULAR_PROBA] + ([_LAMA_BOX_PROBA] if cfg["box"] else []), dtype=np.float32)
    probas /= probas.sum()
    while True:  # LaMa drops images whose variants are all too large; we keep drawing instead
        for _ in range(_LAMA_VARIANTS):
            which = rng.choice(len(probas), p=probas)
            if which == 0:
                hole = _lama_irregular(rng, s, **cfg["irregular"])
            else:
                hole = _lama_box(rng, s, **cfg["box"])
            ratio = hole.mean()
            if 0.0 < ratio <= _LAMA_MAX_AREA:
                return hole


# ----------------------------------------------------------------------------------------------------------------
# Public API


def generate_mask(kind: str, resolution: int, seed: int, hole_range: Any = None) -> np.ndarray:
    """One mask as bool (R, R), True = hole.

    MAT kinds equal the official ``RandomMask(R, hole_range=[lo, hi])`` after ``np.random.seed(seed)`` (bit-exact;
    default range [0, 1]); the global numpy random state is not used. `hole_range` is for MAT kinds only.
    """
    _check(kind, resolution)
    rng = np.random.RandomState(int(seed))
    if kind in _MAT_SETTINGS:
        hr = (0.0, 1.0) if hole_range is None else check_hole_range(kind, hole_range)
        return _mat_mask(rng, kind, int(resolution), hr)
    if hole_range is not None:
        check_hole_range(kind, hole_range)  # raises: not a MAT kind
    return _lama_mask(rng, kind, int(resolution))


def generate_masks(kind: str, resolution: int, n: int, base_seed: int = 0,
                   hole_range: Any = None) -> Iterator[np.ndarray]:
    """`n` masks; mask i comes from seed ``base_seed + i`` so it never depends on n or on how work is split."""
    _check(kind, resolution)
    for i in range(int(n)):
        yield generate_mask(kind, resolution, base_seed + i, hole_range)


def generate_mask_sequence(kind: str, resolution: int, n: int, seed: int = 0) -> Iterator[np.ndarray]:
    """`n` MAT masks drawn in ONE stream after seeding once, like the official ``__main__`` loop.

    Reproduces the official statistics script (``np.random.seed(seed)`` then ``RandomMask`` n times); mask i here
    depends on all masks before it, so prefer ``generate_masks`` for mask sets.
    """
    _check(kind, resolution)
    if kind not in _MAT_SETTINGS:
        raise SpecError(f"single-sequence mode exists only for MAT kinds, not {kind!r}")
    rng = np.random.RandomState(int(seed))
    for _ in range(int(n)):
        yield _mat_mask(rng, kind, int(resolution))


def generator_params(kind: str, resolution: int, hole_range: Any = None) -> dict[str, Any]:
    """Parameters recorded in maskset.json for provenance."""
    _check(kind, resolution)
    if kind in _MAT_SETTINGS:
        hr = [0.0, 1.0] if hole_range is None else list(check_hole_range(kind, hole_range))
        n_half, n_full, n_brush = _MAT_SETTINGS[kind]
        return {
            "reference": "fenglinglwb/MAT datasets/" + ("mask_generator_512.py" if kind == "mat-large"
                                                        else "mask_generator_512_small.py"),
            "box_fills_half": n_half, "box_fills_full": n_full, "brush_strokes": n_brush,
            "brush_vertices": [4, 18], "brush_width": [12, 48], "hole_range": hr,
            "seeding": "np.random.RandomState(seed + index) per mask (= official RandomMask after np.random.seed)",
        }
    if hole_range is not None:
        check_hole_range(kind, hole_range)  # raises: not a MAT kind
    return {
        "reference": "advimman/lama MixedMaskGenerator, configs/data_gen/random_" + kind.split("-")[1] + "_*.yaml",
        **lama_config(kind, resolution),
        "irregular_proba": _LAMA_IRREGULAR_PROBA, "box_proba": _LAMA_BOX_PROBA,
        "variants": _LAMA_VARIANTS, "max_area": _LAMA_MAX_AREA,
        "seeding": "np.random.RandomState(seed + index) per mask (LaMa itself is unseeded)",
    }
