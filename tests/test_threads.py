"""Thread counts (aelab.threads): a job runs at all threads from its first step and changes the
count only where other programs are measured busy, so the same seed repeats bit for bit on a quiet
machine; the state is per job (a context variable), the process-wide count set under a lock;
--threads N fixes the count."""

from __future__ import annotations

import io
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import run_cli
from safetensors.numpy import load_file

import aelab
from aelab import threads
from aelab.errors import AelabError

others_busy, cpu_ticks = threads.others_busy, threads._cpu_ticks  # (each test but one sees a quiet CPU)


class CPU:
    """others_busy as a test sets it: how many cores other programs keep busy, and the looks taken."""

    def __init__(self, others: float = 0.0) -> None:
        self.others, self.looks = others, 0

    def __call__(self, seconds: float = threads.LOOK_SECONDS) -> float:
        self.looks += 1
        return self.others


@pytest.fixture(autouse=True)
def cpu(monkeypatch) -> CPU:
    """Each test but one sees a quiet CPU with two threads."""
    quiet = CPU()
    monkeypatch.setattr(threads, "others_busy", quiet)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield quiet
    torch.set_num_threads(before)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(
    job: threads.Job, clock: Clock, seconds_per_item: dict[int, float], steps: int, batch: int = 100
) -> list[int]:
    """``steps`` steps of a job's loop whose time depends on the thread count in use, as a CPU's
    would; the count each step ran at."""
    counts = []
    for _ in range(steps):
        counts.append(torch.get_num_threads())
        seconds = seconds_per_item[torch.get_num_threads()] * batch
        clock.now += seconds
        job.step(seconds, batch)
    return counts


def test_a_quiet_cpu_keeps_every_thread_from_the_first_step_to_the_last(monkeypatch, cpu):
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    with threads.job() as job:
        assert torch.get_num_threads() == 2 and cpu.looks == 1
        # steps that slow down (other work in the loop, not another program) make it look, not switch
        counts = drive(job, clock, {2: 1e-3, 1: 0.5e-3}, 20) + drive(job, clock, {2: 3e-3, 1: 0.5e-3}, 40)
        clock.now += threads.RECHECK_SECONDS
        counts += drive(job, clock, {2: 1e-3, 1: 0.5e-3}, 20)
    assert set(counts) == {2} and cpu.looks >= 3 and not job.changed
    assert job.record() == {"most": 2, "fixed": False, "changed": False, "changes": []}


def test_a_busy_cpu_runs_at_the_cores_left_and_at_all_again_once_they_are_free(monkeypatch, cpu):
    clock = Clock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    cpu.others = 1.0  # another program at normal priority keeps one core busy
    with threads.job() as job:
        assert torch.get_num_threads() == 1
        assert drive(job, clock, {2: 8e-3, 1: 1e-3}, 20) == [1] * 20
        cpu.others = 0.0  # it ended: the next look (a minute on) finds both cores free
        clock.now += threads.RECHECK_SECONDS
        counts = drive(job, clock, {2: 0.5e-3, 1: 1e-3}, 10)
        assert counts[-1] == 2
        cpu.others = 1.2  # it is back: the steps slow down by more than a third, a look sees it
        clock.now += threads.MIN_GAP_SECONDS
        counts = drive(job, clock, {2: 4e-3, 1: 1e-3}, 30)
        assert counts[-1] == 1
    assert torch.get_num_threads() == 2  # the count the job started with, after it
    assert job.changed and [count for _, count, _ in job.changes] == [1, 2, 1]


