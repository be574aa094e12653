"""The search: :func:`tune` (the objective trains a run per trial, pruned on its validation loss;
workers share the storage), :func:`tuned_settings` and the command that trains the best again.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import typing
from pathlib import Path
from typing import Any, Literal

from ..config import Dimension
from ..distributed import cpu_cores
from ..errors import AelabError, Interrupted, opt
from ..limits import check_count
from .results import _log_trial, finish, write_trials
from .space import merge_space
from .storage import (
    HEARTBEAT,
    STUDY_NAME,
    _find_study,
    _load_study,
    _storage,
    _stored_setup,
    check_study_folder,
    counted,
    requeue_orphans,
)

log = logging.getLogger("aelab")


Sampler = Literal["tpe", "random", "cmaes", "qmc", "gp"]


SAMPLERS = typing.get_args(Sampler)


def _sampler(name: str, seed: int):
    import optuna

    if name not in SAMPLERS:
        raise AelabError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    make = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "qmc": optuna.samplers.QMCSampler,
        "gp": optuna.samplers.GPSampler,
    }[name]
    return make(seed=seed)


def tune(
    model: str | None = None,
    *,
    out: str | Path,
    trials: int = 20,
    data: Any = None,
    space: list[str] | None = None,
    metric: str = "val_loss",
    sampler: Sampler = "tpe",
    pruning: bool = True,
    storage: str | None = None,
    resume: bool = False,
    workers: int = 1,
    **settings: Any,
):
    """Search ``model``'s hyperparameters with Optuna: ``trials`` runs in ``out/trials/``; returns
    ``(study, best_run)`` with the best trial evaluated once on the test split.

    ``space``: ``--space`` entries (``lr=1e-4:1e-2:log``, ``batch_size=64,128``) over the model's
    default space. ``metric``: a per-epoch validation metric (``val_loss``, or ``val_accuracy``
    for a classifier head, maximised). ``storage``: an Optuna URL (default SQLite in ``out``);
    ``workers``: processes on this machine sharing it. ``settings``: fixed training settings and
    model parameters for every trial (``epochs=3``). ``resume``: add ``trials`` more to the study
    in ``out``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # aelab logs each trial itself
    out = Path(out)
    if not isinstance(trials, int) or trials < 1:
        raise AelabError(f"{opt('trials')} must be a positive integer, got {trials!r}")
    # each worker trains on a core of its own: more only share the cores (and multiply the memory)
    check_count(opt("workers"), workers, 1, cpu_cores())
    if not metric.startswith("val_"):
        raise AelabError(
            f"{opt('metric')} must be a validation metric (val_loss, val_accuracy, ...), got {metric!r}: "
            "the test split is used once, for the best trial"
        )
    data_value = _data_value(data)
    study_storage, joining = None, False
    if storage is not None and not (isinstance(storage, str) and storage.strip()):
        raise AelabError(
            f"{opt('storage')} is empty; give a database URL (postgresql://user:pw@host/db) or leave it "
            "out for SQLite in the study folder"
        )
    if storage is not None and not resume:  # a server is reached before anything is written
        study_storage = _storage(storage, out)
        existing = _find_study(study_storage)
        if existing is not None:  # another worker's study in the shared storage: join it
            if not model:
                raise AelabError("name a model to tune (see `aelab models`)")
            if existing.user_attrs:  # (set just after creation: a worker starting then sees none yet)
                _stored_setup(existing, model, settings, f"joining the study in {opt('storage')}")
            joining = True
    # with a shared storage, workers started at once may find the folder another one just made
    check_study_folder(out, resume, shared=storage is not None)
    if resume:
        if space:
            raise AelabError(f"{opt('resume')} continues the study's own search space; it cannot take {opt('space')}")
        study_storage = _storage(storage, out)
        stored = _load_study(study_storage)
        model, data, space, metric, settings = _stored_setup(stored, model, settings)
    elif not model:
        raise AelabError("name a model to tune (see `aelab models`)")
    from ..families import family_of

    logged = family_of(model).val_metrics
    if metric not in logged:
        raise AelabError(
            f"{opt('metric', metric)}: {model}'s runs log {', '.join(logged)} each epoch; choose one of them"
        )
    dims = merge_space(model, space, fixed=settings)
    seed = int(settings.get("seed", 0))
    if resume:  # a resumed sampler starts a stream of its own: the same seed would propose trial 0's point again
        seed += 1000 * len(stored.trials)
    # processes sharing a storage would otherwise propose the same points: each gets its own stream
    sampler_ = _sampler(sampler, seed if storage is None else seed + os.getpid())
    _check_trial(model, data, out, settings, dims)
    direction = "maximize" if metric.endswith(("accuracy", "elbo")) else "minimize"
    out.mkdir(parents=True, exist_ok=True)
    study_storage = study_storage or _storage(storage, out, journal=workers > 1)
    pruner = _pruner(pruning)
    # workers that start at once race to create the study: each loads it if it exists by then
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=study_storage,
        sampler=sampler_,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )
    if not (resume or joining):
        for key, value in (
            ("model", model),
            ("data", _data_name(data)),
            ("data_value", data_value),
            ("space", [str(d) for d in dims]),
            ("metric", metric),
            ("settings", settings),
        ):
            study.set_user_attr(key, value)
    # --trials: the study's total; with --resume, how many to add
    total = len(counted(study.get_trials(deepcopy=False))) + trials if resume else trials
    objective = Objective(model, data, out, dims, metric, settings)
    if workers == 1:
        try:
            _optimize(study, objective, total)
        except KeyboardInterrupt:  # Optuna has recorded the trial under way as failed
            write_trials(study, out / "trials.csv")
            done = len(counted(study.get_trials(deepcopy=False)))
            raise Interrupted(
                f"tuning interrupted after {done} trial{'s'[: done != 1]}; the study and trials.csv are "
                f"kept: add more with {opt('resume', True)}"
            ) from None
    else:
        _run_workers(out, storage, sampler, pruning, objective, total, workers, seed)
        # read afresh: the trials the workers finished are in the storage, not in this process's cache
        study = optuna.load_study(study_name=STUDY_NAME, storage=study_storage, sampler=sampler_, pruner=pruner)
        # every worker has exited: on this machine's journal file, a trial still running lost its
        # worker (a database's heartbeat tells that itself, and other machines may be at work on it)
        orphans = requeue_orphans(study) if storage is None else []
        for number in orphans:
            log.info("trial %d lost its worker: running it again here", number)
        if orphans:
            _optimize(study, objective, total)
    study = optuna.load_study(study_name=STUDY_NAME, storage=_storage(storage, out))
    return study, finish(study, out)


