"""`matbench eval`: metrics of a folder of inpainted results against ground truths."""

from __future__ import annotations

import argparse
import math

from matbench.commands.history import add_history_options, append_after
from matbench.devices import DEVICE_HELP, resolve_device
from matbench.errors import SpecError
from matbench.evaluate import evaluate_folders, parse_metrics
from matbench.evaluate.config import FID_CONVENTIONS, INCEPTIONS, LPIPS_NETS, RUNTIMES, EvalConfig
from matbench.evaluate.folders import MASK_POLARITIES, FolderRun
from matbench.io import check_output, write_json_atomic
from matbench.metrics import METRIC_INFO, default_metrics
from matbench.progress import add_progress_option
from matbench.reports.intervals import interval
from matbench.results import MetricValue, ResultRecord
from matbench.trust import add_trust_option

ALL_METRICS = default_metrics()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate inpainted results against ground truths (FID, P-IDS/U-IDS, LPIPS, ...)",
        description="Pair results and ground truths by id (relative path without extension), check every pair, "
                    "and write metrics.json and per_image.csv to OUT.")
    p.add_argument("--results", required=True, metavar="DIR", help="folder of inpainted images")
    p.add_argument("--gt", required=True, metavar="DIR", help="folder of ground-truth images")
    p.add_argument("--masks", metavar="DIR", help="mask folder (a mask set with maskset.json, or plain images with "
                   "--mask-polarity); enables the known-region pair check and hole-ratio bins")
    p.add_argument("--mask-polarity", choices=MASK_POLARITIES, help="what white means in a plain mask folder "
                   "(MAT: known=255, LaMa: hole=255)")
    p.add_argument("--metrics", default=",".join(ALL_METRICS),
                   help=f"comma list (default all: {','.join(ALL_METRICS)}); other feature spaces: fd_dinov2, cmmd, "
                   "clip_fid, fid_pt, dc, {fd,kid,pr,dc,ids}_X for X in dinov2, clip, clipb32, pt; a metric of "
                   "your own as module:name (docs/metrics.md)")
    p.add_argument("--fid-convention", choices=FID_CONVENTIONS, default="mat",
                   help="covariance 1/N (mat, default) or 1/(N-1) (torch-fidelity)")
    p.add_argument("--inception", choices=INCEPTIONS, default=INCEPTIONS[0],
                   help="Inception backend of FID/IDS/KID: torch-fidelity's TF-compatible port, NVIDIA's "
                   "TorchScript file, or pytorch-fid's (LaMa's protocol)")
    p.add_argument("--inception-path", metavar="FILE", help="explicit Inception weights file")
    p.add_argument("--vgg-path", metavar="FILE", help="explicit VGG16 weights file (precision/recall)")
    p.add_argument("--lpips-net", choices=LPIPS_NETS, default="alex", help="LPIPS trunk (default alex)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N", help="bootstrap resamples for 95%% CIs (0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--smoke", action="store_true", help="random (seeded) network weights: no downloads, "
                   "numbers are NOT comparable with real ones")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="where the feature networks run on the CPU: torch (eager, the reference; default), onnx "
                        "(ONNX Runtime, same numbers within 1e-5, 2-3x faster; pip install 'matbench-inpaint[cpu]') "
                        "or auto (onnx when installed)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--workers", type=int, default=None, help="processes reading images (default on CPU: 1 from 3 "
                   "cores, else 0; with a GPU: up to 4); workers + --threads never exceed the cores")
    p.add_argument("--threads", type=int, default=None, help="compute threads (torch, OpenCV, numba, BLAS; "
                   "default: the cores left after the workers)")
    p.add_argument("--cache-dir", metavar="DIR", help="feature cache (default $MATBENCH_CACHE/features or "
                   "~/.cache/matbench/features)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    add_progress_option(p)  # --progress/--no-progress: matbench.progress
    p.add_argument("--allow-mismatch", action="store_true", help="evaluate even if some pairs fail the check")
    p.add_argument("--save-features", action="store_true", help="also write OUT/features.npz: float32 features "
                   "per extractor and side ({extractor}.real / .fake), rows in per_image.csv order")
    p.add_argument("--protocol", metavar="NAME", help="a published protocol (matbench protocols): refuse the run "
                   "if a convention differs, and put the published numbers beside ours")
    p.add_argument("--published-row", metavar="LABEL", help="which published row to compare with, e.g. 'MAT (8M)' "
                   "(default: the only row, or the one starting with the model name)")
    p.add_argument("--name", metavar="NAME", help="the model's name in tables and leaderboards (default: the "
                   "results folder's name, e.g. 'results')")
    p.add_argument("-o", "--out", "--output", dest="out", required=True, metavar="OUT", help="output directory")

    add_history_options(p)
    add_trust_option(p)  # a spec or --model naming code: matbench.trust
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    metrics = parse_metrics(args.metrics)
    if args.bootstrap < 0:
        raise SpecError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.batch_size < 1:
        raise SpecError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0 or args.threads is not None and args.threads < 1:
        raise SpecError(f"--workers must be >= 0 and --threads >= 1, got {args.workers} and {args.threads}")

    check_output(args.out, [args.results, args.gt, args.masks])  # before hours of computing, not after
    device = resolve_device(args.device)  # a device this machine lacks: one line, before any work
    cache_dir = False if args.no_cache else args.cache_dir
    config = EvalConfig(device=device, smoke=args.smoke, cache_dir=cache_dir, fid_convention=args.fid_convention,
                        lpips_net=args.lpips_net, inception=args.inception, inception_path=args.inception_path,
                        vgg_path=args.vgg_path, n_bootstrap=args.bootstrap, seed=args.seed,
                        batch_size=args.batch_size, runtime=args.runtime)
    run = FolderRun(out_dir=args.out, allow_mismatch=args.allow_mismatch, mask_polarity=args.mask_polarity,
                    workers=args.workers, threads=args.threads,
                    progress=args.progress, name=args.name,
                    save_features=args.save_features, protocol_name=args.protocol, published_row=args.published_row)
    record = evaluate_folders(args.results, args.gt, args.masks, metrics, config=config, run=run)
    write_inputs(args)
    print(format_summary(record, args.out))
    if args.save_features:
        print(f"wrote {args.out}/features.npz ({{extractor}}.real / .fake, rows in per_image.csv order)")

    append_after(args, [args.out], "eval")
    return 0


INPUTS_FILE = "inputs.json"


def write_inputs(args: argparse.Namespace) -> None:
    """OUT/inputs.json: absolute paths of the results, ground truth and masks (for `matbench study make`)."""
    from pathlib import Path


    def absolute(p: str | None) -> str | None:
        return None if p is None else str(Path(p).resolve())

    write_json_atomic(Path(args.out) / INPUTS_FILE, {
        "schema": "matbench.eval-inputs/1", "results": absolute(args.results), "gt": absolute(args.gt),
        "masks": absolute(args.masks), "mask_polarity": args.mask_polarity})


def format_summary(record: ResultRecord, out: str) -> str:
    lines = []
    if record.smoke:
        lines.append("SMOKE RUN: random network weights; these numbers are not comparable with real results")
    n = record.protocol.get("n_images")
    lines.append(f"{n} images, FID convention {record.protocol.get('fid_convention')}")
    for name, mv in record.metrics.items():
        info = METRIC_INFO.get(name)
        scale, digits, label = (info.scale, info.digits, info.label) if info else (1.0, 4, name)
        ci = _no_ci(name, mv) if info else ""
        if not ci and mv.ci_low is not None and mv.ci_high is not None:
            ci = f"  [{mv.ci_low * scale:.{digits}f}, {mv.ci_high * scale:.{digits}f}]"
        pub = (mv.extra or {}).get("published")
        if pub:  # --protocol: the source's number beside ours
            inside = {True: "inside", False: "outside", None: "no interval"}[pub.get("inside_ci")]
            ci += (f"  published {pub['value'] * scale:.{digits}f} ({pub['row']}), "
                   f"diff {pub['diff'] * scale:+.{digits}f}, {inside} our CI")
        if mv.value is not None and math.isinf(mv.value):  # PSNR of a region the result left untouched
            ci = "  (infinite: the result copies this region exactly in at least one image)"
        lines.append(f"  {label:<18} {mv.value * scale:.{digits}f}{ci}")
    lines.append(f"wrote {out}/metrics.json and {out}/per_image.csv")
    return "\n".join(lines)


def _no_ci(name: str, mv: MetricValue) -> str:
    """'  no CI (reason)' for an interval the sample cannot support (zero width, n < 2), never shown as exact;
    reports.intervals decides, as for the tables and the HTML report."""

    iv = interval(name, mv.value, mv.ci_low, mv.ci_high, mv.n)
    return f"  no CI ({iv.reason})" if iv.kind == "unsupported" else ""
