"""Threads that adapt (aelab.threads.AdaptiveThreads): the probe keeps the count whose steps run
fastest, probes again when the steps slow down or a minute has passed, and gives the process its
own count back; --threads N fixes the count."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
import torch
from conftest import run_cli

from aelab import threads
from aelab.errors import AelabError

others_busy, cpu_ticks = threads.others_busy, threads._cpu_ticks  # (each test but one sees a quiet CPU)


@pytest.fixture(autouse=True)
def no_earlier_choice(monkeypatch):
    """Each test starts as a fresh process does on a quiet CPU: no thread count chosen yet."""
    monkeypatch.setattr(threads, "_last", {"count": 0, "most": 0, "at": float("-inf")})
    monkeypatch.setattr(threads, "_look", {"others": 0.0, "at": float("-inf")})
    monkeypatch.setattr(threads, "others_busy", lambda: 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(callback, clock: Clock, seconds_per_item: dict[int, float], steps: int, batch: int = 100) -> None:
    """``steps`` training steps whose time depends on the thread count in use, as a CPU's would."""
    images = (torch.zeros(batch, 1),)
    for i in range(steps):
        callback.on_train_batch_start(None, None, images, i)
        clock.now += seconds_per_item[torch.get_num_threads()] * batch
        callback.on_train_batch_end(None, None, None, images, i)


def test_the_probe_keeps_the_fastest_count_and_probes_again_when_the_cpu_changes(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    before = torch.get_num_threads()
    callback = threads.AdaptiveThreads(most=4)
    callback.on_fit_start(None, None)
    assert threads.candidates(4) == [4, 3, 2]
    loaded = {4: 4e-4, 3: 3e-4, 2: 1e-4}  # a busy neighbour: fewer threads run faster
    drive(callback, clock, loaded, 60)
    assert torch.get_num_threads() == 2 and callback.choices[-1][1] == 2
    quiet = {4: 0.5e-4, 3: 0.7e-4, 2: 1e-4}  # the neighbour gone: all threads win again, at the next minute's probe
    drive(callback, clock, quiet, 10)
    assert torch.get_num_threads() == 2  # no probe yet: the steps did not slow down
    clock.now += threads.RECHECK_SECONDS
    drive(callback, clock, quiet, 300)
    assert torch.get_num_threads() == 4 and len(callback.choices) == 2
    drive(callback, clock, {4: 4e-4, 3: 3e-4, 2: 1e-4}, 400)  # slower by far: probed within 10-20 s, before a minute
    assert torch.get_num_threads() == 2 and len(callback.choices) == 3
    callback.on_fit_end(None, None)
    assert torch.get_num_threads() == before


def test_one_core_has_nothing_to_choose(monkeypatch):
    callback = threads.AdaptiveThreads(most=1)
    before = torch.get_num_threads()
    callback.on_fit_start(None, None)
    drive(callback, Clock(), {before: 1e-4}, 5)
    assert callback.choices == [] and torch.get_num_threads() == before
    callback.on_fit_end(None, None)


def test_threads_flag_fixes_the_count_and_history_records_it(small_data, tmp_path, capsys):
    before = torch.get_num_threads()
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "2",
            "--threads",
            "1",
            "--out",
            tmp_path / "one",
            "--progress",
            "epoch",
            "--logger",
            "none",
        )
        == 0
    )
    assert "1 thread " in capsys.readouterr().out  # the per-epoch line names it
    rows = json.loads((tmp_path / "one" / "history.json").read_text())["epochs"]
    assert [row["threads"] for row in rows] == [1, 1]
    assert torch.get_num_threads() == before  # the process's own count again after training
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config["train"]["threads"] == 1
    first = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert (
        run_cli("eval", tmp_path / "one", "--threads", "1", "--progress", "none") == 0
    )  # the same count: the same sums
    again = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert again["test_rmse"] == first["test_rmse"] and torch.get_num_threads() == before
    capsys.readouterr()
    assert run_cli("eval", tmp_path / "one", "--threads", "0") == 2
    assert capsys.readouterr().err.strip() == "aelab eval: error: --threads must be a whole number >= 1, got 0"


def test_history_records_the_count_most_steps_ran_at():
    from aelab.callbacks import History

    history, before = History(), torch.get_num_threads()
    trainer = SimpleNamespace(
        num_training_batches=4,
        world_size=1,
        current_epoch=0,
        global_step=4,
        callback_metrics={},
        optimizers=[SimpleNamespace(param_groups=[{"lr": 0.1}])],
    )
    module, batch = SimpleNamespace(device=torch.device("cpu")), (torch.zeros(2, 1),)
    for i, count in enumerate((2, 1, 1, 1)):
        torch.set_num_threads(count)
        history.on_train_batch_start(trainer, module, batch, i)
        history.on_train_batch_end(trainer, module, None, batch, i)
    torch.set_num_threads(before)
    history.on_train_epoch_end(trainer, module)
    assert history.epochs[-1]["threads"] == 1


