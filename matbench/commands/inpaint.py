"""`matbench inpaint`: run any registered model on a folder of images and masks, write PNGs.

Images are matched to masks by id (path relative to the folder, without extension). Masks come from a mask set
(a folder with maskset.json, which records its polarity) or from plain mask files, whose polarity must then be
given with --mask-polarity (known=255: MAT's convention, 255 = known pixel; hole=255: LaMa's). Images of the same
size are batched; results do not depend on the batch size (models draw per-image randomness from
(seed, id, sample)). Output: OUT/<id>.png, or OUT/sample<k>/<id>.png with --samples K > 1.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench.data.datasets import Dataset
from matbench.data.maskset import check_masks
from matbench.devices import DEVICE_HELP, resolve_device
from matbench.errors import InputError, SpecError
from matbench.io import check_output, read_gray, save_png, shown_path
from matbench.models.base import create_model, get_model_info
from matbench.models.options import check_options, parse_cli_options
from matbench.progress import add_progress_option, bar
from matbench.trust import add_trust_option

log = logging.getLogger(__name__)

POLARITIES = ("known=255", "hole=255")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("inpaint", help="inpaint a folder of images with a registered model")
    p.add_argument("--model", required=True, help="registered model name (see `matbench models`) or pkg.mod:factory")
    p.add_argument("--weights", help="weights file or registered weights name (model specific)")
    p.add_argument("--smoke", action="store_true", help="random weights (smoke test; outputs are meaningless)")
    p.add_argument("--images", required=True, help="folder (or .zip) of images")
    p.add_argument("--masks", required=True, help="mask set folder (maskset.json) or folder of mask images")
    p.add_argument("--mask-polarity", choices=POLARITIES,
                   help="for plain mask files: known=255 (MAT) or hole=255 (LaMa); masks are thresholded at 128")
    p.add_argument("-o", "--out", "--output", dest="output", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="base seed; image i uses (seed, id, sample)")
    p.add_argument("--samples", type=int, default=1, help="pluralistic: K samples per image (sample index 0..K-1)")
    p.add_argument("--batch-size", type=int, default=4, help="images per model call (default 4; results do not "
                   "depend on it)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + " (default: cpu)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model option (repeatable), e.g. --option resolution=256 --option precision=bf16")
    add_progress_option(p)
    add_trust_option(p)  # a spec or --model naming code: matbench.trust
    p.set_defaults(func=run)


def _parse_value(v: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options for create_model, `--option` values typed by the model's declared options (checked there)."""

    opts: dict[str, Any] = {"device": resolve_device(args.device)}
    if args.weights:
        opts["weights"] = args.weights
    if args.smoke:
        opts["smoke"] = True
    raw: dict[str, str] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--option {item!r} must look like KEY=VALUE")
        raw[key.strip()] = value.strip()
    info = get_model_info(args.model)
    if raw:
        opts.update(parse_cli_options(args.model, info.options, raw, _parse_value))
    check_options(args.model, info.options, opts, info.factory)  # before any image is read
    return opts


