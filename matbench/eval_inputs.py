"""What a `matbench eval` output folder was computed on, read back as eval read it.

`matbench eval` writes OUT/inputs.json (schema matbench.eval-inputs/1): the absolute paths of the results, the
ground truths and the masks (with the mask polarity). The report's image pages read the folders through this
module: images by id (relative path without extension, as eval paired them) and hole masks through eval's own mask
source (a mask set's maskset.json, or a plain folder with its polarity), so a page shows what was measured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matbench.errors import InputError
from matbench.evaluate.folders import _MaskSource
from matbench.features import list_images

INPUTS_FILE = "inputs.json"
INPUTS_SCHEMA = "matbench.eval-inputs/1"


@dataclass
class EvalImages:
    """The images of one eval folder: results and ground truths by id, the hole of an id, the folders they are in."""

    file: Path  # the inputs.json read
    results: dict[str, Path]
    gt: dict[str, Path]
    masks: _MaskSource | None
    roots: tuple[Path, ...]  # real paths of the folders inputs.json names: a report copies files from inside them

    def hole(self, image_id: str) -> np.ndarray | None:
        """Bool hole mask (True = missing) of an id; None without masks or when its mask is gone."""
        if self.masks is None:
            return None
        try:
            return self.masks.hole(image_id)
        except (InputError, KeyError, OSError, ValueError):
            return None


def read_inputs(folder: str | os.PathLike) -> dict | None:
    """FOLDER/inputs.json as a dict; None when there is none; InputError naming the file when it is not one."""
    p = Path(folder) / INPUTS_FILE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{p}: not a readable JSON file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("schema") != INPUTS_SCHEMA:
        raise InputError(f"{p}: not a `matbench eval` inputs file (schema {INPUTS_SCHEMA})")
    for key in ("results", "gt", "masks"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InputError(f"{p}: '{key}' must be a folder path, got {data[key]!r:.60}")
    return data


def eval_images(folder: str | os.PathLike, ids: Sequence[str] | None = None) -> EvalImages | None:
    """The images FOLDER's inputs.json names (None without inputs.json). `ids`: the evaluated ids (per_image.csv),
    sorted as eval sorted them, so a mask set's index-named masks map to the same images; only these are listed.
    A folder that is gone or a mask set that no longer fits is an InputError naming it."""
    data = read_inputs(folder)
    if data is None:
        return None
    file = Path(folder) / INPUTS_FILE
    if not data.get("results") or not data.get("gt"):
        raise InputError(f"{file}: names no results or ground-truth folder")
    dirs = {k: Path(data[k]) for k in ("results", "gt", "masks") if data.get(k)}
    for k, d in dirs.items():
        if not d.is_dir():
            raise InputError(f"{file}: the {k} folder {d} is gone")
    results, gt = list_images(dirs["results"]), list_images(dirs["gt"])
    keep = sorted(ids) if ids is not None else sorted(set(results) & set(gt))
    results = {i: results[i] for i in keep if i in results}
    gt = {i: gt[i] for i in keep if i in gt}
    masks = None
    if "masks" in dirs:
        masks = _MaskSource(dirs["masks"], data.get("mask_polarity"))
        # eval's mapping of ids to masks; the masks were checked when eval ran (not read again here: a report of
        # 36,500 images with --max-images 100 reads 100 of them)
        masks.map_ids(keep)
    return EvalImages(file=file, results=results, gt=gt, masks=masks,
                      roots=tuple(d.resolve() for d in dirs.values()))
