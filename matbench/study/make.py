"""`matbench study make`: a static two-alternative forced-choice page from run or eval result folders.

Systems come from run directories (one per job: its outputs, the run's ground truth and masks) or from
`matbench eval` output folders (their inputs.json names the results, ground truth and masks). Systems of one
group share images and masks (run: dataset/mask set/resolution; eval: ground-truth and mask folders), and are
only compared within it.

DIR/
  index.html, study.css, study.js   the page (no network, works from file://)
  trials.js                         what the page shows: trial ids and image files only (no model names)
  study.json                        the key: which system is left/right per trial, attention-check answers,
                                    per-image metric values of the shown images (for metric-human agreement)
  img/<hash>.png                    masked inputs, results, ground truth and broken fills (opaque names)
  choices/                          put the participants' exported JSON files here
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matbench.entries import entry_for, load_entries
from matbench.errors import InputError, SpecError
from matbench.features import list_images
from matbench.io import read_gray, read_image, save_png, write_json_atomic, write_text_atomic
from matbench.metrics import METRIC_INFO
from matbench.results import METRICS_FILE, read_record

SCHEMA = "matbench.study/1"
HERE = Path(__file__).resolve().parent
PAGE_FILES = ("index.html", "study.css", "study.js")
SAMPLE_RE = re.compile(r"_s\d+$")
HOLE_GREY = np.array([127, 127, 127], dtype=np.uint8)


@dataclass
class System:
    name: str
    group: str
    source: str
    smoke: bool
    outputs: dict[str, Path]
    gt: Callable[[str], Path | None]
    hole: Callable[[str], np.ndarray | None]
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

    def ids(self) -> set[str]:
        return {i for i in self.outputs if self.gt(i) is not None}


def _per_image_values(df: Any) -> dict[str, dict[str, float]]:
    if df is None:
        return {}
    cols = [c for c in df.columns if c in METRIC_INFO]
    out: dict[str, dict[str, float]] = {}
    for row in df.itertuples(index=False):
        d = row._asdict()
        vals = {c: float(d[c]) for c in cols if d[c] is not None and not (isinstance(d[c], float)
                                                                            and math.isnan(d[c]))}
        out[str(d["id"])] = vals
    return out


def systems_from_run(path: Path) -> list[System]:
    """One system per job of a run directory (runner layout; see matbench/entries.py)."""

    out = []
    for e in load_entries([path]):
        d = e.outputs_dir()
        if d is None:
            continue
        outputs = {p.stem: p for p in sorted(d.glob("*.png")) if not SAMPLE_RE.search(p.stem)}

        def hole(i: str, e: Any = e) -> np.ndarray | None:
            p = e.mask_path(i)
            return None if p is None else read_gray(p) > 127  # the runner's masks: 255 = hole

        out.append(System(name=e.row_label, group=f"{e.dataset}/{e.maskset}@{e.resolution}",
                          source=str(e.path.resolve()), smoke=e.record.smoke, outputs=outputs,
                          gt=lambda i, e=e: e.input_path(i), hole=hole,
                          per_image=_per_image_values(e.per_image())))
    return out


def system_from_eval(path: Path) -> System:
    """A `matbench eval` output folder: OUT/inputs.json names the folders."""

    try:
        inputs = json.loads((path / "inputs.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no inputs.json (made by `matbench eval` since the study feature; rerun eval "
                         "or pass a run directory)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path / 'inputs.json'}: not valid JSON ({e})") from None
    if not inputs.get("masks"):
        raise InputError(f"{path}: evaluated without masks (`matbench eval --masks`); a study needs the "
                         "masks to show the masked input")
    record = read_record(path / METRICS_FILE)
    results = list_images(inputs["results"])
    gts = list_images(inputs["gt"])
    hole = _mask_reader(Path(inputs["masks"]), inputs.get("mask_polarity"))
    entry = entry_for(record)
    return System(name=entry.model, group=f"{Path(inputs['gt']).name}/{Path(inputs['masks']).name}",
                  source=str((path / METRICS_FILE).resolve()), smoke=record.smoke, outputs=results, gt=gts.get,
                  hole=hole,                  per_image=_per_image_values(entry.per_image()))


def _mask_reader(masks: Path, polarity: str | None) -> Callable[[str], np.ndarray | None]:
    if (masks / "maskset.json").is_file() and polarity is None:
        from matbench.data.maskset import MaskSet

        ms = MaskSet.open(masks)

        def from_set(i: str) -> np.ndarray | None:
            try:
                return np.asarray(ms.hole(ms.names_for([i])[0]), dtype=bool)
            except (InputError, KeyError, IndexError):
                return None
        return from_set
    if polarity not in ("known=255", "hole=255"):
        raise InputError(f"{masks}: no maskset.json and no mask polarity recorded")

    files = list_images(masks)

    def from_folder(i: str) -> np.ndarray | None:
        p = files.get(i)
        if p is None:
            return None
        g = read_gray(p) > 127
        return ~g if polarity == "known=255" else g
    return from_folder


def load_systems(paths: Sequence[str | os.PathLike]) -> list[System]:
    systems: list[System] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise InputError(f"{p}: no such file or directory")
        if (p / "inputs.json").is_file():
            systems.append(system_from_eval(p))
        else:
            found = systems_from_run(p)
            if not found:
                raise InputError(f"{p}: no job with outputs (a run directory with outputs/, or a `matbench eval` "
                                 "folder with inputs.json)")
            systems.extend(found)
    names = [s.name for s in systems]
    for s in systems:  # the same model from two runs: tell them apart by where they came from
        if names.count(s.name) > 1:
            s.name = f"{s.name} ({Path(s.source).parent.name})"
    if len({s.name for s in systems}) != len(systems):
        raise InputError("two results have the same name: " + ", ".join(sorted({s.name for s in systems
                                                                                 if names.count(s.name) > 1})))
    return systems


def broken_fill(img: np.ndarray, hole: np.ndarray, cell: int = 8) -> np.ndarray:
    """An obviously wrong fill for attention checks: a magenta/green checkerboard in the hole."""
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    board = ((yy // cell + xx // cell) % 2).astype(bool)
    fill = np.where(board[..., None], np.array([255, 0, 255], np.uint8), np.array([0, 200, 0], np.uint8))
    return np.where(hole[..., None], fill, img).astype(np.uint8)


def masked_input(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return np.where(hole[..., None], HOLE_GREY, img).astype(np.uint8)


class _Images:
    """Writes each image once under an opaque name (so the page does not reveal which model is which)."""

    def __init__(self, out: Path, salt: str) -> None:
        self.out, self.salt, self.done = out, salt, {}

    def put(self, key: str, make: Callable[[], np.ndarray]) -> str:
        if key not in self.done:
            name = hashlib.sha256(f"{self.salt}:{key}".encode()).hexdigest()[:16] + ".png"
            save_png(self.out / "img" / name, make())
            self.done[key] = f"img/{name}"
        return self.done[key]


def make_study(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, pairs: int, seed: int = 0,
               attention: int | None = None, title: str = "Which result looks better?",
               attention_against: str = "broken") -> Path:
    """Write the study page into out_dir; returns study.json's path."""
    if pairs < 1:
        raise SpecError(f"--pairs must be >= 1, got {pairs}")
    systems = load_systems(paths)
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(systems):
        groups.setdefault(s.group, []).append(k)
    common: dict[str, list[str]] = {}
    for g, members in groups.items():
        ids = set.intersection(*(systems[k].ids() for k in members))
        ids = {i for i in ids if systems[members[0]].hole(i) is not None}
        if len(members) >= 2 and ids:
            common[g] = sorted(ids)
    combos = [(g, a, b) for g, members in groups.items() if g in common
              for a, b in itertools.combinations(members, 2)]
    if not combos:
        raise InputError("no two results share images and masks: a study compares at least two models on the "
                         "same images (groups: " + ", ".join(f"{g}: {len(m)} result(s)" for g, m in groups.items())
                         + ")")
    rng = np.random.default_rng(seed)
    n_att = max(2, pairs // 10) if attention is None else attention
    if n_att < 0:
        raise SpecError(f"--attention must be >= 0, got {n_att}")
    if attention_against not in ("broken", "gt"):
        raise SpecError(f"--attention-against must be broken or gt, got {attention_against!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    salt = hashlib.sha256(f"{seed}:{out.resolve()}".encode()).hexdigest()[:8]
    images = _Images(out, salt)

    # balanced over system pairs: every pair comes up pairs/len(combos) times (±1), images drawn per pair
    order = [combos[i] for i in rng.permutation(len(combos))]
    used: dict[tuple[str, int, int], list[str]] = {}
    specs: list[dict[str, Any]] = []
    for t in range(pairs):
        g, a, b = order[t % len(order)]
        pool = [i for i in common[g] if i not in used.setdefault((g, a, b), [])] or common[g]
        iid = pool[int(rng.integers(len(pool)))]
        used[(g, a, b)].append(iid)
        left, right = (a, b) if rng.random() < 0.5 else (b, a)
        specs.append({"kind": "pair", "group": g, "image": iid, "left": left, "right": right})
    glist = sorted(common)
    for _ in range(n_att):
        g = glist[int(rng.integers(len(glist)))]
        iid = common[g][int(rng.integers(len(common[g])))]
        src = groups[g][int(rng.integers(len(groups[g])))]
        # the expected answer: the model's result against its own broken fill, or the ground truth against it
        good, bad = (src, "broken") if attention_against == "broken" else ("gt", src)
        good_left = bool(rng.random() < 0.5)
        specs.append({"kind": "attention", "group": g, "image": iid, "source": src,
                      "left": good if good_left else bad, "right": bad if good_left else good,
                      "expected": "left" if good_left else "right"})
    specs = [specs[i] for i in rng.permutation(len(specs))]

    def show(which: Any, g: str, iid: str, gt_path: Path, hole: np.ndarray, src: Any) -> str:
        if which == "gt":
            return images.put(f"gt:{g}:{iid}", lambda: read_image(gt_path))
        if which == "broken":
            return images.put(f"broken:{src}:{iid}", lambda: broken_fill(read_image(systems[src].outputs[iid]), hole))
        return images.put(f"sys:{which}:{iid}", lambda: read_image(systems[which].outputs[iid]))

    trials, page_trials = [], []
    for n, sp in enumerate(specs):
        g, iid = sp["group"], sp["image"]
        ref = systems[groups[g][0]]
        gt_path, hole = ref.gt(iid), ref.hole(iid)
        assert gt_path is not None and hole is not None
        tid = f"t{n + 1:03d}"
        masked = images.put(f"masked:{g}:{iid}", lambda p=gt_path, h=hole: masked_input(read_image(p), h))
        page_trials.append({"id": tid, "masked": masked,
                            "left": show(sp["left"], g, iid, gt_path, hole, sp.get("source")),
                            "right": show(sp["right"], g, iid, gt_path, hole, sp.get("source"))})
        trials.append({"id": tid, **sp})

    study_id = hashlib.sha256(json.dumps(trials, sort_keys=True).encode() + salt.encode()).hexdigest()[:12]
    per_image: dict[str, dict[str, dict[str, float]]] = {}
    for sp in trials:
        for side in ("left", "right"):
            k = sp[side]
            if sp["kind"] == "pair" and isinstance(k, int) and sp["image"] in systems[k].per_image:
                per_image.setdefault(str(k), {})[sp["image"]] = systems[k].per_image[sp["image"]]
    key = {"schema": SCHEMA, "study_id": study_id, "seed": seed, "title": title,
           "systems": [{"name": s.name, "group": s.group, "source": s.source, "smoke": s.smoke} for s in systems],
           "trials": trials, "per_image": per_image}
    for f in PAGE_FILES:
        shutil.copyfile(HERE / f, out / f)
    page = {"study_id": study_id, "title": title, "trials": page_trials}
    write_text_atomic(out / "trials.js", "// generated by matbench study make\nwindow.MATBENCH_STUDY = "
                      + json.dumps(page, indent=1) + ";\n")
    (out / "choices").mkdir(exist_ok=True)
    path = out / "study.json"
    write_json_atomic(path, key)
    return path