class MaskSource:
    """hole(id, shape) -> bool HxW, from a mask set or a folder of mask files with a stated polarity."""

    def __init__(self, path: str | Path, polarity: str | None, ids: list[str]) -> None:
        self.path = Path(path)
        if (self.path / "maskset.json").is_file() or self.path.name == "maskset.json":
            from matbench.data.maskset import MaskSet

            self.maskset: Any = MaskSet.open(self.path)
            if polarity and polarity != self.maskset.polarity:
                raise InputError(f"{self.path}: mask set polarity is {self.maskset.polarity}, "
                                 f"but --mask-polarity {polarity} was given")
            self.names = dict(zip(ids, self.maskset.names_for(ids), strict=True))
            self.files = None
        else:
            if polarity is None:
                raise InputError(f"{self.path}: no maskset.json here, so the mask polarity is unknown; give "
                                 "--mask-polarity known=255 (MAT: white = known) or hole=255 (LaMa: white = hole)")
            if polarity not in POLARITIES:
                raise SpecError(f"--mask-polarity must be one of {', '.join(POLARITIES)}")
            from matbench.data.datasets import Dataset

            self.maskset = None
            self.files = Dataset.open(self.path)
            missing = [i for i in ids if i not in set(self.files.ids)]
            if missing:
                raise InputError(f"{self.path}: {len(missing)} images have no mask file with the same name "
                                 f"(e.g. {', '.join(missing[:3])})")
        self.polarity = polarity
        self.check(ids)

    def check(self, ids: list[str]) -> None:
        """Refuse 0/1 masks and sets whose hole ratio is 0 or 1 everywhere before any output is written."""

        if self.maskset is not None:
            self.maskset.check_usable()
            return

        check_masks(((self.files.source_name(i), read_gray(self.files.source_name(i))) for i in ids),
                    self.polarity, self.path)

    def hole(self, image_id: str, shape: tuple[int, int]) -> np.ndarray:
        if self.maskset is not None:
            name = self.names[image_id]
            hole = self.maskset.hole(name)
            where = str(self.maskset.path_of(name))
        else:
            from matbench.data.maskset import check_mask_levels
            from matbench.io import read_gray

            where = self.files.source_name(image_id)
            gray = read_gray(where)
            check_mask_levels(gray, where, self.polarity)
            hole = gray < 128 if self.polarity == "known=255" else gray >= 128
        if hole.shape != shape:
            raise InputError(f"{where}: mask is {hole.shape[1]}x{hole.shape[0]}, image {image_id!r} is "
                             f"{shape[1]}x{shape[0]}")
        return hole


def run(args: argparse.Namespace) -> int:

    if args.batch_size < 1:
        raise SpecError("--batch-size must be >= 1")
    if args.samples < 1:
        raise SpecError("--samples must be >= 1")
    options = model_options(args)
    check_output(args.output, [args.images, args.masks])
    ds = Dataset.open(args.images)
    masks = MaskSource(args.masks, args.mask_polarity, ds.ids)
    model = create_model(args.model, **options)
    if getattr(model, "smoke", False):
        log.warning("model %s runs on random (smoke) weights: outputs are not real inpaintings", args.model)
    if args.samples > 1 and not model.requires.samples:
        log.warning("model %s is deterministic; --samples %d gives identical copies", args.model, args.samples)
    out_dir = Path(args.output)

    # Group ids by image size so each batch is one tensor; order within a group is the dataset order.
    groups: dict[tuple[int, int], list[tuple[str, np.ndarray, np.ndarray]]] = {}
    count = 0

    # counted per image x sample as each model call returns (a MAT call on a CPU takes tens of seconds)
    progress = bar(len(ds.ids) * args.samples, f"inpaint {model.name}", "img", args.progress)

    def flush(items: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        nonlocal count
        ids = [i for i, _, _ in items]
        images = torch.from_numpy(np.stack([im.transpose(2, 0, 1) for _, im, _ in items]))
        hole = torch.from_numpy(np.stack([h[None] for _, _, h in items]))
        for k in range(args.samples):
            out = model(images, hole, ids, seed=args.seed, sample=k)
            base = out_dir / f"sample{k}" if args.samples > 1 else out_dir
            for i, image_id in enumerate(ids):
                save_png(base / f"{image_id}.png", out[i].permute(1, 2, 0).numpy())
            progress.update(len(ids))
        count += len(ids)

    with progress:
        for image_id in ds.ids:
            image = ds.read(image_id)
            hole = masks.hole(image_id, image.shape[:2])
            group = groups.setdefault(image.shape[:2], [])
            group.append((image_id, image, hole))
            if len(group) == args.batch_size:
                flush(group)
                groups[image.shape[:2]] = []
        for group in groups.values():
            if group:
                flush(group)
    print(f"{shown_path(out_dir)}: {count} images x {args.samples} sample(s) inpainted with {model.name}"
          + (" (SMOKE weights)" if getattr(model, "smoke", False) else ""))
    return 0