def _data_name(data: Any) -> str:
    from ..data import describe_source

    return describe_source(data)[0]


def _data_value(data: Any) -> str | None:
    """What a resumed study (or another worker) passes as ``data`` again: a name or a folder."""
    if data is None or isinstance(data, (str, Path)):
        return None if data is None else str(Path(data).resolve()) if Path(data).exists() else str(data)
    raise AelabError(
        "aelab tune takes a dataset name or folder as data (arrays cannot be shared with workers "
        "or a resumed study); save them as .npz in a folder"
    )


def _check_trial(model: str, data: Any, out: Path, settings: dict[str, Any], dims: list[Dimension]) -> None:
    """Everything a trial will check (model, data, settings, one sampled point), writing nothing."""
    from ..training import plan

    probe_point = {d.name: d.choices[0] if d.choices is not None else d.low for d in dims}
    plan(model, data, out / "trials" / "check", False, False, "auto", {**settings, **probe_point})


class Objective:
    """One trial: train with the sampled settings into ``trials/NNNN`` (no test evaluation) and
    return the best validation ``metric`` of its epochs, reporting each epoch to the pruner."""

    def __init__(
        self, model: str, data: Any, out: Path, dims: list[Dimension], metric: str, settings: dict[str, Any]
    ) -> None:
        self.model, self.data, self.out, self.dims, self.metric, self.settings = (
            model,
            data,
            out,
            dims,
            metric,
            settings,
        )

    total: int = 0
    full: bool = False

    def __call__(self, trial) -> float:
        import torch
        from optuna_integration import PyTorchLightningPruningCallback

        from ..training import train

        before = [t for t in counted(trial.study.get_trials(deepcopy=False)) if t.number < trial.number]
        if len(before) >= self.total:
            trial.set_user_attr("surplus", True)
            self.full = True
            raise Surplus(f"the study has its {self.total} trials")

        sampled = {d.name: d.suggest(trial) for d in self.dims}
        folder = self.out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run", str(folder.relative_to(self.out)))
        trial.set_user_attr("host", socket.gethostname())  # workers on several machines: where each run is
        trial.set_user_attr("folder", str(folder.resolve()))
        trial.set_user_attr("threads", torch.get_num_threads())  # a worker's share of the cores
        try:
            run = train(
                self.model,
                data=self.data,
                out=folder,
                progress=False,
                evaluate_test=False,
                callbacks=[PyTorchLightningPruningCallback(trial, monitor=self.metric)],
                **{**self.settings, **sampled},
            )
        except AelabError as error:  # a diverging or failing trial: one line, recorded as failed
            trial.set_user_attr("error", " ".join(str(error).split()))
            raise
        values = [row[self.metric] for row in run.history if row.get(self.metric) is not None]
        if not values:
            raise AelabError(
                f"the runs log no {self.metric}; choose {opt('metric')} among "
                f"{', '.join(k for k in run.history[-1] if k.startswith('val_'))}"
            )
        best = max(values) if trial.study.direction.name == "MAXIMIZE" else min(values)
        if not math.isfinite(best):
            raise AelabError(f"trial {trial.number}: {self.metric} is not finite")
        return best


