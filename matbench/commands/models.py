"""`matbench models`: every model (built-ins and `matbench.models` entry points), what it needs, and
whether its weights files are present (matbench.weights.status; nothing is downloaded or hashed)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from matbench import weights as W
from matbench.errors import MatbenchError, WeightsError
from matbench.models.base import get_model_info, list_models
from matbench.models.options import format_options
from matbench.trust import add_trust_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list the available models, their requirements and weights status",
        description="Lists built-in models and plugins registered through the 'matbench.models' entry-point group. "
                    "Weights are looked up without downloading: $MATBENCH_WEIGHTS/<file>, then the torch hub cache.")
    p.add_argument("name", nargs="?", help="only this model, with its options (a registered name, entry point or "
                   "pkg.mod:factory)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_trust_option(p)  # a spec or --model naming code: matbench.trust
    p.set_defaults(func=run)


def _weights_rows(names: tuple[str, ...]) -> list[dict[str, Any]]:

    rows = []
    for name in names:
        try:
            entry = W.get(name)
            status, path = W.status(name)
            rows.append({"name": name, "filename": entry.filename, "status": status,
                         "path": str(path) if path else None})
        except WeightsError:
            rows.append({"name": name, "filename": None, "status": "unregistered", "path": None})
    return rows


def describe(info: Any) -> dict[str, Any]:
    """One model as a JSON-able dict."""
    req = info.requires
    return {
        "name": info.name,
        "source": info.source,
        "description": info.description,
        "requires": {"weights": list(req.weights), "size_multiple": req.size_multiple, "samples": req.samples,
                     "native_resolution": req.native_resolution},
        "weights": _weights_rows(tuple(req.weights)),
        # declared options (name, type, default, help, choices); None when a plugin declares none
        "options": None if info.options is None else [o.to_json() for o in info.options],
    }


def broken_entry_points(listed: set[str]) -> list[dict[str, str]]:
    """Entry points that failed to load (list_models skips them); shown so a plugin author sees why."""
    from importlib.metadata import entry_points


    out = []
    for ep in entry_points(group="matbench.models"):
        if ep.name in listed:
            continue
        try:
            get_model_info(ep.name)
        except MatbenchError as e:
            out.append({"name": ep.name, "value": ep.value, "error": str(e)})
    return out


def format_text(models: list[dict[str, Any]], broken: list[dict[str, str]], options: bool = False) -> str:
    """Text listing; `options`: also each model's declared options (`matbench models NAME`)."""

    lines = []
    for m in models:
        r = m["requires"]
        needs = [_size_need(m)]
        if r["native_resolution"]:
            needs.append(f"native {r['native_resolution']}")
        needs.append("stochastic (samples)" if r["samples"] else "deterministic")
        lines.append(f"{m['name']}  [{m['source']}]  {m['description']}")
        lines.append(f"    needs: {', '.join(needs)}")
        if not m["weights"]:
            lines.append("    weights: none")
        for i, w in enumerate(m["weights"]):
            head = "    weights: " if i == 0 else "             "
            where = f" ({w['path']})" if w["path"] else ""
            lines.append(f"{head}{w['name']}: {w['status']}{where}")
        if options:
            lines += format_options(m["options"])
    for b in broken:
        lines.append(f"{b['name']}  [entry-point, NOT LOADABLE]  {b['value']}: {b['error']}")
    lines.append("missing weights: `matbench weights list` says where to get them; models with weights also run "
                 "with --smoke (random weights)")
    return "\n".join(lines)


def _size_need(m: dict[str, Any]) -> str:
    """'size multiple N', or for a model whose network resolution is an option (MAT: 256 | 512) the multiple
    that follows it: a fixed 'size multiple 512' beside 'resolution 256 | 512' reads as a contradiction."""
    r = m["requires"]
    res = next((o for o in m["options"] or () if o["name"] == "resolution" and o["choices"]), None)
    if res is None or r["size_multiple"] != r["native_resolution"]:
        return f"size multiple {r['size_multiple']}"
    choices = " | ".join(str(c) for c in res["choices"])
    return f"size multiple of the resolution option ({choices}; {r['size_multiple']} by default)"


def run(args: argparse.Namespace) -> int:

    if args.name:
        infos = [get_model_info(args.name)]
        broken: list[dict[str, str]] = []
    else:
        infos = list_models()
        broken = broken_entry_points({i.name for i in infos})
    models = [describe(i) for i in infos]
    if args.json:
        print(json.dumps({"models": models, "broken_entry_points": broken}, indent=2))
    else:
        print(format_text(models, broken, options=bool(args.name)))
    return 0