def test_a_burst_seen_by_the_short_look_alone_changes_nothing(monkeypatch):
    """A 50 ms look is a few clock ticks: one that would change the count is confirmed by a longer
    look, which decides (a system task's burst on a quiet machine leaves the count, and the weights)."""
    seen = []

    def looks(busy_short: float, busy_long: float):
        def look(seconds: float = threads.LOOK_SECONDS) -> float:
            seen.append(seconds)
            return busy_short if seconds == threads.LOOK_SECONDS else busy_long

        return look

    monkeypatch.setattr(threads, "others_busy", looks(0.6, 0.0))
    with threads.job() as job:
        assert torch.get_num_threads() == 2 and not job.changed
    assert seen == [threads.LOOK_SECONDS, threads.CONFIRM_SECONDS]
    seen.clear()
    monkeypatch.setattr(threads, "others_busy", looks(1.0, 0.8))  # a program really busy: both looks see it
    with threads.job() as job:
        assert torch.get_num_threads() == 1 and job.changes[0][1:] == (1, 0.8)
    assert seen == [threads.LOOK_SECONDS, threads.CONFIRM_SECONDS]
    seen.clear()
    monkeypatch.setattr(threads, "others_busy", looks(0.0, 1.0))  # a quiet first look is not looked at again
    with threads.job() as job:
        assert not job.changed
    assert seen == [threads.LOOK_SECONDS]


@pytest.mark.parametrize(
    ("others", "most", "expected"), [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.9, 2, 1), (2.0, 4, 2)]
)
def test_the_cores_left_count_a_core_taken_from_half_its_time(others, most, expected):
    assert threads.free_count(most, others) == expected


def test_a_job_inside_a_job_joins_it_and_fixed_threads_never_look(cpu):
    with threads.job() as outer, threads.job() as inner:
        assert inner is outer and threads.current_job() is outer and cpu.looks == 1
    assert threads.current_job() is None
    cpu.others = 1.0
    with aelab.fixed_threads(2), threads.job() as fixed:
        assert fixed.fixed and torch.get_num_threads() == 2 and cpu.looks == 1
        fixed.step(10.0, 1)
    assert not fixed.changed
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(AelabError, match="threads must be a whole number"), aelab.fixed_threads(bad):
            pass


def test_a_short_job_need_not_look():
    with threads.job(look=False) as job:
        assert torch.get_num_threads() == 2 and not job.changed


def test_jobs_in_two_threads_keep_their_own_state(cpu):
    """Per job, not per process: two web requests at once each see their own job."""
    cpu.others = 0.0
    seen, ready = {}, threading.Barrier(2)

    def work(name: str, fixed: int | None) -> None:
        with aelab.fixed_threads(fixed), threads.job() as job:
            ready.wait(timeout=10)
            seen[name] = (threads.current_job() is job, job.fixed, job.most)
            ready.wait(timeout=10)

    workers = [threading.Thread(target=work, args=("fixed", 1)), threading.Thread(target=work, args=("default", None))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen["fixed"] == (True, True, 1) and seen["default"][:2] == (True, False)
    assert threads.current_job() is None


def test_two_default_runs_on_a_quiet_machine_give_the_same_weights_bit_for_bit(small_data, tmp_path, monkeypatch):
    """No thread setting given: the default repeats (the CPU is really looked at, not patched)."""
    seen = []

    def real_look(seconds: float = threads.LOOK_SECONDS) -> float:
        seen.append((seconds, round(others_busy(seconds), 2)))
        return seen[-1][1]

    monkeypatch.setattr(threads, "others_busy", real_look)
    runs = [
        aelab.train("dense", data=small_data, epochs=2, out=tmp_path / name, progress="none", logger=(), seed=7)
        for name in ("a", "b")
    ]
    for run in runs:
        assert run.threads == {"most": 2, "fixed": False, "changed": False, "changes": []}, (run.threads, seen)
    first, second = (load_file(run.path / "model.safetensors") for run in runs)
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    assert runs[0].metrics["test_rmse"] == runs[1].metrics["test_rmse"]


def test_a_run_beside_a_busy_program_says_its_count_changed(small_data, tmp_path, cpu):
    cpu.others = 1.0
    run = aelab.train("dense", data=small_data, epochs=1, out=tmp_path / "run", progress="none", logger=())
    assert [row["threads"] for row in run.history] == [1]
    assert run.threads["changed"] and run.threads["changes"][0][1:] == [1, 1.0]
    assert torch.get_num_threads() == 2


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


def test_a_fit_inside_fixed_threads_keeps_that_count(small_data, tmp_path):
    import aelab

    with aelab.fixed_threads(1):
        run = aelab.train("dense", data=small_data, epochs=1, out=tmp_path / "run", progress="none", logger=())
    assert [row["threads"] for row in run.history] == [1]


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