class Surplus(Exception):
    """A trial that started after the study had all its trials (workers racing for the last one):
    discarded before it trains, recorded as failed with ``surplus`` set."""


def _pruner(pruning: bool):
    """Optuna's median pruner (after 3 trials, from the second epoch), or none."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if pruning else optuna.pruners.NopPruner()


def _optimize(study, objective: Objective, total: int) -> None:
    """Trials until the study (all processes sharing its storage) holds ``total`` that count, and
    none queued. Optuna numbers trials in the storage's own transactions, so each number is one
    trial; a trial past the total, which only a race between workers makes, is discarded without
    training. A trial queued again (its worker died) runs before a new one and takes its place."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is aelab's one line, not Optuna's traceback
    objective.total = total
    waiting, running = (optuna.trial.TrialState.WAITING,), (optuna.trial.TrialState.RUNNING,)
    heartbeat = getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None  # not the journal
    told = False
    while not objective.full:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial, failed and queued again
        if len(counted(study.get_trials(deepcopy=False))) >= total and not study.get_trials(False, states=waiting):
            others = study.get_trials(deepcopy=False, states=running)
            if not (heartbeat and others):
                break
            # another worker's trial: it finishes, or its worker died and it comes back queued
            if not told:
                log.info(
                    "waiting for trial%s %s, running elsewhere",
                    "s"[: len(others) > 1],
                    ", ".join(str(t.number) for t in others),
                )
                told = True
            time.sleep(min(5, HEARTBEAT))
            continue
        study.optimize(objective, n_trials=1, catch=(AelabError, Surplus), callbacks=[_log_trial])


def _worker(
    out: str,
    storage: str | None,
    sampler: str,
    pruning: bool,
    objective: Objective,
    total: int,
    threads: int,
    seed: int,
) -> None:
    """One worker process: its share of the CPU threads, the same study, trials until ``total``."""
    import optuna
    import torch

    torch.set_num_threads(threads)
    pruner = _pruner(pruning)
    study = optuna.load_study(
        study_name=STUDY_NAME, storage=_storage(storage, Path(out)), sampler=_sampler(sampler, seed), pruner=pruner
    )
    _optimize(study, objective, total)


def _run_workers(
    out: Path,
    storage: str | None,
    sampler: str,
    pruning: bool,
    objective: Objective,
    total: int,
    workers: int,
    seed: int,
) -> None:
    """``workers`` processes against the same storage, each with its share of the CPU threads."""
    import multiprocessing

    threads = max(1, cpu_cores() // workers)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(str(out), storage, sampler, pruning, objective, total, threads, seed + i))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
