"""Inputs: datasets (ids, manifest) and mask sets (generated once per run directory, or imported)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matbench.data.datasets import Dataset, enlargement_message
from matbench.data.masks import generator_params
from matbench.data.maskset import MaskSet, make_maskset
from matbench.errors import MatbenchError, SpecError
from matbench.layout import RunLayout
from matbench.spec import DatasetSpec, MaskSetSpec, Spec

log = logging.getLogger("matbench.runner")


@dataclass
class PreparedDataset:
    name: str
    ids: list[str]
    manifest_sha256: str


@dataclass
class PreparedMaskSet:
    name: str
    resolution: int
    directory: Path | None  # MaskSet directory (generated or imported)
    sha256: str
    kind: str | None
    seed: int
    origin: str | None = None  # imported sets: the generator named in maskset.json (protocol checks)


def open_dataset(d: DatasetSpec) -> Any:

    return Dataset.open(d.path, preset=d.preset)


def prepare_dataset(d: DatasetSpec, resolutions: list[int] | None = None) -> PreparedDataset:
    """Ids and manifest of a dataset; with `resolutions`, images that would be enlarged are refused or logged."""
    ds = open_dataset(d)
    ids = list(ds.ids)
    if d.limit is not None:
        ids = ids[: d.limit]
    if not ids:
        raise MatbenchError(f"dataset {d.name} ({d.path}) has no images")
    for note in enlargement_notes(d, ds, ids, resolutions or []):
        log.warning("%s", note)
    return PreparedDataset(d.name, ids, ds.manifest_sha256())


def enlargement_notes(d: DatasetSpec, ds: Any, ids: list[str], resolutions: list[int]) -> list[str]:
    """One line per resolution at which images of the dataset would be reflect-padded or upscaled.

    SpecError for the first such resolution unless the dataset table says allow_upscale = true: padding 512-px data
    to 1024 makes every image a reflection mosaic and silently changes the numbers."""
    notes = []
    sizes = {}
    for i in ids if resolutions else []:  # each header once, for every resolution
        with contextlib.suppress(MatbenchError):  # unreadable: the input stage names it with its batch
            sizes[i] = ds.image_size(i)
    for r in sorted(set(resolutions)):
        small = [(i, h, w) for i, (h, w) in sizes.items() if h < r or w < r]
        if not small:
            continue
        msg = f"datasets[{d.name}]: " + enlargement_message(ds, small, len(ids), r, d.policy)
        if not d.allow_upscale:
            raise SpecError(f"{msg}; use images of at least {r} px, or set allow_upscale = true in the dataset "
                            "table to evaluate them anyway")
        notes.append(f"{msg} (allowed: allow_upscale = true)")
    return notes


def _have_maskset_module() -> bool:
    try:
        import matbench.data.maskset  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _hash_on_the_fly(m: MaskSetSpec, resolution: int, n: int) -> PreparedMaskSet:
    # Without the MaskSet module, generated masks are drawn on the fly; hash = sha256 of the packed bits.
    h = hashlib.sha256(f"{m.kind}|{resolution}|{m.seed}|{n}".encode())
    src = MaskSource(PreparedMaskSet(m.name, resolution, None, "", m.kind, m.seed))
    for i in range(n):
        h.update(np.packbits(src.hole(i)).tobytes())
    return PreparedMaskSet(m.name, resolution, None, h.hexdigest(), m.kind, m.seed)


def prepare_maskset(m: MaskSetSpec, resolution: int, n: int, run_dir: Path) -> PreparedMaskSet:
    """Generated sets are written once as MaskSet directories under RUN_DIR/masksets; imported ones are checked."""
    if m.path is None and not _have_maskset_module():
        return _hash_on_the_fly(m, resolution, n)

    if m.path is not None:
        ms = MaskSet.open(m.path)
        if int(ms.resolution) != resolution:
            raise SpecError(f"masksets[{m.name}].path: {m.path} holds {ms.resolution}px masks, "
                            f"the run needs {resolution}px (add a mask set per resolution or use kind =)")
        if len(ms.names) < n:
            raise SpecError(f"masksets[{m.name}].path: {m.path} has {len(ms.names)} masks for {n} images")
        return PreparedMaskSet(m.name, resolution, Path(m.path), ms.sha256, None, m.seed,
                               origin=(ms.meta or {}).get("generator"))
    out = RunLayout(run_dir).maskset_dir(m.name, resolution)
    ms = None
    if out.is_dir():
        with contextlib.suppress(Exception):
            ms = MaskSet.open(out)
        if ms is not None and (len(ms.names) != n or ms.meta.get("params", {}).get("hole_range")
                               != generator_params(m.kind, resolution, m.hole_range).get("hole_range")):
            ms = None
        if ms is None:
            shutil.rmtree(out)
    if ms is None:
        make_maskset(m.kind, n, resolution, m.seed, out, hole_range=m.hole_range)
        ms = MaskSet.open(out)
    return PreparedMaskSet(m.name, resolution, out, ms.sha256, m.kind, m.seed)


class MaskSource:
    """Mask i (the i-th image of the dataset) of a prepared mask set, as bool HxW (True = hole)."""

    def __init__(self, p: PreparedMaskSet) -> None:
        self.p = p
        self.ms = None
        if p.directory is not None:
            from matbench.data.maskset import MaskSet

            self.ms = MaskSet.open(p.directory)

    def __len__(self) -> int:
        return len(self.ms.names) if self.ms is not None else -1

    def hole(self, index: int) -> np.ndarray:
        if self.ms is None:
            from matbench.data.masks import generate_mask

            return np.asarray(generate_mask(self.p.kind, self.p.resolution, self.p.seed + index), dtype=bool)
        return np.asarray(self.ms.hole(index), dtype=bool)


def prepare_inputs(spec: Spec, run_dir: Path) -> dict[str, Any]:
    """Dataset ids/manifests and mask sets, once per run (rank 0); {"datasets": ..., "masksets": ...}."""
    datasets = {}
    for d in spec.datasets:
        datasets[d.name] = prepare_dataset(d, spec.resolutions)
        log.info("dataset %s: %d images, manifest %s", d.name, len(datasets[d.name].ids),
                 datasets[d.name].manifest_sha256[:12])
    # One generated set per (mask set, resolution), as long as the largest dataset; mask i goes with image i,
    # so every dataset (and model) sees the same masks.
    n_max = max(len(d.ids) for d in datasets.values())
    masksets = {}
    for m in spec.masksets:
        for r in spec.resolutions:
            masksets[(m.name, r)] = prepare_maskset(m, r, n_max, run_dir)
            log.info("mask set %s at %d px: sha256 %s", m.name, r, masksets[(m.name, r)].sha256[:12])
    return {"datasets": datasets, "masksets": masksets}
