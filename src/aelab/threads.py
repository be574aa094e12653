"""Threads that adapt: training on a CPU picks the thread count that runs fastest now.

A fixed "threads = cores" is the worst choice on a shared CPU: beside one busy process, a
2-thread training spends most of its time with one thread waiting for the other at every
operation's barrier, and one thread runs faster (benchmarks/results/speed-shared.md). So
:class:`AdaptiveThreads` measures its own steps: at the start it runs a few steps at each
candidate count (all of this process's threads, one fewer, half), keeps the fastest, and probes
again every minute or as soon as the steps slow down by a third. A probe starts with the count
in use and drops a candidate after two steps when both are clearly slower, so the probes cost
about 1% of a run. The first few steps of a fit (which build kernels and caches) are not timed.
``threads=N`` (``--threads N``) fixes the count instead, for runs that must repeat bit for bit
(a different thread count changes the order of floating-point sums).
"""

from __future__ import annotations

import statistics
import time
from collections import deque

import lightning as L
import torch

PROBE_SECONDS = 0.3  # each candidate's share of a probe (at least PROBE_STEPS steps)
PROBE_STEPS = 3
RECHECK_SECONDS = 60.0  # a new probe this long after the last choice
SLOWER = 1.33  # ... or as soon as the recent steps take this much longer than the chosen count's
MIN_GAP_SECONDS = 10.0  # (but not sooner than this after a choice: a noisy CPU would keep it probing)
CLEARLY_SLOWER = 1.5  # a candidate whose first two steps each take this much longer than the best is dropped
WARM_STEPS = 5  # steps at the process's own count before the first probe


def candidates(most: int) -> list[int]:
    """The thread counts a probe tries: all, one fewer and half (most first)."""
    return sorted({most, most - 1, most // 2} - {0}, reverse=True)


class AdaptiveThreads(L.Callback):
    """Chooses torch's intra-op thread count from the measured time per training item (see the
    module's notes). ``most``: the largest count tried (default: torch's count when training
    starts). The count in use for most of an epoch's steps is what History records."""

    def __init__(self, most: int | None = None) -> None:
        self.most = most
        self.original = 0
        self.choices: list[tuple[float, int, dict[int, float]]] = []  # (seconds into fit, chosen, seconds per item)
        self._queue: list[int] = []  # counts still to try in the probe under way
        self._trial: list[float] = []  # seconds per item of the count being tried
        self._skip = False  # the first step after a switch warms the new team of threads up: not counted
        self._tried: dict[int, float] = {}
        self._chosen = 0
        self._per_item = 0.0  # the chosen count's time per item, from its probe
        self._chosen_at = 0.0
        self._recent: deque[float] = deque(maxlen=8)
        self._started = 0.0
        self._step_started = 0.0
        self._warm = 0  # steps left before the first probe

    # -------------------------------------------------------------- Lightning's hooks

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.original = torch.get_num_threads()
        self.most = self.most or self.original
        self._started = time.perf_counter()
        self._chosen = self.original
        self._warm = WARM_STEPS

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        torch.set_num_threads(self.original)  # the process's own count again (evaluation, the caller's code)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if self.original:
            torch.set_num_threads(self.original)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        per_item = (now - self._step_started) / max(1, len(batch[0]))
        if self._warm:  # the first steps of a fit build kernels and caches: not a rate to choose by
            self._warm -= 1
            if not self._warm:
                self._probe()
        elif self._skip:
            self._skip = False
        elif self._queue:
            self._trial.append(per_item)
            fastest = min(self._tried.values(), default=None)
            if fastest is not None and len(self._trial) >= 2 and min(self._trial) > CLEARLY_SLOWER * fastest:
                self._tried[self._queue.pop(0)] = statistics.median(self._trial)  # two steps say enough
                self._next(now)
            elif len(self._trial) >= PROBE_STEPS and sum(self._trial) * len(batch[0]) >= PROBE_SECONDS:
                self._tried[self._queue.pop(0)] = statistics.median(self._trial)
                self._next(now)
        else:
            self._recent.append(per_item)
            since = now - self._chosen_at
            slowed = (len(self._recent) == self._recent.maxlen and since > MIN_GAP_SECONDS
                      and statistics.median(self._recent) > SLOWER * self._per_item)
            if slowed or since > RECHECK_SECONDS:
                self._probe()

    # -------------------------------------------------------------- the probe

    def _probe(self) -> None:
        counts = candidates(self.most)
        if len(counts) < 2:
            self._chosen_at = float("inf")  # one core: nothing to choose
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
        self._chosen, self._per_item, self._chosen_at = best, self._tried[best], now
        self.choices.append((round(now - self._started, 1), best, dict(self._tried)))
        self._recent.clear()
        self._switch(best)

    def _switch(self, count: int) -> None:
        self._trial = []
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
            self._skip = True
