"""User-facing errors: the CLI prints these as one line, without a traceback."""

from __future__ import annotations


class MatbenchError(Exception):
    """An error caused by the user's input or environment (bad file, missing weights, ...).

    The message must name the offending file/key and say what is wrong.
    """

    exit_code = 2


class InputError(MatbenchError):
    """A file or directory given by the user is missing, unreadable or malformed."""


class WeightsError(MatbenchError):
    """A weights file is missing, has the wrong hash, or cannot be loaded safely."""


class SpecError(MatbenchError):
    """A benchmark spec (or CLI option) is invalid; the message names the key."""


class DiskFullError(MatbenchError):
    """No space left (ENOSPC / EDQUOT) while writing a file; the message names the path and the space needed."""
