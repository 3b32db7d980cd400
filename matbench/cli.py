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

# Order = order in `matbench --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "matbench.commands.demo",
    "matbench.commands.run",
    "matbench.commands.eval",
    "matbench.commands.compare",
    "matbench.commands.history",
    "matbench.commands.study",
    "matbench.commands.inpaint",
    "matbench.commands.data",
    "matbench.commands.masks",
    "matbench.commands.models",
    "matbench.commands.weights",
    "matbench.commands.report",
    "matbench.commands.stats",
    "matbench.commands.protocols",
    "matbench.commands.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matbench",
        description="Evaluation and benchmarking for large-hole image inpainting (MAT, LaMa, CoModGAN, ...).",
    )
    parser.add_argument("--version", action="version", version=f"matbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:  # command not present in this tree
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
        print(f"matbench: error: {e}", file=sys.stderr)
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
