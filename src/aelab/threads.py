"""Threads that adapt: training and long inference on a CPU pick the thread count that runs fastest now.

A fixed "threads = cores" is the worst choice on a shared CPU: beside one busy process, a
2-thread training spends most of its time with one thread waiting for the other at every
operation's barrier, and one thread runs faster (benchmarks/results/speed-shared.md). So
:class:`ThreadChooser` times the steps of a loop: after a few warm-up steps it runs a few steps
at each candidate count (all of this process's threads, one fewer, half) and keeps the fastest,
but leaves the count in use only for more threads 10% faster or fewer threads 1.5x faster (fewer
threads win by that much on a CPU another program keeps busy; a smaller gain is noise or one
loop's work, not worth rebuilding the team of threads); it probes again every minute or as soon as
the steps slow down by a third. A probe starts with the
count in use and drops a candidate after two steps when both are clearly slower, so the probes
cost about 1% of a run. For the next minute the whole process keeps what the probe learnt of the
CPU: the loops that follow (evaluation after training, an evaluation's many short loops) start at
fewer threads if all of them ran far slower (another program busy), else at all of them, and probe
only when their steps slow down. A chooser with no recent choice to start from first looks at the
CPU for a twentieth of a second (:func:`others_busy`): where other programs at normal priority keep
cores busy, its first steps run at fewer threads (the cores left), not at a count that runs several
times slower until the first probe, and no probe tries more threads than the cores left (each of
its steps would cost several). Training uses it as a Lightning callback (:class:`AdaptiveThreads`);
long inference through :func:`chosen_threads`, one chooser a job (an evaluation, a detector's fit
or scores, a style transfer) that the job's loops share (:func:`adaptive` times each step of one). ``threads=N`` (``--threads N``) or :func:`fixed_threads` fixes
the count instead, for results that must repeat bit for bit (a different thread count changes
the order of floating-point sums).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import lightning as L
import torch

from .errors import AelabError, opt

PROBE_SECONDS = 0.3  # each candidate's share of a probe (at least PROBE_STEPS steps)
PROBE_STEPS = 3
RECHECK_SECONDS = 60.0  # a new probe this long after the last choice
SLOWER = 1.33  # ... or as soon as the recent steps take this much longer than the chosen count's
MIN_GAP_SECONDS = 10.0  # (but not sooner than this after a choice: a noisy CPU would keep it probing)
CLEARLY_SLOWER = 1.5  # a candidate whose first two steps each take this much longer than the best is dropped
SWITCH = 1.1  # the count in use is kept unless more threads run this much faster (a close call is noise),
# or fewer CLEARLY_SLOWER times faster: fewer threads win by that much only on a CPU another program
# keeps busy, and a smaller gain is one loop's work or noise, not worth a team of threads rebuilt
WARM_STEPS = 5  # steps at the process's own count before the first probe (training: kernels and caches)
INFERENCE_WARM_STEPS = 1  # an inference loop's first item builds its caches; the rest are alike
LONG_STEP = 0.15  # the first step after a switch (a new team of threads warming up) counts only if this long
LOOK_SECONDS = 0.05  # how long others_busy watches the CPU
BUSY_CORES = 0.5  # other programs using this much of the cores' time: start at fewer threads
LOOK_HOLDS = 5.0

T = TypeVar("T")
# a fixed count (fixed_threads); a fit choosing its own (AdaptiveThreads); the chooser of the
# inference job under way (chosen_threads), which the loops inside it share
_state: dict[str, Any] = {"fixed": None, "busy": False, "chooser": None}
_last: dict[str, Any] = {"count": 0, "most": 0, "at": float("-inf")}  # the latest choice in this process
_look: dict[str, float] = {"others": 0.0, "at": float("-inf")}  # the latest look at the CPU (start_count)


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


def start_count(most: int) -> int:
    """The count to start at with no choice to go by: the cores other programs leave free (at
    least one), at most ``most``. A look holds for LOOK_HOLDS seconds (a fit, then its evaluation)."""
    now = time.monotonic()
    if now - _look["at"] > LOOK_HOLDS:
        _look.update(others=others_busy(), at=now)
    return max(1, min(most, most - math.floor(_look["others"] + 1 - BUSY_CORES)))


def candidates(most: int) -> list[int]:
    """The thread counts a probe tries: all, one fewer and half (most first)."""
    return sorted({most, most - 1, most // 2} - {0}, reverse=True)


class ThreadChooser:
    """Chooses torch's intra-op thread count from the measured time per item of a loop's steps
    (see the module's notes): :meth:`start`, then :meth:`step` after each step, then :meth:`stop`,
    which gives back the count the loop started with. ``most``: the largest count tried (default:
    torch's count at :meth:`start`); ``warm``: steps before the first probe."""

    def __init__(self, most: int | None = None, warm: int = WARM_STEPS) -> None:
        self.most = most
        self.warm = warm
        self.original = 0
        self.choices: list[tuple[float, int, dict[int, float]]] = []  # (seconds in, chosen, seconds per item)
        self._queue: list[int] = []  # counts still to try in the probe under way
        self._trial: list[float] = []  # seconds per item of the count being tried
        self._skip = False  # the first step after a switch warms the new team of threads up: counted only if long
        self._tried: dict[int, float] = {}
        self._chosen = 0
        self._per_item = 0.0  # the chosen count's time per item, from its probe
        self._chosen_at = 0.0
        self._recent: deque[float] = deque(maxlen=8)
        self._started = 0.0
        self._warm = 0  # steps left before the first probe
        self._rebase = False  # the next counted step sets the rate a slowdown is measured against
        self._pending_probe = False  # a probe broken off by new work: it starts again after the warm-up
        self._has_choice = False  # a count chosen (or carried over) that the steps run at

    def start(self) -> None:
        self.original = torch.get_num_threads()
        self.most = self.most or self.original
        self._started = time.perf_counter()
        self._chosen = self.original
        self._warm = self.warm
        self._queue, self._recent = [], deque(maxlen=8)
        self._per_item, self._rebase, self._has_choice, self._pending_probe = 0.0, False, False, False
        # a choice made less than a minute ago in this process (by training, or the loop before this
        # one) holds: the loop starts at that count and probes only when its steps slow down or the
        # minute is up, so a run of short loops (an evaluation's) pays for one probe, not one each
        if _last["most"] == self.most and self._started - _last["at"] < RECHECK_SECONDS:
            self._chosen, self._chosen_at, self._rebase, self._has_choice = _last["count"], _last["at"], True, True
            self._switch(self._chosen, warm_up=False)
        elif len(candidates(self.most)) > 1:  # nothing to go by: the cores other programs leave free
            self._chosen = start_count(self.most)
            self._switch(self._chosen, warm_up=False)

    def new_work(self, warm: int = INFERENCE_WARM_STEPS) -> None:
        """The steps from here on are other work (the next loop of a job): rates measured so far do
        not compare with theirs. A probe under way starts again on the new work; else the first
        step of it sets the rate that a slowdown is measured against."""
        self._recent.clear()
        self._warm = max(self._warm, warm)
        if self._queue:
            self._queue = []
            self._rebase = False
            self._pending_probe = True
        else:
            self._rebase = self._has_choice  # (without a choice yet, the first probe comes after the warm-up)

    def stop(self) -> None:
        if self.original and torch.get_num_threads() != self.original:
            torch.set_num_threads(self.original)  # the count the loop started with (the caller's code, what follows)

    def step(self, seconds: float, items: int) -> None:
        """One step took ``seconds`` for ``items`` items (images, pixels...) at the count in use."""
        now = time.perf_counter()
        per_item = seconds / max(1, items)
        if self._warm:  # the first steps build kernels and caches: not a rate to choose by
            self._warm -= 1
            if not self._warm and (self._pending_probe or not self._has_choice):
                self._pending_probe = False
                self._probe()
        elif self._rebase and not self._queue:  # this work's own rate at the count in use
            self._per_item, self._rebase = per_item, False
        elif self._skip and seconds < LONG_STEP:
            self._skip = False
        elif self._queue:
            self._skip = False
            self._trial.append(per_item)
            fastest = min(self._tried.values(), default=None)
            if fastest is not None and len(self._trial) >= 2 and min(self._trial) > CLEARLY_SLOWER * fastest:
                self._tried[self._queue.pop(0)] = statistics.median(self._trial)  # two steps say enough
                self._next(now)
            elif len(self._trial) >= PROBE_STEPS and sum(self._trial) * items >= PROBE_SECONDS:
                self._tried[self._queue.pop(0)] = statistics.median(self._trial)
                self._next(now)
        else:
            self._skip = False
            self._recent.append(per_item)
            since = now - self._chosen_at
            slowed = (
                len(self._recent) == self._recent.maxlen
                and since > MIN_GAP_SECONDS
                and statistics.median(self._recent) > SLOWER * self._per_item
            )
            if slowed or since > RECHECK_SECONDS:
                self._probe()

    def _probe(self) -> None:
        counts = candidates(self.most)
        if len(counts) < 2:
            self._chosen_at = float("inf")  # one core: nothing to choose
            return
        # counts above the cores other programs leave free run several times slower: not tried (their
        # steps would cost more than the whole probe), until a later look finds the cores free again
        free = start_count(self.most)
        counts = [n for n in counts if n <= free] or [free]
        if len(counts) == 1:
            now = time.perf_counter()
            self._chosen, self._chosen_at, self._has_choice, self._rebase = counts[0], now, True, True
            _last.update(count=counts[0], most=self.most, at=now)
            self._switch(counts[0], warm_up=False)
            return
        # the count in use first: the others are then measured against it, and one clearly slower
        # costs a single step (a shared CPU makes the wrong count several times slower)
        self._queue = sorted(counts, key=lambda n: n != self._chosen)
        self._tried = {}
        self._switch(self._queue[0])

    def _next(self, now: float) -> None:
        if self._queue:
            self._switch(self._queue[0])
            return
        best = min(self._tried, key=self._tried.get)
        current = self._chosen  # (the count in use when the probe began)
        if best != current and current in self._tried:
            needed = CLEARLY_SLOWER if best < current else SWITCH
            if self._tried[current] < needed * self._tried[best]:
                best = current
        self._chosen, self._per_item, self._chosen_at, self._has_choice = best, self._tried[best], now, True
        self.choices.append((round(now - self._started, 1), best, dict(self._tried)))
        # what holds for the next loops: fewer threads only where all of them ran far slower (a CPU
        # shared with another program, whatever the work); a small difference belongs to this
        # loop's work alone, and the next loop's may differ (a small dense net against a conv net)
        contended = self._tried.get(self.most, 0) >= CLEARLY_SLOWER * self._tried[best]
        _last.update(count=best if contended else self.most, most=self.most, at=now)
        self._recent.clear()
        self._switch(best)

    def _switch(self, count: int, warm_up: bool = True) -> None:
        """Run at ``count`` threads from the next step; with ``warm_up``, that step (a new team of
        threads warming up) is not measured unless long. Without: no step is measured yet."""
        self._trial = []
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
            self._skip = True
        if not warm_up:
            self._skip = False


class AdaptiveThreads(L.Callback):
    """Training's :class:`ThreadChooser`: each training step timed per item. The count in use for
    most of an epoch's steps is what History records; the process's own count comes back at the end."""

    def __init__(self, most: int | None = None) -> None:
        self.chooser = ThreadChooser(most)
        self._step_started = 0.0
        self._job: ThreadChooser | None = None  # an inference job's chooser, set aside while the fit runs

    @property
    def choices(self) -> list[tuple[float, int, dict[int, float]]]:
        return self.chooser.choices

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._job, _state["chooser"] = _state["chooser"], None  # (a detector's fit inside its job)
        if self._job is not None and self.chooser.most is None:  # the job's threads to choose from, not
            self.chooser.most = self._job.most  # the count it runs at now (one, beside a busy program)
        self.chooser.start()
        _state["busy"] = True  # evaluation inside a fit (a callback's) keeps the fit's count

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._end()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self._end()

    def _end(self) -> None:
        self.chooser.stop()
        _state["busy"] = False
        _state["chooser"] = self._job

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.chooser.step(time.perf_counter() - self._step_started, len(batch[0]))


def batch_size(step: Any) -> int:
    """A loop step's items: a batch's length, or its first member's for a tuple of batches."""
    return len(step[0]) if isinstance(step, tuple) else len(step)


def adaptive(
    steps: Iterable[T], size: Callable[[T], int] = batch_size, warm: int = INFERENCE_WARM_STEPS
) -> Iterator[T]:
    """``steps`` one by one, the thread count chosen (:class:`ThreadChooser`) from the time the
    caller spends on each (``size(step)`` items; ``warm``: steps not timed at first, more for a
    training loop, whose first steps build caches). On its own the loop is a job of its own and
    gives back the count it started with when it ends, is broken off or fails; inside a job
    (:func:`chosen_threads`) it is the job's next work; inside a fit or under
    :func:`fixed_threads` the steps pass through as they are."""
    with chosen_threads(warm) as chooser:
        for item in steps:
            started = time.perf_counter()
            yield item
            if chooser is not None:
                chooser.step(time.perf_counter() - started, size(item))


@contextmanager
def chosen_threads(warm: int = INFERENCE_WARM_STEPS) -> Iterator[ThreadChooser | None]:
    """A :class:`ThreadChooser` for an inference job (an evaluation, a detector's fit, a style
    transfer): everything inside runs at its count, between the loops too, and the loops inside
    (:func:`adaptive`, or a caller timing its own steps with ``step``) share it, each as new
    work. None inside a fit (which chooses its own) or under :func:`fixed_threads`."""
    if _state["busy"] or _state["fixed"] is not None:
        yield None
        return
    if _state["chooser"] is not None:  # a loop of the job under way
        _state["chooser"].new_work(warm)
        yield _state["chooser"]
        return
    chooser = ThreadChooser(warm=warm)
    chooser.start()
    _state["chooser"] = chooser
    try:
        yield chooser
    finally:
        _state["chooser"] = None
        chooser.stop()


def fixed_count() -> int | None:
    """The count :func:`fixed_threads` set for the code running now, or None (adapting)."""
    return _state["fixed"]


@contextmanager
def fixed_threads(count: int | None) -> Iterator[None]:
    """Inference inside runs at ``count`` threads, without adapting (None: adapt, as by default);
    the previous count comes back after. For results that repeat bit for bit."""
    if count is None:
        yield
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise AelabError(f"{opt('threads')} must be a whole number >= 1, got {count!r}")
    before, fixed = torch.get_num_threads(), _state["fixed"]
    torch.set_num_threads(count)
    _state["fixed"] = count
    try:
        yield
    finally:
        _state["fixed"] = fixed
        torch.set_num_threads(before)
