"""Thread counts: all of the process's threads, unless another program is measured competing.

A job (a training fit, an evaluation, a detector's fit or scores, a style transfer) runs at
torch's thread count from its first step, so the same seed repeats bit for bit on a quiet machine
(another count changes the order of floating-point sums, and so the weights). The count changes
only where contention is measured: a job looks at the CPU for a twentieth of a second
(:func:`others_busy`; a look that would change the count is confirmed by a quarter-second one)
when it starts, and a job that times its steps (:meth:`Job.step`: training,
style transfer) looks again a minute later or as soon as its steps slow down by a third. Where
other programs at normal priority keep cores busy, the job runs at the cores they leave (a 2-thread
training beside a busy program runs several times faster at one thread: one thread no longer waits
for the other at every operation's barrier; benchmarks/results/speed-shared.md), and at all of them
again once a look finds them free. A run records whether its count changed (history.json's
``threads``), so a user knows whether it should repeat.

The choice is made at a job's edge (:func:`job`), never inside the numerical loops; a job inside
a job (a fit's evaluation, a detector's training) joins it. Its state is per job, in a context
variable: two jobs in two threads (the web page's handlers) each keep their own, and
``torch.set_num_threads`` (process-wide) is called under a lock. ``threads=N`` (``--threads N``) or
:func:`fixed_threads` fixes the count instead: nothing is looked at, nothing changes.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import lightning as L
import torch

from .errors import AelabError, opt

LOOK_SECONDS = 0.05  # how long others_busy watches the CPU
CONFIRM_SECONDS = 0.25  # how long a second look watches before a count changes (a 50 ms look is a few clock ticks)
BUSY_CORES = 0.5  # other programs using this much of a core's time take that core
RECHECK_SECONDS = 60.0  # a job that times its steps looks again this long after its last look
SLOWER = 1.33  # ... or as soon as its recent steps take this much longer than the rate it settled at
MIN_GAP_SECONDS = 10.0  # (but not sooner than this after a look: a noisy CPU would keep it looking)
WARM_STEPS = 5  # steps not timed after a start or a switch (kernels, caches, a new team of threads)
RECENT = 8  # the steps whose median is compared against the settled rate

_LOCK = threading.Lock()  # torch.set_num_threads is process-wide
_JOB: ContextVar[Job | None] = ContextVar("aelab_threads_job", default=None)


def _cpu_ticks(cpus: set[int], with_niced: bool) -> int | None:
    """Clock ticks the CPUs ``cpus`` spent busy so far (Linux's /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, niced, system, _idle, _wait, irq, softirq, steal = (int(f) for f in fields[:8])
            total += user + system + irq + softirq + steal + (niced if with_niced else 0)
    return total


def others_busy(seconds: float = LOOK_SECONDS) -> float:
    """How many of this process's cores other programs keep busy now (0.0 to their count),
    watched for ``seconds``: the CPUs' busy time less this process's own. Programs at a lower
    priority (nice) are left out, as they give way at once (unless this process runs niced too).
    0.0 where the system does not say (not Linux)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    with_niced = os.name == "posix" and os.nice(0) > 0
    ticks, own, began = _cpu_ticks(cpus, with_niced), os.times(), time.monotonic()
    if ticks is None:
        return 0.0
    time.sleep(seconds)
    after, own_after, elapsed = _cpu_ticks(cpus, with_niced), os.times(), time.monotonic() - began
    busy = (after - ticks) / os.sysconf("SC_CLK_TCK")
    mine = own_after.user + own_after.system - own.user - own.system
    return min(len(cpus), max(0.0, (busy - mine) / elapsed))


def free_count(most: int, others: float) -> int:
    """The threads to run at when other programs keep ``others`` cores busy: the cores they
    leave (a core counts as taken from BUSY_CORES of its time), at least one, at most ``most``."""
    return max(1, min(most, most - math.floor(others + 1 - BUSY_CORES)))


def _use(count: int) -> None:
    with _LOCK:
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)


@dataclass
class Job:
    """One job's thread count: ``most`` (the count it started with and gives back), the count in
    use, and each change it made, as (seconds into the job, new count, cores others kept busy)."""

    most: int
    fixed: bool = False
    count: int = 0
    changes: list[tuple[float, int, float]] = field(default_factory=list)
    _started: float = field(default_factory=time.perf_counter)
    _looked: float = 0.0  # seconds into the job of the latest look
    _warm: int = WARM_STEPS
    _rate: float = 0.0  # the settled seconds per item at the count in use (0: not yet)
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def __post_init__(self) -> None:
        self.count = self.count or self.most

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def look(self) -> None:
        """Look at the CPU; run at the cores other programs leave (all of them on a quiet CPU). A
        look that would change the count is confirmed by a longer one, which decides: a 50 ms look
        counts a few clock ticks, so a burst of a system task would otherwise change the count (and
        the weights) of a run on a quiet machine."""
        if self.fixed or self.most < 2:
            return
        others = others_busy()
        if free_count(self.most, others) != self.count:
            others = others_busy(CONFIRM_SECONDS)
        self._looked = time.perf_counter() - self._started
        count = free_count(self.most, others)
        if count != self.count:
            self.count = count
            self.changes.append((round(self._looked, 1), count, round(others, 2)))
            _use(count)
            self._warm, self._rate = WARM_STEPS, 0.0
        self._recent.clear()

    def step(self, seconds: float, items: int) -> None:
        """One step of the job's own loop took ``seconds`` for ``items`` items: a look when the
        steps slow down by a third of their settled rate, or a minute after the last look."""
        if self.fixed or self.most < 2:
            return
        if self._warm:
            self._warm -= 1
            return
        per_item = seconds / max(1, items)
        if not self._rate:
            self._rate = per_item
            return
        self._recent.append(per_item)
        since = time.perf_counter() - self._started - self._looked
        slowed = (
            len(self._recent) == RECENT
            and since > MIN_GAP_SECONDS
            and statistics.median(self._recent) > SLOWER * self._rate
        )
        if slowed or since > RECHECK_SECONDS:
            self.look()

    def record(self) -> dict:
        """What a run keeps of its count (history.json)."""
        return {"most": self.most, "fixed": self.fixed, "changed": self.changed, "changes": self.changes}


def current_job() -> Job | None:
    """The job under way in this context, or None."""
    return _JOB.get()


@contextmanager
def job(look: bool = True) -> Iterator[Job]:
    """The edge of a job: everything inside runs at one count, all of torch's threads unless a
    look at the CPU (``look``: a job long enough that 50 ms pays) finds other programs busy. A job
    inside a job joins it; the count the job started with comes back when it ends."""
    under_way = _JOB.get()
    if under_way is not None:
        yield under_way
        return
    current = Job(most=torch.get_num_threads())
    token = _JOB.set(current)
    try:
        if look:
            current.look()
        yield current
    finally:
        _JOB.reset(token)
        _use(current.most)


@contextmanager
def fixed_threads(count: int | None) -> Iterator[None]:
    """Everything inside runs at ``count`` threads and never changes it (None: the default, all
    threads unless contention is measured); the previous count comes back after."""
    if count is None:
        yield
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise AelabError(f"{opt('threads')} must be a whole number >= 1, got {count!r}")
    before = torch.get_num_threads()
    token = _JOB.set(Job(most=count, fixed=True))
    _use(count)
    try:
        yield
    finally:
        _JOB.reset(token)
        _use(before)


class WatchThreads(L.Callback):
    """Training's steps timed for its :func:`job` (:meth:`Job.step`), so a busy neighbour that
    arrives mid-run is seen; the per-epoch count is History's to record."""

    def __init__(self, watched: Job) -> None:
        self.job = watched
        self._step_started = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.job.step(time.perf_counter() - self._step_started, len(batch[0]))
