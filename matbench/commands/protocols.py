"""`matbench protocols [NAME] [--json]`: published evaluation protocols, their conventions and numbers."""

from __future__ import annotations

import argparse

from matbench import protocols as P


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("protocols", help="published evaluation protocols (conventions, sources, numbers)",
                              description="Named protocols with every convention spelled out and the numbers their "
                                          "sources published; `matbench eval --protocol NAME` checks a run "
                                          "against one and tables show the published value beside ours.")
    p.add_argument("name", nargs="?", help="show only this protocol")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json


    items = [P.get(args.name)] if args.name else [P.get(n) for n in P.names()]
    if args.json:
        print(json.dumps([p.to_dict() for p in items], indent=2))
        return 0
    for p in items:
        print(f"{p.name}: {p.title}")
        for k, v in p.description.items():
            print(f"  {k:<10} {v}")
        req = ", ".join(f"{k}={'|'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in p.require.items())
        print(f"  {'checks':<10} {req}")
        if p.published:
            metrics = sorted({m for v in p.published.values() for m in v}, key=["fid", "pids", "uids"].index)
            print(f"  {'published':<10} " + "  ".join(f"{m.upper():>7}" for m in metrics))
            for model, vals in p.published.items():
                cells = [f"{_show(m, vals[m]):>7}" if m in vals else f"{'-':>7}" for m in metrics]
                print(f"    {model:<16} " + "  ".join(cells))
        else:
            print(f"  {'published':<10} (none listed: see deviation)")
        for s in p.sources:
            print(f"  {'source':<10} {s}")
        print()
    return 0


def _show(metric: str, v: float) -> str:
    return f"{v * 100:.2f}" if metric in ("pids", "uids") else f"{v:.2f}"
