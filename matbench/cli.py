"""`matbench` command line: argument parsing only; the work happens in the modules it calls.

Each subcommand lives in matbench/commands/<name>.py and exposes
`register(subparsers) -> None`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from matbench import __version__
from matbench.errors import MatbenchError
from matbench.trust import trusting

# Subcommand -> (module whose register() adds its parser, one-line help). Order = order in `matbench --help`.
# The CLI dispatch is the one lazy import on purpose: only the chosen command's module (and what it imports at
# its top) is loaded, so `matbench --help` and a light command do not pay for torch, reports and the models.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("matbench.commands.demo",
             "run the built-in demo: bundled photos, MAT masks, baselines (+ local models), HTML report"),
    "run": ("matbench.commands.run", "run a benchmark spec (TOML): models x datasets x mask sets x resolutions"),
    "eval": ("matbench.commands.eval",
             "evaluate inpainted results against ground truths (FID, P-IDS/U-IDS, LPIPS, ...)"),
    "compare": ("matbench.commands.compare", "paired verdicts: is B better than A on the same images?"),
    "power": ("matbench.commands.power", "sample size: images needed to detect a delta (paired test)"),
    "history": ("matbench.commands.history", "results history of every run/eval (list, import older runs)"),
    "study": ("matbench.commands.study", "user study (2AFC): make a static page, analyse the choices"),
    "inpaint": ("matbench.commands.inpaint", "inpaint a folder of images with a registered model"),
    "data": ("matbench.commands.data", "datasets: manifests, verification, presets, preparation"),
    "masks": ("matbench.commands.masks", "mask sets: generate (MAT / LaMa families), import, statistics"),
    "models": ("matbench.commands.models", "list the available models, their requirements and weights status"),
    "weights": ("matbench.commands.weights", "list, verify, download or convert weights files"),
    "report": ("matbench.commands.report", "render a static HTML report (leaderboards, plots, image pages)"),
    "table": ("matbench.commands.report", "paper table (MAT Table 2 layout) as Markdown, LaTeX or CSV"),
    "leaderboard": ("matbench.commands.report", "merge many runs into ranked tables (refuses mixed protocols)"),
    "check": ("matbench.commands.report",
              "regression gate: compare CURRENT with --baseline (exit 0 ok, 1 regression, 2 mismatch)"),
    "stats": ("matbench.commands.stats",
              "reference feature statistics of a dataset (FID/FD without the images)"),
    "protocols": ("matbench.commands.protocols", "published evaluation protocols (conventions, sources, numbers)"),
    "doctor": ("matbench.commands.doctor",
               "why your number differs from the paper's: inputs and conventions against a protocol"),
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m, _ in COMMANDS.values()))
ALL = "*"


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The parser with the full sub-parsers of `command` (ALL: every command; None: none, names and helps only)."""
    parser = argparse.ArgumentParser(
        prog="matbench",
        description="Evaluation and benchmarking for large-hole image inpainting (MAT, LaMa, CoModGAN, ...).",
    )
    parser.add_argument("--version", action="version", version=f"matbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    full = [m for m in COMMAND_MODULES if command == ALL or (command in COMMANDS and COMMANDS[command][0] == m)]
    done: set[str] = set()
    for name, (mod_name, help_text) in COMMANDS.items():
        if mod_name in full:
            if mod_name not in done:
                importlib.import_module(mod_name).register(sub)  # the lazy dispatch (see COMMANDS)
                done.add(mod_name)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is one), else None."""
    return next((a for a in argv if a in COMMANDS), None)


def command_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> set[str]:
    """The option strings of the (sub)command that `args` chose (`weights fetch`: its own, not `weights`'s)."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if chosen not in (subs[0].choices if subs else {}):
            return {o for a in parser._actions for o in a.option_strings}
        parser = subs[0].choices[chosen]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with trusting(getattr(args, "trust", None)):  # --trust MODULE: this command only
            rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away (`| head`) surfaces here, inside the handler below
        return rc
    except BrokenPipeError:
        return _broken_pipe()
    except MatbenchError as e:
        if args.verbose:
            raise
        print(f"matbench: error: {e.for_options(command_options(parser, args))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        from matbench.io import disk_full_error, is_disk_full

        if not is_disk_full(e) or args.verbose:  # other OS errors keep their traceback (a bug to report)
            raise
        # A full disk outside matbench's own writers (a library's file, a log): one line, not a traceback.
        err = disk_full_error(e.filename or ".")
        print(f"matbench: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("matbench: interrupted (completed work is kept; rerun to resume)", file=sys.stderr)
        return 130


# Exit status when the reader of stdout closed the pipe: 128 + SIGPIPE, what a shell reports for a tool that
# the signal ended (`yes | head`), so `set -o pipefail` scripts see it the same way.
EXIT_BROKEN_PIPE = 141


def _broken_pipe() -> int:
    """The reader of stdout went away (`matbench weights list | head`): stop quietly. stdout is pointed at
    /dev/null so the interpreter's final flush does not raise a second BrokenPipeError at exit (the recipe of
    the Python docs, 'Note on SIGPIPE')."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
