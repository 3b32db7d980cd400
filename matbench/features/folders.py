"""Folders of images: ids (relative path without extension), a DataLoader dataset, and the features of every
image of a folder through the cache."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from matbench.errors import InputError
from matbench.features.base import FeatureExtractor
from matbench.features.cache import FeatureCache, extract_cached
from matbench.io import IMAGE_EXTENSIONS, read_image, walk_files
from matbench.progress import bar as progress_bar


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files below `folder` by id (relative path without extension, '/' separated)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    out: dict[str, Path] = {}
    # walk_files follows symlinked subfolders (rglob skipped them silently); hidden folders are listed as before
    for p in (folder / n for n in walk_files(folder, skip_hidden_dirs=False)):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            iid = p.relative_to(folder).with_suffix("").as_posix()
            if iid in out:
                raise InputError(f"{folder}: two files share the id {iid!r}: {out[iid].name} and {p.name}")
            out[iid] = p
    return out


class ImageFolderDataset(torch.utils.data.Dataset):
    """(id, uint8 [3,H,W]) for a list of files; read in DataLoader workers."""

    def __init__(self, ids: Sequence[str], paths: Sequence[Path]) -> None:
        self.ids, self.paths = list(ids), list(paths)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        return self.ids[i], torch.from_numpy(read_image(self.paths[i])).permute(2, 0, 1).contiguous()


def _list_collate(items: list) -> list:
    return items


def same_size_runs(items: Sequence[tuple]) -> Iterator[list]:
    """Split consecutive items into runs whose image tensors (item[1]) have equal shape."""
    run: list = []
    for it in items:
        if run and run[-1][1].shape != it[1].shape:
            yield run
            run = []
        run.append(it)
    if run:
        yield run


def extract_folder(extractor: FeatureExtractor, folder: str | os.PathLike, cache: FeatureCache | None = None,
                   batch_size: int = 32, workers: int = 0,
                   progress: bool | None = None) -> tuple[list[str], np.ndarray]:
    """Features of every image in a folder (ids sorted), batched through a DataLoader."""
    files = list_images(folder)
    ds = ImageFolderDataset(list(files), list(files.values()))
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=_list_collate,
                                     pin_memory=extractor.device.type == "cuda")
    ids: list[str] = []
    feats: list[np.ndarray] = []
    with progress_bar(len(ds), f"{extractor.name} features", "img", progress) as bar:
        for batch in dl:
            for run in same_size_runs(batch):
                ids.extend(r[0] for r in run)
                feats.append(extract_cached(extractor, torch.stack([r[1] for r in run]), cache))
                bar.update(len(run))
    return ids, (np.concatenate(feats) if feats else np.zeros((0, extractor.dim)))
