"""A "model" whose outputs are a folder of precomputed results (what MAT and others publish).

Results are paired with the input images by id exactly as `matbench eval` pairs results with ground
truths: the file's path relative to the folder, without extension, '/' separated
(`matbench.features.list_images`). So `results/sub/0001.png` answers the image with id `sub/0001`.

`path` may contain `{sample}` (e.g. `out/sample{sample}`): one folder per sample of a stochastic
model; without it every sample reads the same folder.

As for every model, the Inpainter contract puts the input's known pixels back into the output;
`matbench eval` on the raw folder is where the known-region agreement of published results is checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matbench.errors import InputError, SpecError
from matbench.io import read_image
from matbench.models.base import Inpainter, Requirements, register_model
from matbench.models.options import Option


class PrecomputedInpainter(Inpainter):
    """Reads result images by id from a folder instead of running a network."""

    name = "precomputed"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path_template = str(path)
        self.per_sample = "{sample}" in self.path_template
        self.requires = Requirements(samples=self.per_sample)
        self._listings: dict[int, dict[str, Path]] = {}
        self._listing(0)  # fail early when the (first) folder is missing or empty

    def folder(self, sample: int) -> Path:
        return Path(self.path_template.format(sample=sample)) if self.per_sample else Path(self.path_template)

    def _listing(self, sample: int) -> dict[str, Path]:
        key = sample if self.per_sample else 0
        if key not in self._listings:
            from matbench.features import list_images  # the same id rule as `matbench eval`

            folder = self.folder(key)
            if not folder.is_dir():
                raise InputError(f"{folder}: precomputed results folder does not exist")
            files = list_images(folder)
            if not files:
                raise InputError(f"{folder}: no result images (png, jpg, jpeg, webp, bmp) in this folder")
            self._listings[key] = files
        return self._listings[key]

    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, ids: Sequence[str], seed: int,
                sample: int) -> torch.Tensor:
        files = self._listing(sample)
        h, w = images.shape[-2:]
        out = []
        for image_id in ids:
            p = files.get(image_id)
            if p is None:
                raise InputError(f"{self.folder(sample)}: no result image for id {image_id!r} "
                                 f"(expected {image_id}.png or another image extension; {len(files)} results there)")
            arr = read_image(p)
            if arr.shape[:2] != (h, w):
                raise InputError(f"{p}: result is {arr.shape[1]}x{arr.shape[0]}, but input image {image_id!r} is "
                                 f"{w}x{h}")
            out.append(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))))
        return torch.stack(out).to(images.device)

    def provenance(self) -> dict[str, Any]:
        files = self._listing(0)
        # Cheap fingerprint of the listing (ids, names, sizes); hashing every image would mean reading them all.
        h = hashlib.sha256()
        for iid in sorted(files):
            h.update(f"{iid}\t{files[iid].name}\t{files[iid].stat().st_size}\n".encode())
        return {**super().provenance(), "path": self.path_template, "n_results": len(files),
                "listing_sha256": h.hexdigest()}


@register_model("precomputed", description="A folder of precomputed result images, paired with inputs by id",
                requires=Requirements(),
                options=(Option("path", "path", None, "folder of result images, paired by id; may contain '{sample}' "
                                "(one folder per sample)"),
                         Option("device", "str", "cpu", "device the results are moved to")))
def precomputed(path: str | None = None, device: str = "cpu") -> Inpainter:
    """Results read from `path` (a folder; may contain '{sample}') instead of running a network."""
    if not path:
        raise SpecError("model 'precomputed' needs the option path=DIR (the folder of result images)")
    return PrecomputedInpainter(path).to(device)
