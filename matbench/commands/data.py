"""`matbench data`: dataset manifests, verification, preset checks, preparation, demo photos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matbench.data.datasets import Dataset
from matbench.data.demo import demo_images
from matbench.data.manifest import verify_manifest, write_manifest
from matbench.data.preprocess import DEFAULT_POLICY, POLICIES
from matbench.data.presets import PRESETS, check_preset
from matbench.io import IMAGE_EXTENSIONS, check_output, save_png, shown_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="datasets: manifests, verification, presets, preparation")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    m = sub.add_parser("manifest", help="record every id, byte size and sha256 of a dataset")
    m.add_argument("dataset", help="directory tree or .zip of images")
    m.add_argument("-o", "--out", "--output", dest="output", required=True, help="manifest JSON to write")
    m.add_argument("--preset", default="folder", choices=sorted(PRESETS), help="check count/naming first")
    m.set_defaults(func=_manifest)

    v = sub.add_parser("verify", help="compare a dataset with a manifest (exit 1 on differences)")
    v.add_argument("dataset", help="directory tree or .zip of images")
    v.add_argument("manifest", help="manifest JSON from `matbench data manifest`")
    v.add_argument("--show", type=int, default=20, help="list at most this many ids per kind of difference")
    v.set_defaults(func=_verify)

    i = sub.add_parser("info", help="count images and check them against a preset (exit 1 if incomplete)")
    i.add_argument("dataset", help="directory tree or .zip of images")
    i.add_argument("--preset", default="folder", choices=sorted(PRESETS), help="dataset preset (default folder)")
    i.set_defaults(func=_info)

    pr = sub.add_parser("prepare", help="write the prepared RxR evaluation images as PNG (one per id)")
    pr.add_argument("dataset", help="directory tree or .zip of images")
    pr.add_argument("-o", "--out", "--output", dest="output", required=True, help="output folder")
    pr.add_argument("--res", type=int, default=512, help="resolution R (default 512)")
    pr.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES),
                    help="; ".join(f"{k}: {v}" for k, v in POLICIES.items()))
    pr.add_argument("--preset", default="folder", choices=sorted(PRESETS), help="dataset preset (default folder)")
    pr.set_defaults(func=_prepare)

    d = sub.add_parser("demo", help="write a few real photos bundled with scikit-image (offline)")
    d.add_argument("-o", "--out", "--output", dest="output", required=True, help="output folder")
    d.add_argument("-n", "--n", dest="n", type=int, default=8, help="number of photos (at most those available)")
    d.set_defaults(func=_demo)


def _manifest(args: argparse.Namespace) -> int:

    check_output(args.output, [args.dataset], kind="file")
    ds = Dataset.open(args.dataset, preset=args.preset)
    m = write_manifest(ds, args.output)
    print(f"{shown_path(args.output)}: {m['count']:,} files, manifest sha256 {m['sha256']}")
    return 0


def _verify(args: argparse.Namespace) -> int:

    report = verify_manifest(Dataset.open(args.dataset), args.manifest)
    for line in report.lines(args.show):
        print(line)
    if report.ok:
        print(f"{args.dataset}: matches {args.manifest} ({report.checked:,} files, sha256 {report.manifest_sha256})")
        return 0
    print(f"{args.dataset}: differs from {args.manifest}: {len(report.missing):,} missing, {len(report.extra):,} "
          f"extra, {len(report.changed):,} changed", file=sys.stderr)
    return 1


def _info(args: argparse.Namespace) -> int:

    ds = Dataset.open(args.dataset)
    exts: dict[str, int] = {}
    for image_id in ds.ids:
        ext = Path(ds.file_name(image_id)).suffix.lower()
        exts[ext] = exts.get(ext, 0) + 1
    kinds = ", ".join(f"{n:,} {e}" for e, n in sorted(exts.items()))
    print(f"{ds.path}: {ds.kind}, {len(ds):,} images ({kinds}); first id {ds.ids[0]!r}, last id {ds.ids[-1]!r}")
    report = check_preset(ds.ids, args.preset)
    print(report.message(str(ds.path)))
    return 0 if report.ok else 1


def _prepare(args: argparse.Namespace) -> int:

    check_output(args.output, [args.dataset])
    ds = Dataset.open(args.dataset, preset=args.preset)
    out = Path(args.output)
    for image_id in ds.ids:
        save_png(out / f"{image_id}.png", ds.load(image_id, args.res, args.policy))
    print(f"{shown_path(out)}: {len(ds):,} images at {args.res}x{args.res} (policy {args.policy})")
    return 0


def _demo(args: argparse.Namespace) -> int:

    check_output(args.output)
    folder = demo_images(Path(args.output), args.n)
    n = len([p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS])
    print(f"{folder}: {n} demo photos (see {folder / 'SOURCES.txt'})")
    return 0
