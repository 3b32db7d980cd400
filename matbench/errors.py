"""User-facing errors: the CLI prints these as one line, without a traceback."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """A suggestion that names a command-line option, e.g. Hint("--smoke", "use --smoke to run on random weights").

    Library code is called by many commands, and not every one has every option (`weights fetch` has no --smoke),
    so the CLI shows a hint only where the command that failed has `option` (MatbenchError.for_options)."""

    option: str
    text: str


class MatbenchError(Exception):
    """An error caused by the user's input or environment (bad file, missing weights, ...).

    The message must name the offending file/key and say what is wrong. A suggestion that names a CLI option
    goes in `hints`, not in the message, unless the message names the whole command (`matbench data prepare
    --res N`); tests/test_error_hints.py checks both.
    """

    exit_code = 2

    def __init__(self, *args: object, hints: Sequence[Hint] = ()) -> None:
        super().__init__(*args)
        self.hints = tuple(hints)

    def for_options(self, options: Collection[str] | None) -> str:
        """The message with the hints whose option is in `options` (the failed command's; None: all). str(e) is
        the message alone: an error re-raised or printed inside another command must not carry its hints."""
        shown = [h.text for h in self.hints if options is None or h.option in options]
        return "; ".join([super().__str__(), *shown])


class InputError(MatbenchError):
    """A file or directory given by the user is missing, unreadable or malformed."""


class WeightsError(MatbenchError):
    """A weights file is missing, has the wrong hash, or cannot be loaded safely."""


class SpecError(MatbenchError):
    """A benchmark spec (or CLI option) is invalid; the message names the key."""


class DiskFullError(MatbenchError):
    """No space left (ENOSPC / EDQUOT) while writing a file; the message names the path and the space needed."""
