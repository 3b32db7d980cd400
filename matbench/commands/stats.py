"""`matbench stats make|show`: reference statistics (mean, covariance) of a dataset's features."""

from __future__ import annotations

import argparse

from matbench.devices import DEVICE_HELP, resolve_device
from matbench.errors import SpecError
from matbench.features import get_spec, refstats
from matbench.io import check_output, write_json_atomic
from matbench.progress import add_progress_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stats", help="reference feature statistics of a dataset (FID/FD without the images)",
                              description="Mean and covariance of a dataset's features in one .npz with the "
                                          "extractor, weights sha256, resize convention and dataset manifest "
                                          "sha256; FID/FD against it refuse features of another kind.")
    sub = p.add_subparsers(dest="stats_command", metavar="ACTION")
    pm = sub.add_parser("make", help="compute the statistics of DATASET (folder or zip)")
    pm.add_argument("dataset", metavar="DATASET", help="folder or .zip of images")
    pm.add_argument("--extractor", required=True, help="inception-v3-compat, inception-nvidia, pt-inception, "
                    "dinov2-vitl14 (s/b/g), clip-vitl14-336, clip-vitb32")
    pm.add_argument("--resize", choices=("legacy-tf", "legacy-pytorch", "clean"),
                    help="resize convention (default: the extractor's native one)")
    pm.add_argument("--resolution", type=int, default=512, help="images are prepared at this size (default 512); "
                    "images smaller than it are refused unless --allow-upscale")
    pm.add_argument("--allow-upscale", action="store_true", help="reflect-pad images smaller than --resolution "
                    "(the mat-val policy) instead of refusing them; the file records how many were")
    pm.add_argument("--weights", metavar="FILE", help="explicit weights file of the extractor")
    pm.add_argument("--smoke", action="store_true", help="random extractor weights (labelled smoke in the file)")
    pm.add_argument("--device", default=None, help=DEVICE_HELP)
    pm.add_argument("--batch-size", type=int, default=16, help="images per network call (default 16)")
    pm.add_argument("--limit", type=int, help="first N images only (no manifest hash is recorded then)")
    pm.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    pm.add_argument("-o", "--out", "--output", dest="out", required=True, metavar="REF.npz",
                    help="statistics file to write")
    add_progress_option(pm)
    pm.set_defaults(func=cmd_make)
    pf = sub.add_parser("fd", help="FD of a folder of generated images against a statistics file")
    pf.add_argument("folder", metavar="DIR", help="folder of generated images")
    pf.add_argument("--ref", required=True, metavar="REF.npz", help="from `matbench stats make`; its extractor, "
                    "weights and resize are used, and features of another kind are refused")
    pf.add_argument("--fid-convention", choices=("mat", "torch-fidelity"), default="mat",
                    help="covariance 1/N (mat) or 1/(N-1) (torch-fidelity)")
    pf.add_argument("--weights", metavar="FILE", help="explicit weights file of the extractor")
    pf.add_argument("--smoke", action="store_true", help="random extractor weights (only against smoke statistics)")
    pf.add_argument("--bootstrap", type=int, default=200, metavar="N", help="bootstrap resamples for the 95%% CI "
                    "(0: none)")
    pf.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    pf.add_argument("--device", default=None, help=DEVICE_HELP)
    pf.add_argument("--batch-size", type=int, default=16, help="images per network call (default 16)")
    pf.add_argument("-o", "--out", "--output", dest="out", metavar="OUT.json", help="also write the result as JSON")
    add_progress_option(pf)
    pf.set_defaults(func=cmd_fd)
    ps = sub.add_parser("show", help="print what a statistics file holds")
    ps.add_argument("file", metavar="REF.npz", help="a file from `matbench stats make`")
    ps.set_defaults(func=cmd_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_make(args: argparse.Namespace) -> int:

    if args.batch_size < 1:
        raise SpecError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.resize and get_spec(args.extractor).uint8_input:
        raise SpecError(f"--resize: {args.extractor} resizes inside its network (legacy-tf) and has no other "
                        "convention; use pt-inception, dinov2-* or clip-* for another resize")

    check_output(args.out, [args.dataset], kind="file")
    device = resolve_device(args.device)
    st = refstats.make(args.dataset, args.extractor, args.out, resize=args.resize, resolution=args.resolution,
                       smoke=args.smoke, device=device, batch_size=args.batch_size, weights_path=args.weights,
                       cache_dir=False if args.no_cache else None, limit=args.limit, progress=args.progress,
                       allow_upscale=args.allow_upscale)
    print(_describe(st))
    return 0


def cmd_fd(args: argparse.Namespace) -> int:

    if args.out:
        check_output(args.out, [args.folder, args.ref], kind="file")
    device = resolve_device(args.device)
    r = refstats.fd_folder(args.folder, args.ref, convention=args.fid_convention, smoke=args.smoke, device=device,
                           batch_size=args.batch_size, weights_path=args.weights, n_bootstrap=args.bootstrap,
                           seed=args.seed, progress=args.progress)
    if r["smoke"]:
        print("SMOKE: random extractor weights; not comparable with real results")
    ci = "" if r["ci_low"] is None else f"  [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    print(f"FD [{r['extractor']}, {r['resize']}, {r['convention']}] of {r['n']} images vs {r['reference']} "
          f"(n={r['reference_n']}): {r['fd']:.2f}{ci}")
    if args.out:
        write_json_atomic(args.out, r)
    return 0


def cmd_show(args: argparse.Namespace) -> int:

    print(_describe(refstats.load(args.file)))
    return 0


def _describe(st) -> str:
    lines = []
    if st.meta.get("smoke") == "true":
        lines.append("SMOKE: computed with random extractor weights; not comparable with real statistics")
    lines.append(f"{st.path}: n={st.n}, dim={st.mu.shape[0]}")
    for k in ("extractor", "weights_sha256", "resize", "dataset", "dataset_manifest_sha256", "resolution",
              "preprocess", "enlarged"):
        lines.append(f"  {k:<24} {st.meta.get(k, '')}")
    return "\n".join(lines)
