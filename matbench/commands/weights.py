"""`matbench weights list|verify|fetch|convert`: the weights files the suite knows."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matbench import weights as W
from matbench.errors import InputError, WeightsError
from matbench.io import check_output
from matbench.models.mat.checkpoint import convert_to_safetensors


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list, verify, download or convert weights files",
                              description="Weights are looked up in: an explicit path, $MATBENCH_WEIGHTS/<file>, "
                                          "the torch hub cache (<hub>/checkpoints/<file>), then downloaded from "
                                          "the official URL with a hash check.")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    pl = sub.add_parser("list", help="every known file: status, path, URL or how to get it")
    pl.add_argument("name", nargs="?", help="only this entry")
    pl.add_argument("--json", action="store_true", help="machine-readable output (one object per entry)")
    pl.set_defaults(func=cmd_list)
    pv = sub.add_parser("verify", help="hash-check the files that are present (the full sha256 where published, "
                                       "else 'prefix ok, full hash unknown')")
    pv.add_argument("name", nargs="?", help="only this entry (then a missing file is an error)")
    pv.set_defaults(func=cmd_verify)
    pf = sub.add_parser("fetch", help="download missing files from their official URLs (hash-checked)")
    pf.add_argument("name", nargs="?", help="only this entry (default: every entry with a URL)")
    pf.add_argument("--dest", metavar="DIR", help="target directory (default $MATBENCH_WEIGHTS or the hub cache)")
    pf.add_argument("--source", choices=("official", "hf"), default=None,
                    help="official URL, or the Hugging Face mirror (into the HF hub cache; sha256 checked if "
                         "pinned, else recorded on first download). Default: official if it has a URL, else hf")
    pf.set_defaults(func=cmd_fetch)
    pc = sub.add_parser("convert", help="convert an official MAT .pkl checkpoint to .safetensors")
    pc.add_argument("src", metavar="SRC.pkl", help="checkpoint to convert")
    pc.add_argument("-o", "--out", "--output", dest="out", required=True, metavar="DST.safetensors",
                    help="safetensors file to write")
    pc.set_defaults(func=cmd_convert)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _entries(name: str | None):

    return [W.get(name)] if name else W.all_weights()


def cmd_list(args: argparse.Namespace) -> int:

    rows = []
    for e in _entries(args.name):
        st, path = W.status(e.name)
        source = e.url or (e.manual or "no public URL")
        if e.hf_repo:
            source += f" | mirror hf:{e.hf_repo}/{e.hf_filename or e.filename}"
        rows.append((e.name, e.filename, st, str(path) if path else "-", source))
    dirs = ([W.weights_dir()] if W.weights_dir() else []) + [W.hub_checkpoints_dir()]
    if getattr(args, "json", False):
        print(json.dumps({"weights": [{"name": e.name, "filename": e.filename, "status": r[2],
                                       "path": None if r[3] == "-" else r[3], "url": e.url, "manual": e.manual or None,
                                       "hf_repo": e.hf_repo, "used_by": e.used_by}
                                      for e, r in zip(_entries(args.name), rows, strict=True)],
                          "searched": [str(d) for d in dirs]}, indent=2))
        return 0
    widths = [max(len(r[i]) for r in rows + [("NAME", "FILE", "STATUS", "PATH", "")]) for i in range(4)]
    print(f"{'NAME':<{widths[0]}}  {'FILE':<{widths[1]}}  {'STATUS':<{widths[2]}}  {'PATH':<{widths[3]}}  URL / HOW")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}")
    where = ", ".join(str(p) for p in dirs)
    print(f"searched: {where}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:

    bad = 0
    for e in _entries(args.name):
        path = W.find(e.name)
        if path is None:
            if args.name:
                raise WeightsError(W._missing_message(e))
            print(f"{e.name}: missing")
            continue
        try:
            digest = W.verify(e, path)
        except WeightsError as err:
            bad += 1
            print(f"{e.name}: MISMATCH {err}")
            continue
        print(f"{e.name}: {W.hash_check_note(e)}: {path} sha256={digest}")
    if bad:
        print(f"matbench: error: {bad} file(s) failed the hash check", file=sys.stderr)
        return 1
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:

    dest = Path(args.dest) if args.dest else None
    failed = 0
    for e in _entries(args.name):
        found = W.find(e.name)
        source = args.source or ("official" if e.url or not e.hf_repo else "hf")
        # a copy already in the HF cache still goes through fetch_hf: its hash is checked or recorded
        if found is not None and not (source == "hf" and found == W.hf_cached(e)):
            print(f"{e.name}: present at {found}")
            continue
        if source == "hf":
            if not e.hf_repo:
                if args.name:
                    raise WeightsError(f"weights {e.name} has no Hugging Face mirror; "
                                       + ("use --source official" if e.url else e.manual or "get it from the authors"))
                continue  # fetching every mirror: entries without one are not this command's business
            try:
                path, note = W.fetch_hf(e)
            except WeightsError as err:
                if args.name:
                    raise
                print(f"{e.name}: {err}")
                failed += 1
                continue
            print(f"{e.name}: fetched from hf:{e.hf_repo} to {path} ({note})")
            continue
        if not e.url:
            print(f"{e.name}: no direct URL; {e.manual or 'obtain it from the authors'}"
                  + (f" (or --source hf: mirror {e.hf_repo})" if e.hf_repo else ""))
            failed += 1 if args.name else 0
            continue
        try:
            path = W.download(e, dest)
        except Exception as err:  # report every file, then fail
            if args.name:
                raise
            print(f"{e.name}: {err}")
            failed += 1
            continue
        print(f"{e.name}: downloaded to {path}")
    return 1 if failed else 0


def cmd_convert(args: argparse.Namespace) -> int:

    src, dst = Path(args.src), Path(args.out)
    if not src.is_file():
        raise InputError(f"{src}: no such checkpoint file")
    if dst.suffix != ".safetensors":
        raise InputError(f"{dst}: output must end in .safetensors")

    check_output(dst, [src], kind="file")

    out = convert_to_safetensors(src, dst)
    print(f"wrote {out}")
    return 0
