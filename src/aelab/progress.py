"""How aelab says what it is doing while it works: a progress bar on a terminal, plain lines
elsewhere (one per training epoch, like Keras' ``verbose=2``, and one per evaluation stage), or
nothing.

``progress=`` (the API) and ``--progress`` (the CLI) take ``"bar"``, ``"epoch"`` or ``None``
(nothing); ``"auto"`` (the default) is ``"bar"`` when standard output is a terminal and
``"epoch"`` when it goes to a file or a pipe, so a captured log holds one readable line per
epoch instead of a bar's carriage-return frames. Lines go to standard output, as the bars
(Lightning's and tqdm's) do, and are flushed at once.

Evaluation and other long work inside a call report through :func:`stage`, which reads the mode
the caller set with :func:`reporting`, so the functions in between need no ``progress``
argument of their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from collections.abc import Iterator
from typing import Any, Literal

from .errors import AelabError

Progress = Literal["auto", "bar", "epoch"] | None
MODES = ("auto", "bar", "epoch", "none")
LINE_EVERY = 20.0  # seconds between a long stage's lines in "epoch" mode: never a minute of silence

_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("aelab_progress", default=None)


def resolve(progress: Any) -> str | None:
    """``progress`` as "bar", "epoch" or None; "auto" (and True, as older code passed) by whether
    standard output is a terminal."""
    if progress is True or progress == "auto":
        return "bar" if _is_terminal() else "epoch"
    if progress is False or progress is None or progress == "none":
        return None
    if progress in ("bar", "epoch"):
        return progress
    raise AelabError(f"progress must be one of {', '.join(MODES[:-1])} or None, got {progress!r}")


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


@contextlib.contextmanager
def reporting(progress: Any) -> Iterator[str | None]:
    """Report stages inside this block in ``progress``'s mode (resolved)."""
    token = _mode.set(resolve(progress))
    try:
        yield _mode.get()
    finally:
        _mode.reset(token)


def say(text: str) -> None:
    """One line of progress, when reporting is on."""
    if _mode.get() is not None:
        print(text, flush=True)


class Stage:
    """One step of long work. "bar" mode: a bar (with a ``total``), "epoch" mode: a line that
    names the stage when it starts and ends with its time (``  PCA with 32 components ... 0.4 s``),
    with a line of how far it is every :data:`LINE_EVERY` seconds in between; nothing when
    reporting is off. ``seconds`` is its time once closed."""

    def __init__(self, what: str, total: int | None, unit: str) -> None:
        self.what, self.total, self.unit, self.mode = what, total, unit, _mode.get()
        self.done, self.started, self.seconds = 0, time.perf_counter(), 0.0
        self.last_line = self.started
        self.bar = None
        self.open_line = False  # the stage's line waits for its time
        if self.mode == "bar" and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=f"  {what}", unit=unit, leave=False, file=sys.stdout, dynamic_ncols=True)
        elif self.mode is not None:
            print(f"  {what} ...", end="", flush=True)
            self.open_line = True

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.mode is not None and now - self.last_line >= LINE_EVERY:
            share = f", {self.done:,} of {self.total:,} {self.unit}" if self.total else ""
            print(("\n" if self.open_line else "") + f"    ({now - self.started:.0f} s so far{share})", flush=True)
            self.open_line, self.last_line = False, now

    def close(self) -> float:
        self.seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.close()
            print(f"  {self.what} ... {self.seconds:.1f} s", flush=True)
        elif self.open_line:
            print(f" {self.seconds:.1f} s", flush=True)
        elif self.mode is not None:
            say(f"  {self.what}: done in {self.seconds:.1f} s")
        return self.seconds


@contextlib.contextmanager
def stage(what: str, total: int | None = None, unit: str = "batches") -> Iterator[Stage]:
    """``with stage("IWAE bound, 50 samples x 1,000 images", total=10) as s: ... s.advance()``"""
    step = Stage(what, total, unit)
    try:
        yield step
    finally:
        step.close()


def duration(seconds: float) -> str:
    """``seconds`` as 42s, 3m05s or 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
