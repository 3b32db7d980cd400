"""`matbench doctor`: why a number differs from a paper's, factor by factor, with measured effects."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matbench.doctor import WHAT_IFS, diagnose, format_table, job_inputs
from matbench.errors import SpecError
from matbench.evaluate.config import FID_CONVENTIONS, INCEPTIONS
from matbench.evaluate.folders import MASK_POLARITIES
from matbench.io import check_output, write_json_atomic
from matbench.progress import add_progress_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor", help="why your number differs from the paper's: inputs and conventions against a protocol",
        description="Inspect results, ground truths and masks against a published protocol factor by factor "
                    "(image count and ids, file format, size, color mode, EXIF, masks, pairing, metric "
                    "conventions) and measure how much each deviation moves the metrics. Exit 0: nothing "
                    "deviates; 1: something does; 2: unusable input. See docs/doctor.md.")
    p.add_argument("--results", metavar="DIR", help="folder of inpainted images")
    p.add_argument("--gt", metavar="DIR", help="folder of ground-truth images")
    p.add_argument("--job", metavar="RUN_DIR/jobs/JOB", help="instead of --results/--gt/--masks: a run directory's "
                   "job (its saved outputs, saved inputs and mask set)")
    p.add_argument("--masks", metavar="DIR", help="mask folder (a mask set with maskset.json, or plain images with "
                   "--mask-polarity); enables the mask, polarity and known-region checks")
    p.add_argument("--mask-polarity", choices=MASK_POLARITIES, help="what white means in a plain mask folder")
    p.add_argument("--protocol", required=True, metavar="NAME", help="a published protocol (`matbench protocols`) "
                   "or a TOML file with one protocol table")
    p.add_argument("--published-row", metavar="LABEL", help="a published row, e.g. 'MAT (8M)': add a one-line "
                   "verdict ordering the factors by their measured effect on the gap")
    p.add_argument("--what-if", default=None, metavar="LIST", help="measured effects to run (default all: "
                   "n,jpeg,convention,lpips,backend,statistics,precision,batch; 'none' for the checks only)")
    p.add_argument("--my-fid-convention", choices=FID_CONVENTIONS, help="the covariance convention YOUR number "
                   "used, if you know it (a different one from the protocol's is flagged, with its effect)")
    p.add_argument("--my-inception", choices=INCEPTIONS, help="the Inception backend your number used")
    p.add_argument("--my-lpips-range", choices=("-1,1", "0,1"), help="the input range your LPIPS got")
    p.add_argument("--my-precision", choices=("fp32", "bf16"), help="the precision of the network that computed "
                   "your features (bf16: autocast)")
    p.add_argument("--my-statistics", choices=("float64", "float32"), help="the precision your FID's mean and "
                   "covariance were accumulated in")
    p.add_argument("--json", action="store_true", help='machine-readable: {"protocol": NAME, "factors": [...]}')
    p.add_argument("--save", metavar="FILE", help="also write the report as JSON (schema matbench.doctor/1: the "
                   "--json form plus metrics, costs, verdict, smoke) for `matbench report --doctor FILE`")
    p.add_argument("--smoke", action="store_true", help="random (seeded) network weights: no downloads, effects "
                   "are NOT comparable with real ones (labelled SMOKE)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8)")
    p.add_argument("--cache-dir", metavar="DIR", help="feature cache (ground-truth features are reused)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets and generator masks")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.batch_size < 1:
        raise SpecError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.what_if is None:
        what_ifs: tuple[str, ...] = WHAT_IFS
    elif args.what_if.strip() == "none":
        what_ifs = ()
    else:
        what_ifs = tuple(w.strip() for w in args.what_if.split(",") if w.strip())
    if args.job is not None:
        if args.results or args.gt or args.masks:
            raise SpecError("--job replaces --results, --gt and --masks; give one or the other")
        args.results, args.gt, args.masks, polarity = job_inputs(args.job)
        args.mask_polarity = args.mask_polarity or polarity
    elif not (args.results and args.gt):
        raise SpecError("give --results DIR and --gt DIR, or --job RUN_DIR/jobs/JOB")
    if args.save:
        check_output(args.save, [args.results, args.gt, args.masks], kind="file", what="--save")
        if Path(args.save).exists():  # nothing a user gave is overwritten
            raise SpecError(f"--save {args.save}: the file exists; the doctor does not overwrite it")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    report = diagnose(args.results, args.gt, args.protocol, args.masks, mask_polarity=args.mask_polarity,
                      smoke=args.smoke,
                      device=device, cache_dir=False if args.no_cache else args.cache_dir, what_ifs=what_ifs,
                      published_row=args.published_row, seed=args.seed, batch_size=args.batch_size,
                      progress=args.progress,
                      stated={"fid_convention": args.my_fid_convention, "inception": args.my_inception,
                              "lpips_range": args.my_lpips_range, "precision": args.my_precision,
                              "statistics": args.my_statistics})
    if args.save:
        write_json_atomic(args.save, report.to_file_dict())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_table(report))
    return 0 if report.ok else 1
