"""`matbench eval` on folders: pairing results with ground truths by id, hole masks, and the read loop
that feeds the Evaluator in batches of same-sized images."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from matbench import protocols
from matbench import threads as T
from matbench.data.maskset import MaskSet, check_mask_levels, check_masks
from matbench.errors import Hint, InputError, MatbenchError
from matbench.evaluate.batch import BatchResult
from matbench.evaluate.config import EvalConfig
from matbench.evaluate.core import ALL_METRICS, Evaluator
from matbench.evaluate.outputs import write_outputs
from matbench.evaluate.pairs import _agreement, _pair_checks
from matbench.features import list_images
from matbench.features.files import save_features as _save
from matbench.io import read_gray, read_image
from matbench.progress import bar as progress_bar
from matbench.results import ResultRecord

log = logging.getLogger("matbench.evaluate")


MASK_POLARITIES = ("known=255", "hole=255")


class _MaskSource:
    """Hole masks by image id: a maskset directory (maskset.json) or a plain folder with a polarity."""

    def __init__(self, masks_dir: Path, polarity: str | None) -> None:
        self.dir = masks_dir
        self.maskset = None
        self.sha256 = None
        if not masks_dir.is_dir():
            raise InputError(f"{masks_dir}: mask directory does not exist")
        if (masks_dir / "maskset.json").is_file() and polarity is None:

            self.maskset = MaskSet.open(masks_dir)
            self.sha256 = getattr(self.maskset, "sha256", None)
            self.files = None
            self.names: dict[str, str] = {}
        else:
            if polarity is None:
                raise InputError(f"{masks_dir}: no maskset.json, so what white means is unknown (MAT: known=255, "
                                 "LaMa: hole=255)", hints=[Hint("--mask-polarity", "say it with --mask-polarity "
                                                                + " or ".join(MASK_POLARITIES))])
            if polarity not in MASK_POLARITIES:
                raise InputError(f"unknown mask polarity {polarity!r}; use {' or '.join(MASK_POLARITIES)}")

            self.files = list_images(masks_dir)
        self.polarity = polarity

    def map_ids(self, ids: Sequence[str]) -> None:
        """Which mask each image id gets (a mask set named by index maps by position in the sorted ids)."""
        if self.maskset is not None:
            self.names = dict(zip(ids, self.maskset.names_for(list(ids)), strict=True))

    def check_ids(self, ids: Sequence[str]) -> None:
        self.map_ids(ids)
        if self.files is not None:
            missing = [i for i in ids if i not in self.files]
            if missing:
                raise InputError(f"{self.dir}: no mask for {len(missing)} image(s): {_list(missing)}")
        self.check_usable(ids)

    def check_usable(self, ids: Sequence[str]) -> None:
        """Refuse 0/1 masks and sets whose hole ratio is 0 or 1 everywhere (not a polarity mismatch later)."""

        if self.maskset is not None:
            self.maskset.check_usable()
            return

        check_masks(((self.files[i], read_gray(self.files[i])) for i in ids), self.polarity, self.dir)

    def hole(self, iid: str) -> np.ndarray:
        if self.maskset is not None:
            return np.asarray(self.maskset.hole(self.names.get(iid, iid)), dtype=bool)

        g = read_gray(self.files[iid])
        check_mask_levels(g, self.files[iid], self.polarity)
        return g < 128 if self.polarity == "known=255" else g >= 128


def _list(items: Sequence[str], k: int = 10) -> str:
    s = ", ".join(items[:k])
    return s + (f", … ({len(items)} in all)" if len(items) > k else "")


class _PairDataset(torch.utils.data.Dataset):
    def __init__(self, ids: list[str], gt: dict[str, Path], res: dict[str, Path], masks: _MaskSource | None):
        self.ids, self.gt, self.res, self.masks = ids, gt, res, masks

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple:

        iid = self.ids[i]
        # errors travel as strings: DataLoader workers would turn exceptions into multi-line tracebacks
        try:
            g = read_image(self.gt[iid])
            r = read_image(self.res[iid])
            if g.shape != r.shape:
                raise InputError(f"size mismatch for {iid!r}: {self.res[iid]} is {r.shape[1]}x{r.shape[0]}, "
                                 f"{self.gt[iid]} is {g.shape[1]}x{g.shape[0]}")
            h = None
            if self.masks is not None:
                h = self.masks.hole(iid)
                if h.shape != g.shape[:2]:
                    raise InputError(f"mask for {iid!r} is {h.shape[1]}x{h.shape[0]}, image {self.gt[iid]} is "
                                     f"{g.shape[1]}x{g.shape[0]}")
        except MatbenchError as e:
            return iid, None, None, None, str(e)
        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1).contiguous()  # noqa: E731
        return iid, to_t(g), to_t(r), (None if h is None else torch.from_numpy(h)[None]), None


def pair_folders(results_dir: Path, gt_dir: Path) -> tuple[list[str], dict[str, Path], dict[str, Path]]:
    """Ids present in both folders (sorted); missing/extra ids and size mismatches are errors."""


    res = list_images(results_dir)
    gt = list_images(gt_dir)
    missing = sorted(set(gt) - set(res))
    extra = sorted(set(res) - set(gt))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} ground-truth id(s) have no result in {results_dir}: {_list(missing)}")
        if extra:
            parts.append(f"{len(extra)} result id(s) have no ground truth in {gt_dir}: {_list(extra)}")
        raise InputError("; ".join(parts) + f" (counts: {len(res)} results, {len(gt)} ground truths)")
    ids = sorted(gt)
    if len(ids) < 2:
        raise InputError(f"{gt_dir}: need at least 2 image pairs, found {len(ids)}")
    for iid in ids:  # header-only pass: sizes and readability before any network runs
        sizes = []
        for p in (res[iid], gt[iid]):
            try:
                with Image.open(p) as im:
                    sizes.append(im.size)
            except Exception as e:
                raise InputError(f"{p}: cannot read image ({type(e).__name__}: {e})") from None
        if sizes[0] != sizes[1]:
            raise InputError(f"size mismatch for {iid!r}: {res[iid]} is {sizes[0][0]}x{sizes[0][1]}, "
                             f"{gt[iid]} is {sizes[1][0]}x{sizes[1][1]}")
    return ids, gt, res


def _collate(items: list) -> list:
    return items


@dataclass(frozen=True)
class FolderRun:
    """How `matbench eval` reads its folders and what it writes (the metric options are an EvalConfig)."""

    out_dir: str | os.PathLike = "eval_out"
    allow_mismatch: bool = False
    mask_polarity: str | None = None
    workers: int | None = 0  # reading processes (None: automatic, matbench.threads.plan)
    threads: int | None = None  # compute threads (None: automatic)
    progress: bool | None = None  # None: matbench.progress's policy ($MATBENCH_PROGRESS, else on)
    job: dict | None = None
    protocol: dict | None = None
    name: str | None = None  # the model's name in tables (default: the results folder's name)
    save_features: bool = False
    protocol_name: str | None = None  # refuse a run that differs from that published protocol
    published_row: str | None = None


_RUN_FIELDS = tuple(f.name for f in fields(FolderRun))


def evaluate_folders(results_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                     masks_dir: str | os.PathLike | None = None, metrics: Sequence[str] | str = ALL_METRICS, *,
                     config: EvalConfig | None = None, run: FolderRun | None = None, **options: Any) -> ResultRecord:
    """Evaluate a folder of results against ground truths; writes metrics.json and per_image.csv (and
    features.npz with save_features).

    options: fields of FolderRun (out_dir, name, mask_polarity, ...) and of EvalConfig (device, smoke, ...), as an
    alternative to passing `run` and `config`. protocol_name: refuse a run that differs from that published
    protocol, and put its published numbers beside ours (matbench.protocols). workers (reading processes) and
    threads (compute threads) are fitted to the cores by matbench.threads.plan; the thread pools are restored
    afterwards.
    """
    run_opts = {k: v for k, v in options.items() if k in _RUN_FIELDS}
    cfg_opts = {k: v for k, v in options.items() if k not in _RUN_FIELDS}
    run = FolderRun(**{**(run.__dict__ if run is not None else {}), **run_opts})
    if config is None:
        config = EvalConfig.from_options(cfg_opts)
    elif cfg_opts:
        config = config.replace(**cfg_opts)
    tp = T.plan(run.workers, run.threads, device=str(config.device))
    with T.limited(tp.intra_op):
        return _evaluate_folders(Path(results_dir), Path(gt_dir), masks_dir, Evaluator(metrics, config), run, tp)


def _evaluate_folders(results_dir: Path, gt_dir: Path, masks_dir: str | os.PathLike | None, ev: Evaluator,
                      opts: FolderRun, tp: Any) -> ResultRecord:
    out_dir, allow_mismatch, protocol_name = Path(opts.out_dir), opts.allow_mismatch, opts.protocol_name
    ids, gt, res = pair_folders(results_dir, gt_dir)
    masks = _MaskSource(Path(masks_dir), opts.mask_polarity) if masks_dir is not None else None
    if masks is not None:
        masks.check_ids(ids)
    mask_kind = masks.maskset.meta.get("generator") if masks is not None and masks.maskset is not None else None
    if protocol_name is not None:  # refuse before any network runs: what is known now

        protocols.check(protocol_name, {
            "fid_convention": ev.fid_convention, "n_images": len(ids), "mask_kind": mask_kind,
            "feature_extractor": ev.inception_name if ev.needs_inception else None,
            "resize": protocols.inception_resize(ev.inception_name) if ev.needs_inception else None})
    ds = _PairDataset(ids, gt, res, masks)
    dl = torch.utils.data.DataLoader(ds, batch_size=ev.batch_size, num_workers=tp.workers, collate_fn=_collate,
                                     worker_init_fn=T.worker_init if tp.workers else None)
    batches: list[BatchResult] = []
    mismatched: list[str] = []
    low_agreement: list[str] = []
    shapes: set[tuple[int, int]] = set()
    with progress_bar(len(ds), "evaluate", "img", opts.progress) as bar:
        for items in dl:
            for it in items:
                if it[4] is not None:
                    raise InputError(it[4])
            runs = _same_shape_runs(items)
            for run in runs:
                iids = [it[0] for it in run]
                real = torch.stack([it[1] for it in run])
                fake = torch.stack([it[2] for it in run])
                hole = torch.stack([it[3] for it in run]) if masks is not None else None
                shapes.add((int(real.shape[2]), int(real.shape[3])))
                if hole is not None:
                    checks = _pair_checks(real, fake, hole, ev.pair_tol)
                    mismatched += [i for i, c in zip(iids, checks, strict=True) if c == "mismatch"]
                else:
                    low_agreement += [i for i, a in zip(iids, _agreement(real, fake), strict=True) if a < 0.05]
                if mismatched and not allow_mismatch:
                    continue  # keep reading to list every mismatched pair, compute nothing more
                batches.append(ev.process_batch(iids, real, fake, hole))
            bar.update(len(items))
    if mismatched:
        msg = (f"{len(mismatched)} of {len(ids)} result(s) differ from their ground truth in the known region "
               f"(results paired with the wrong images, or wrong mask polarity?): {_list(mismatched)}")
        if not allow_mismatch:
            raise InputError(msg, hints=[Hint("--allow-mismatch", "rerun with --allow-mismatch to evaluate anyway")])
        log.warning(msg)
    if masks is None and len(low_agreement) > len(ids) // 2:
        log.warning("%d of %d results share almost no pixels with their ground truth; if the model composites "
                    "known pixels, results and ground truths may be mis-paired (`matbench eval --masks` checks it)",
                    len(low_agreement), len(ids))
    job = dict(opts.job or {"results": str(results_dir), "gt": str(gt_dir),
                           "masks": None if masks_dir is None else str(masks_dir)})
    if opts.name:
        job["model"] = opts.name  # else tables name the model after the results folder
    proto = dict(opts.protocol or {})
    if masks is not None and masks.sha256 and "maskset_sha256" not in proto:
        proto["maskset_sha256"] = masks.sha256
    if len(shapes) == 1 and "resolution" not in proto:
        h, w = next(iter(shapes))
        proto["resolution"] = h if h == w else f"{w}x{h}"
    if mask_kind is not None:
        proto.setdefault("mask_kind", mask_kind)
    record, df = ev.finalize(batches, job, proto)
    record.provenance["inputs"] = {"results": str(results_dir), "gt": str(gt_dir), "masks": job.get("masks"),
                                   "mask_polarity": opts.mask_polarity, "mismatched": mismatched}
    record.provenance["threads"] = tp.describe()
    if protocol_name is not None:

        protocols.check(protocol_name, protocols.run_fields(record))  # now with the resolution
        protocols.annotate(record, protocol_name, opts.published_row)
    write_outputs(out_dir, record, df)
    if opts.save_features:

        _save(out_dir, ev.last_features, ev.inception_name, len(df))
    return record


def _same_shape_runs(items: list) -> list[list]:
    runs: list[list] = []
    for it in items:
        if runs and runs[-1][-1][1].shape == it[1].shape:
            runs[-1].append(it)
        else:
            runs.append([it])
    return runs
