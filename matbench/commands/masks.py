"""`matbench masks`: generate, import and summarise mask sets."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from matbench.data.masks import MASK_KINDS
from matbench.data.maskset import (
    POLARITIES,
    MaskSet,
    hole_ratio_stats,
    import_maskset,
    make_maskset,
    plot_hole_ratio_hist,
)
from matbench.errors import SpecError
from matbench.io import check_output, shown_path, write_json_atomic
from matbench.progress import add_progress_option

log = logging.getLogger("matbench.masks")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("masks", help="mask sets: generate (MAT / LaMa families), import, statistics")
    sub = p.add_subparsers(dest="masks_command", metavar="ACTION", required=True)

    m = sub.add_parser("make", help="generate a mask set (mask i from seed+i; PNG 255 = known + maskset.json)")
    m.add_argument("--kind", required=True, choices=MASK_KINDS, help="generator")
    m.add_argument("-n", "--n", dest="n", type=int,
                   help="number of masks (default with --names-from: one per dataset id)")
    m.add_argument("--res", type=int, default=512, help="square resolution (default 512)")
    m.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    m.add_argument("--names-from", metavar="DATASET", help="name masks by this dataset's ids (sorted order)")
    m.add_argument("--hole-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="MAT kinds: keep masks with LO < hole ratio < HI, as the official RandomMask(s, "
                        "hole_range=[LO, HI]) (default 0 1)")
    m.add_argument("-o", "--out", "--output", dest="output", required=True, help="output folder")
    add_progress_option(m)
    m.set_defaults(func=_make)

    i = sub.add_parser("import", help="import external mask images; --polarity is required")
    i.add_argument("source", help="folder tree or zip of mask images")
    i.add_argument("--polarity", choices=POLARITIES,
                   help="what 255 means in the files: known=255 (MAT's released masks) or hole=255 (LaMa)")
    i.add_argument("--binarize", type=int, metavar="T", help="threshold anti-aliased masks: value >= T counts as 255")
    i.add_argument("-o", "--out", "--output", dest="output", required=True, help="output mask set folder")
    i.set_defaults(func=_import)

    s = sub.add_parser("stats", help="hole-ratio statistics and 10-bin histogram (JSON, optional PNG plot)")
    s.add_argument("maskset", help="mask set folder (with maskset.json)")
    s.add_argument("-o", "--out", "--output", dest="output", help="write the statistics JSON here")
    s.add_argument("--plot", help="write a histogram PNG here (like MAT supplementary Fig. A.2)")
    s.set_defaults(func=_stats)


def _make(args: argparse.Namespace) -> int:

    check_output(args.output, [args.names_from])
    names = None
    n = args.n
    if args.names_from:
        from matbench.data.datasets import Dataset

        ids = Dataset.open(args.names_from).ids
        if n is not None and n > len(ids):
            raise SpecError(f"--n {n} is larger than the {len(ids):,} ids of {args.names_from}")
        names = ids[: n if n is not None else len(ids)]
        n = len(names)
    if n is None or n <= 0:
        raise SpecError("--n must be a positive number of masks (or give --names-from DATASET)")
    ms = make_maskset(args.kind, n, args.res, args.seed, args.output, names=names, progress=args.progress,
                      hole_range=args.hole_range)
    r = ms.hole_ratios()
    hr = f" in hole range {args.hole_range[0]:g}..{args.hole_range[1]:g}" if args.hole_range else ""
    print(f"{shown_path(args.output)}: {len(ms):,} {args.kind} masks{hr} at {args.res}x{args.res}, "
          f"seeds {args.seed}..{args.seed + n - 1}, mean hole ratio {r.mean():.4f}, maskset sha256 {ms.sha256}")
    return 0


def _import(args: argparse.Namespace) -> int:

    if not args.polarity:
        raise SpecError("masks import needs --polarity known=255 (255 = known pixel, MAT's released masks) or "
                        "--polarity hole=255 (255 = hole, LaMa); refusing to guess")

    check_output(args.output, [args.source])
    ms = import_maskset(args.source, args.output, args.polarity, args.binarize)
    r = ms.hole_ratios()
    print(f"{shown_path(args.output)}: imported {len(ms):,} masks {ms.resolution}x{ms.resolution} from {args.source} "
          f"(source {args.polarity}), mean hole ratio {r.mean():.4f}, maskset sha256 {ms.sha256}")
    return 0


def _stats(args: argparse.Namespace) -> int:

    for out, flag in ((args.output, "-o"), (args.plot, "--plot")):
        if out:
            check_output(out, [args.maskset], kind="file", what=flag)
    ms = MaskSet.open(args.maskset)
    stats = {"maskset": str(ms.root), "maskset_sha256": ms.sha256, "generator": ms.meta.get("generator"),
             "resolution": ms.resolution, **hole_ratio_stats(ms.hole_ratios())}
    if args.output:
        write_json_atomic(args.output, stats)
    if args.plot:
        plot_hole_ratio_hist(ms.hole_ratios(), Path(args.plot),
                             title=f"{ms.meta.get('generator')} {ms.resolution}px, n={len(ms):,}")
    if not args.output:
        print(json.dumps(stats, indent=2))
    else:
        h = stats["histogram"]
        print(f"{ms.root}: n={stats['n']:,} mean {stats['mean']:.4f} std {stats['std']:.4f} "
              f"min {stats['min']:.4f} max {stats['max']:.4f}; bins {h['counts']}")
    return 0
