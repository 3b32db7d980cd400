"""The one progress policy of every long command (inpaint, eval, run, demo, doctor, features, masks, stats, fetch).

Whether progress is shown: the command's `--progress/--no-progress` if given, else `$MATBENCH_PROGRESS` (0 or 1),
else on. How: on a terminal, a tqdm bar (redrawn in place); on anything else (a log file, a pipe, CI), plain
lines at most every LINE_INTERVAL_S seconds and never a cursor code (no `\\r`, no ESC[A), so a redirected log
stays readable and a short command writes nothing there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

from matbench.errors import SpecError

ENV = "MATBENCH_PROGRESS"
LINE_INTERVAL_S = 30.0  # plain lines on a non-terminal: often enough to see a long run move, rare enough for a log

T = TypeVar("T")


def add_progress_option(p: argparse.ArgumentParser) -> None:
    """`--progress/--no-progress` (default: $MATBENCH_PROGRESS, else on) on a command that runs long."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"progress on stderr: a bar on a terminal, a plain line every {LINE_INTERVAL_S:.0f} s "
                        f"otherwise (default: ${ENV}=0|1, else on)")


def wanted(flag: bool | None = None) -> bool:
    """The policy: an explicit flag, else $MATBENCH_PROGRESS, else on."""
    if flag is not None:
        return bool(flag)
    env = os.environ.get(ENV, "").strip().lower()
    if env in ("", "1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    raise SpecError(f"${ENV}={os.environ[ENV]!r}: must be 0 or 1")


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def bar(total: int | None = None, desc: str = "", unit: str = "img", enabled: bool | None = None,
        stream: IO[str] | None = None, **tqdm_kw: Any) -> Any:
    """A progress counter with tqdm's update()/close()/context-manager interface, chosen by the policy above.

    tqdm_kw (position, leave, ...) only matter to the terminal bar."""
    if not wanted(enabled):
        return _Off()
    out = sys.stderr if stream is None else stream
    if is_terminal(out):
        from tqdm import tqdm  # imported only when a bar is drawn

        return tqdm(total=total, desc=desc, unit=unit, file=out, dynamic_ncols=True, **tqdm_kw)
    return LineProgress(total, desc, unit, out)


def track(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "img",
          enabled: bool | None = None, **tqdm_kw: Any) -> Iterator[T]:
    """Iterate over items, counting them on a bar()."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc, unit, enabled, **tqdm_kw) as b:
        for it in items:
            yield it
            b.update(1)


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


class _Off:
    """Progress switched off: every call does nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineProgress(_Off):
    """Plain lines for a non-terminal: `desc: 120/800 img (15%), 0:30 elapsed`, at most one per interval, and a
    last line at close when any was written and the count moved since (a command shorter than the interval
    writes nothing)."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: IO[str],
                 interval: float | None = None) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.interval = LINE_INTERVAL_S if interval is None else interval
        self.t0 = self.last = time.monotonic()
        self.n = 0
        self.lines = 0
        self.shown = 0.0  # the count of the last line written
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line("")

    def close(self) -> None:
        if not self.closed and self.lines and self.n != self.shown:  # the last count, unless a line just showed it
            self._line(", done")
        self.closed = True

    def _line(self, tail: str) -> None:
        el = int(time.monotonic() - self.t0)
        of = f"/{_num(self.total)}" if self.total else ""
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        self.stream.write(f"{self.desc}: {_num(self.n)}{of} {self.unit}{pct}, {el // 60}:{el % 60:02d} elapsed{tail}\n")
        self.stream.flush()
        self.lines += 1
        self.shown = self.n