def test_an_inference_loop_adapts_and_gives_its_count_back(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)
    loaded = {2: 4e-3, 1: 1e-3}  # beside a busy process one thread runs 4x faster
    seen = []
    for batch in threads.adaptive([torch.zeros(100, 1)] * 20):
        seen.append(torch.get_num_threads())
        clock.now += loaded[torch.get_num_threads()] * len(batch)
    assert seen[0] == 2 and seen[-8:] == [1] * 8  # probed early, then the faster count for the rest
    assert torch.get_num_threads() == 2  # the loop's own count again
    for i, _ in enumerate(threads.adaptive(range(50), size=lambda _: 1)):  # broken off: the count comes back too
        clock.now += loaded[torch.get_num_threads()] * 100  # steps of 0.1-0.4 s
        if i == 10:
            assert torch.get_num_threads() == 1
            break
    assert torch.get_num_threads() == 2


def test_inference_inside_a_fit_or_under_a_fixed_count_keeps_the_count(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)

    def slow_at_two(loop):
        counts = set()
        for batch in loop:
            counts.add(torch.get_num_threads())
            clock.now += {2: 4e-3, 1: 1e-3}[torch.get_num_threads()] * len(batch)
        return counts

    batches = [torch.zeros(100, 1)] * 20
    with threads.fixed_threads(2):
        assert slow_at_two(threads.adaptive(batches)) == {2}
    fit = threads.AdaptiveThreads()
    fit.on_fit_start(None, None)  # a fit's evaluation callbacks run at the fit's chosen count
    assert slow_at_two(threads.adaptive(batches)) == {2}
    fit.on_fit_end(None, None)
    assert slow_at_two(threads.adaptive(batches)) == {2, 1}  # adapts again after the fit
    with threads.fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(AelabError, match="threads must be a whole number"), threads.fixed_threads(bad):
            pass


def test_a_recent_choice_carries_over_to_the_next_loop(monkeypatch):
    """An evaluation is many short loops: the first one probes, the next ones within the minute
    start at its choice (no probe) unless their steps slow down."""
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)
    loaded = {2: 4e-3, 1: 1e-3}

    def loop(rates, steps=20):
        seen = []
        for batch in threads.adaptive([torch.zeros(100, 1)] * steps):
            seen.append(torch.get_num_threads())
            clock.now += rates[torch.get_num_threads()] * len(batch)
        return seen

    assert loop(loaded)[0] == 2  # probes: starts at the process's count
    assert loop(loaded) == [1] * 20 and torch.get_num_threads() == 2  # carried: 1 thread throughout, then given back
    clock.now += threads.RECHECK_SECONDS
    assert loop(loaded)[0] == 2  # a minute later: probes again


def test_a_small_difference_is_not_carried_to_the_next_loop(monkeypatch):
    """One thread somewhat faster on one loop's work (a small net) is no reason to leave all
    threads, and the next loop starts at all of them without probing."""
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)
    seen = []
    for rates in ({2: 1.45e-3, 1: 1e-3}, {2: 0.5e-3, 1: 1e-3}):
        seen.append([])
        for batch in threads.adaptive([torch.zeros(100, 1)] * 20):
            seen[-1].append(torch.get_num_threads())
            clock.now += rates[torch.get_num_threads()] * len(batch)
    assert seen[0][-1] == 2  # under 1.5x: not worth leaving all threads (noise, or this work alone)
    assert seen[1] == [2] * 20  # the next loop: all threads throughout, no probe


def test_a_jobs_loops_share_its_choice_and_the_code_between_them_runs_at_it(monkeypatch):
    """An evaluation or a style transfer is one job: its first loop probes, the code between its
    loops and the loops after run at the chosen count, and the caller's count comes back at the end."""
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)
    loaded = {2: 4e-3, 1: 1e-3}

    def loop():
        seen = []
        for batch in threads.adaptive([torch.zeros(100, 1)] * 12):
            seen.append(torch.get_num_threads())
            clock.now += loaded[torch.get_num_threads()] * len(batch)
        return seen

    with threads.chosen_threads() as job:
        first = loop()
        assert first[0] == 2 and first[-1] == 1 and len(job.choices) == 1
        assert torch.get_num_threads() == 1  # between the loops: the job's count, not the caller's
        assert loop() == [1] * 12 and len(job.choices) == 1  # no second probe
    assert torch.get_num_threads() == 2


def test_a_close_call_keeps_the_count_in_use(monkeypatch):
    """Steps within 10% of each other are noise, not a reason to switch."""
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)
    seen = []
    for batch in threads.adaptive([torch.zeros(100, 1)] * 20):
        seen.append(torch.get_num_threads())
        clock.now += {2: 1.05e-3, 1: 1e-3}[torch.get_num_threads()] * len(batch)
    assert seen[-8:] == [2] * 8


def test_a_fit_inside_fixed_threads_keeps_that_count(small_data, tmp_path):
    import aelab

    with aelab.fixed_threads(1):
        run = aelab.train("dense", data=small_data, epochs=1, out=tmp_path / "run", progress="none", logger=())
    assert [row["threads"] for row in run.history] == [1]


def test_a_cpu_others_keep_busy_starts_at_the_cores_left(monkeypatch):
    """With no choice to go by, a chooser looks at the CPU first: beside a busy program its steps
    run at the cores left, not at a count that runs several times slower, and its probes do not try
    more; once the program has ended, they do."""
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    torch.set_num_threads(2)
    for others, expected in ((0.0, 2), (0.4, 2), (0.9, 1), (1.6, 1), (2.0, 1)):
        monkeypatch.setattr(threads, "_look", {"others": 0.0, "at": float("-inf")})
        monkeypatch.setattr(threads, "others_busy", lambda others=others: others)
        assert threads.start_count(2) == expected, others
    assert threads.start_count(4) == 2  # two of four cores busy: two left
    monkeypatch.setattr(threads, "_look", {"others": 0.0, "at": float("-inf")})
    monkeypatch.setattr(threads, "others_busy", lambda: 1.0)
    seen = []
    for batch in threads.adaptive([torch.zeros(100, 1)] * 12):
        seen.append(torch.get_num_threads())
        clock.now += {2: 4e-3, 1: 1e-3}[torch.get_num_threads()] * len(batch)
    assert seen == [1] * 12  # 2 threads not even tried: each of its steps would cost four
    monkeypatch.setattr(threads, "_look", {"others": 0.0, "at": float("-inf")})
    monkeypatch.setattr(threads, "others_busy", lambda: 0.0)  # the program ended: a minute later, 2 again
    clock.now += threads.RECHECK_SECONDS
    seen = []
    for batch in threads.adaptive([torch.zeros(100, 1)] * 12):
        seen.append(torch.get_num_threads())
        clock.now += {2: 0.5e-3, 1: 1e-3}[torch.get_num_threads()] * len(batch)
    assert seen[0] == 2 and seen[-1] == 2
    assert torch.get_num_threads() == 2


def test_others_busy_reads_the_cpu_less_this_process(monkeypatch):
    """The CPUs' busy ticks less this process's own time, per second watched; niced programs left out."""
    ticks = iter([1000, 1000 + 150])  # 1.5 s of busy ticks at 100 a second ...
    monkeypatch.setattr(threads, "_cpu_ticks", lambda cpus, with_niced: next(ticks))
    times = iter([SimpleNamespace(user=1.0, system=0.0), SimpleNamespace(user=1.5, system=0.0)])  # ... 0.5 s ours
    monkeypatch.setattr(
        threads,
        "os",
        SimpleNamespace(
            sysconf=lambda name: 100,
            times=lambda: next(times),
            sched_getaffinity=lambda pid: {0, 1},
            name="posix",
            nice=lambda step: 0,
        ),
    )
    monotonic = iter([10.0, 11.0])
    monkeypatch.setattr(threads, "time", SimpleNamespace(monotonic=lambda: next(monotonic), sleep=lambda s: None))
    assert others_busy() == pytest.approx(1.0)
    stat = "cpu  9 9 9 9 0 0 0 0 0 0\ncpu0 10 5 2 100 1 1 1 1 0 0\ncpu1 20 7 3 100 0 0 0 0 0 0\nctxt 5\n"
    monkeypatch.setattr(threads, "open", lambda *a, **k: io.StringIO(stat), raising=False)
    assert cpu_ticks({0, 1}, with_niced=False) == 10 + 2 + 1 + 1 + 1 + 20 + 3
    assert cpu_ticks({1}, with_niced=True) == 20 + 7 + 3


def test_a_fit_inside_a_job_chooses_from_all_the_jobs_threads(monkeypatch):
    """A detector's job that started at one thread beside a busy program: its fit still probes
    two (the program may have ended), and the job's count comes back after the fit."""
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    monkeypatch.setattr(threads, "others_busy", lambda: 1.0)
    torch.set_num_threads(2)
    with threads.chosen_threads():
        assert torch.get_num_threads() == 1
        fit = threads.AdaptiveThreads()
        monkeypatch.setattr(threads, "_look", {"others": 0.0, "at": float("-inf")})
        monkeypatch.setattr(threads, "others_busy", lambda: 0.0)  # the busy program ended
        fit.on_fit_start(None, None)
        drive(fit, clock, {2: 0.5e-3, 1: 1e-3}, 20)
        assert fit.choices[-1][1] == 2
        fit.on_fit_end(None, None)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
