"""`aelab tune`: hyperparameter search with Optuna (seed 3's "choose, train, evaluate, choose the
next from what was learned", as a loop nobody runs by hand).

Each trial is an ordinary run folder, ``STUDY_DIR/trials/NNNN``, trained by :func:`aelab.train`
with the settings the sampler chose, scored by its best validation loss (never the test split)
and pruned early from its per-epoch validation loss. The study lives in an Optuna storage: an
SQLite file inside ``STUDY_DIR`` by default, or any URL Optuna accepts (PostgreSQL for workers on
several machines). When the trials are done the best one is evaluated once on the test split and
``STUDY_DIR/best`` points to it; ``trials.csv``, three plots and ``summary.md`` describe the study.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import socket
import time
import typing
import urllib.parse
import warnings
from pathlib import Path
from typing import Any, Literal

from .config import TRAIN_FIELDS, TRAIN_HINTS, Dimension, check_range, coerce
from .distributed import cpu_cores
from .errors import AelabError, Interrupted, opt
from .limits import check_count

log = logging.getLogger("aelab")

STUDY_NAME = "aelab"
# a running trial's worker writes a heartbeat every HEARTBEAT seconds; a trial without one for
# GRACE seconds is marked failed (its worker died) when a worker next starts a trial, and queued
# again with the same parameters, up to RETRIES times
HEARTBEAT, GRACE, RETRIES = 20, 60, 1
STUDY_FILES = {"study.db", "study.journal", "study.journal.lock", "trials", "best", "trials.csv", "summary.md",
               "history.png", "importances.png", "parallel.png"}


def parse_dimension(text: str) -> Dimension:
    """``name=low:high[:log]`` (a range; ints on both ends make an int range) or ``name=a,b,c``
    (a choice ``16x48`` is the tuple of layer widths (16, 48))."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise AelabError(f"{opt('space')} takes name=low:high[:log] or name=a,b,c, got {text!r}")
    if ":" in spec:
        parts = spec.split(":")
        log_scale = parts[-1] == "log"
        bounds = parts[:-1] if log_scale else parts
        if len(bounds) != 2:
            raise AelabError(f"{opt('space')} {name}: a range is low:high or low:high:log, got {spec!r}")
        try:
            numbers = [_number(b) for b in bounds]
        except ValueError:
            raise AelabError(f"{opt('space')} {name}: the bounds must be numbers, got {spec!r}") from None
        low, high = numbers
        if not low < high:
            raise AelabError(f"{opt('space')} {name}: the range {spec!r} is empty (low must be below high)")
        if log_scale and low <= 0:
            raise AelabError(f"{opt('space')} {name}: a log range needs a positive low end, got {low:g}")
        return Dimension(name, low, high, log_scale, all(isinstance(n, int) for n in numbers))
    choices = tuple(_value(part.strip()) for part in spec.split(",") if part.strip())
    if not choices:
        raise AelabError(f"{opt('space')} {name}: no choices in {spec!r}")
    return Dimension(name, choices=choices)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"\d+(x\d+)+", lowered):
        return tuple(int(part) for part in lowered.split("x"))
    try:
        return _number(text)
    except ValueError:
        return text


def default_space(model: str) -> list[Dimension]:
    """A sensible search space for ``model``: its family's (:meth:`aelab.families.base.Family.search_space`)."""
    from .families import family_of
    from .models import get_entry

    return family_of(model).search_space(get_entry(model))


def check_space(model: str, space: list[Dimension]) -> None:
    """Every dimension names a setting the model's system uses or a parameter of the model, and its
    bounds or choices are values that setting takes: checked before the first trial."""
    from .families import family_of
    from .models import create_model, get_entry

    entry = get_entry(model)
    system = family_of(model).system
    params = entry.defaults()
    for dim in space:
        values = dim.choices if dim.choices is not None else (dim.low, dim.high)
        if dim.name in TRAIN_FIELDS:
            if dim.name not in system.honours:
                raise AelabError(f"{opt('space')} {dim.name}: {entry.name} does not use the setting {dim.name}")
            for value in values:
                hint = TRAIN_HINTS[dim.name]
                try:
                    check_range(dim.name, coerce(dim.name, value, hint), TRAIN_FIELDS[dim.name].metadata)
                except AelabError as error:
                    raise AelabError(f"{opt('space')} {dim.name}: {error}") from None
        elif dim.name in params:
            for value in values:
                try:
                    create_model(entry.name, **{dim.name: value})  # builds it: every value is one it takes
                except AelabError as error:
                    raise AelabError(f"{opt('space')} {dim.name}: {error}") from None
        else:
            raise AelabError(f"{opt('space')}: {entry.name} has no setting or parameter {dim.name!r}; the settings: "
                             f"{', '.join(n for n in TRAIN_FIELDS if n in system.honours)}; the parameters: "
                             f"{', '.join(params)}"[:500])


def merge_space(model: str, overrides: list[str] | None, fixed: Any = ()) -> list[Dimension]:
    """The model's default space with ``--space`` entries replacing or adding dimensions; a default
    dimension whose setting is ``fixed`` (given for every trial, ``--param code_size=49``) is left out."""
    from .models import get_entry

    defaults = get_entry(model).defaults()
    space = {dim.name: dim for dim in default_space(model) if dim.name not in fixed}
    for text in overrides or []:
        dim = _as_widths(parse_dimension(text), defaults.get(text.partition("=")[0].strip()))
        if dim.name in fixed:
            raise AelabError(f"{opt('space')} {dim.name}: {dim.name} is also fixed for every trial; search it or fix it")
        space[dim.name] = dim
    result = list(space.values())
    check_space(model, result)
    return result


def _as_widths(dim: Dimension, default: Any) -> Dimension:
    """Choices for a parameter of layer widths: a single number is a one-layer tuple (``channels=1,2``)."""
    if not isinstance(default, tuple) or dim.choices is None:
        return dim
    return Dimension(dim.name, choices=tuple((c,) if isinstance(c, int) and not isinstance(c, bool) else c
                                             for c in dim.choices))


Sampler = Literal["tpe", "random", "cmaes", "qmc", "gp"]
SAMPLERS = typing.get_args(Sampler)


def _sampler(name: str, seed: int):
    import optuna

    if name not in SAMPLERS:
        raise AelabError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    make = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
            "cmaes": optuna.samplers.CmaEsSampler, "qmc": optuna.samplers.QMCSampler,
            "gp": optuna.samplers.GPSampler}[name]
    return make(seed=seed)


def has_local_study(out: Path) -> bool:
    """Whether ``out`` holds its study's own storage (an SQLite file, or a journal file)."""
    return (out / "study.db").is_file() or (out / "study.journal").is_file()


def _storage(url: str | None, out: Path, journal: bool = False):
    """Optuna's storage for ``url``: a database (default: SQLite in ``out``) with a heartbeat, so
    that a worker that dies mid-trial has its trial marked failed and queued again (Optuna's
    RetryHeartbeatStaleTrialCallback) and the study goes on; or, for
    ``--workers`` on one machine (``journal``, or a study that has one), Optuna's journal file,
    which Optuna advises over SQLite for processes writing at once."""
    import optuna
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's
    if url is None and (journal or (out / "study.journal").is_file()):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        out.mkdir(parents=True, exist_ok=True)
        path = str(out / "study.journal")
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))

    # the path quoted: a folder named with ? or # would otherwise end the URL's path early
    url = url or "sqlite:///" + urllib.parse.quote(str((out / "study.db").resolve()))
    engine = {"pool_pre_ping": True} if not url.startswith("sqlite") else {"connect_args": {"timeout": 60}}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                                              heartbeat_stale_trial_callback=_retry(), engine_kwargs=engine)
        # the race shows as IntegrityError, or as "already exists": OperationalError on SQLite,
        # ProgrammingError (DuplicateTable) on PostgreSQL
        except (IntegrityError, OperationalError, ProgrammingError) as error:
            if not isinstance(error, IntegrityError) and "already exists" not in str(error):
                raise AelabError(f"cannot open the study storage {_redact(url)}: "
                                 f"{str(error).strip().splitlines()[0]}"[:400]) from None
            time.sleep(1 + attempt)  # workers started at once on a new database race to create its tables
        except (ArgumentError, ValueError, ImportError, ModuleNotFoundError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise AelabError(f"cannot open the study storage {_redact(url)}: {first}"[:400]) from None
    raise AelabError(f"cannot open the study storage {_redact(url)}: its tables could not be created")


def _retry():
    """Optuna's callback that queues a dead worker's trial again, with its parameters."""
    import optuna

    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)


def counted(trials: list) -> list:
    """The trials that count toward a study's total: neither surplus (a race between workers) nor a
    dead worker's trial that was queued again (its retry counts instead)."""
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", ())}
    return [t for t in trials if not t.user_attrs.get("surplus") and t.number not in retried]


def requeue_orphans(study) -> list[int]:
    """Fail the trials still running once every worker on this machine has exited (the journal
    file has no heartbeat: each such trial's worker died) and queue each again with its
    parameters, as the heartbeat does for a database. Returns the numbers of the trials failed."""
    import optuna

    orphans = study.get_trials(deepcopy=True, states=(optuna.trial.TrialState.RUNNING,))
    retry = _retry()
    for trial in orphans:
        if study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
            retry(study, trial)
    return [t.number for t in orphans]


def _redact(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}:***@{tail}"


def check_study_folder(out: Path, resume: bool, shared: bool = False) -> None:
    """``out`` is new, or a study folder this command may add to (``resume``, or ``shared``: the
    study lives in a storage other workers share); nothing else."""
    if out.exists() and not out.is_dir():
        raise AelabError(f"{opt('out', out)} is a file, not a study folder")
    if not out.exists() or not any(out.iterdir()):
        if resume:
            raise AelabError(f"{opt('resume')}: {out} holds no study to add trials to")
        return
    # (another worker's files being written: atomic_write's ".NAME.*.tmp" of a study file, the ".best-" link)
    ours = (".best-", *(f".{name}." for name in STUDY_FILES))
    foreign = sorted(p.name for p in out.iterdir() if p.name not in STUDY_FILES and not p.name.startswith(ours))
    if foreign:
        raise AelabError(f"{opt('out', out)} holds files that are not an aelab study ({foreign[0]}); choose another folder")
    if (out / "best").exists() and not (out / "best").is_symlink():  # aelab's is a link to the best trial's run
        raise AelabError(f"{out / 'best'} is not the link to the best trial aelab writes there; move it elsewhere")
    if not (resume or shared):
        raise AelabError(f"{opt('out', out)} holds a study already; {opt('resume')} adds trials to it")


def tune(model: str | None = None, *, out: str | Path, trials: int = 20, data: Any = None,
         space: list[str] | None = None, metric: str = "val_loss", sampler: Sampler = "tpe", pruning: bool = True,
         storage: str | None = None, resume: bool = False, workers: int = 1, **settings: Any):
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
        raise AelabError(f"{opt('metric')} must be a validation metric (val_loss, val_accuracy, ...), got {metric!r}: "
                         "the test split is used once, for the best trial")
    data_value = _data_value(data)
    study_storage, joining = None, False
    if storage is not None and not (isinstance(storage, str) and storage.strip()):
        raise AelabError(f"{opt('storage')} is empty; give a database URL (postgresql://user:pw@host/db) or leave it "
                         "out for SQLite in the study folder")
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
    from .families import family_of

    logged = family_of(model).val_metrics
    if metric not in logged:
        raise AelabError(f"{opt('metric', metric)}: {model}'s runs log {', '.join(logged)} each epoch; choose one of them")
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
    study = optuna.create_study(study_name=STUDY_NAME, storage=study_storage, sampler=sampler_, pruner=pruner,
                                direction=direction, load_if_exists=True)
    if not (resume or joining):
        for key, value in (("model", model), ("data", _data_name(data)), ("data_value", data_value),
                           ("space", [str(d) for d in dims]), ("metric", metric), ("settings", settings)):
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
            raise Interrupted(f"tuning interrupted after {done} trial{'s'[:done != 1]}; the study and trials.csv are "
                              f"kept: add more with {opt('resume', True)}") from None
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


def tuned_settings(out: str | Path, storage: str | None = None) -> tuple[str, dict[str, Any]]:
    """The study's model and its best trial's settings: the data, the settings fixed for every
    trial and the sampled ones, to train that setting again for longer::

        model, settings = aelab.tuned_settings("studies/best")
        aelab.train(model, **{**settings, "epochs": 30}, out="runs/best-tuned")
    """
    out = Path(out)
    if storage is None and not has_local_study(out):
        raise AelabError(f"{out} holds no study (no study.db or study.journal; give the {opt('storage')} it used)")
    study = _load_study(_storage(storage, out))
    model, data, space, _, settings = _stored_setup(study, None, {})
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        raise AelabError(f"the study in {out} has no completed trial yet")
    dims = merge_space(model, space, fixed=settings)
    best = study.best_trial.params
    sampled = {d.name: d.decode(best[d.name]) for d in dims if d.name in best}
    return model, {**({"data": data} if data is not None else {}), **settings, **sampled}


def train_command(model: str, settings: dict[str, Any]) -> str:
    """The ``aelab train`` command line that trains ``model`` with ``settings`` (the API's keywords)."""
    words = ["aelab", "train", model]
    for key, value in settings.items():
        if key == "data":
            words += ["--data-dir" if Path(str(value)).exists() else "--data", str(value)]
        elif key in TRAIN_FIELDS and isinstance(value, bool):
            words.append(f"--{'' if value else 'no-'}{key.replace('_', '-')}")
        elif key in TRAIN_FIELDS:
            text = ",".join(f"{k}={v!r}" for k, v in value.items()) if isinstance(value, dict) else repr(value) \
                if isinstance(value, float) else str(value)
            words += [f"--{key.replace('_', '-')}", text]
        else:
            text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
            words += ["--param", f"{key}={text}"]
    return " ".join(words)


def _load_study(storage):
    import optuna

    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except KeyError:
        raise AelabError(f"the storage holds no aelab study named {STUDY_NAME!r} to resume") from None


def _find_study(storage):
    """The aelab study in ``storage``, or None."""
    import optuna

    names = [summary.study_name for summary in optuna.study.get_all_study_summaries(storage)]
    return optuna.load_study(study_name=STUDY_NAME, storage=storage) if STUDY_NAME in names else None


def _stored_setup(study, model: str | None, settings: dict[str, Any], doing: str | None = None):
    """A stored study's model, data, space, metric and settings, as it was set up; a request
    for another model or other settings is refused."""
    doing = doing or opt("resume")
    attrs = study.user_attrs
    if model and attrs.get("model") and model != attrs.get("model"):
        raise AelabError(f"{doing}: the study tunes {attrs.get('model')}, not {model}")
    changed = sorted(k for k, v in settings.items() if attrs.get("settings", {}).get(k) != v)
    if changed:
        raise AelabError(f"{doing}: the study was set up with other settings and cannot change {changed[0]}")
    return attrs["model"], attrs.get("data_value"), attrs.get("space"), attrs.get("metric", "val_loss"), \
        dict(attrs.get("settings", {}))


def _data_name(data: Any) -> str:
    from .data import describe_source

    return describe_source(data)[0]


def _data_value(data: Any) -> str | None:
    """What a resumed study (or another worker) passes as ``data`` again: a name or a folder."""
    if data is None or isinstance(data, (str, Path)):
        return None if data is None else str(Path(data).resolve()) if Path(data).exists() else str(data)
    raise AelabError("aelab tune takes a dataset name or folder as data (arrays cannot be shared with workers "
                     "or a resumed study); save them as .npz in a folder")


def _check_trial(model: str, data: Any, out: Path, settings: dict[str, Any], dims: list[Dimension]) -> None:
    """Everything a trial will check (model, data, settings, one sampled point), writing nothing."""
    from .training import plan

    probe_point = {d.name: d.choices[0] if d.choices is not None else d.low for d in dims}
    plan(model, data, out / "trials" / "check", False, False, "auto", {**settings, **probe_point})


class Objective:
    """One trial: train with the sampled settings into ``trials/NNNN`` (no test evaluation) and
    return the best validation ``metric`` of its epochs, reporting each epoch to the pruner."""

    def __init__(self, model: str, data: Any, out: Path, dims: list[Dimension], metric: str,
                 settings: dict[str, Any]) -> None:
        self.model, self.data, self.out, self.dims, self.metric, self.settings = model, data, out, dims, metric, settings

    total: int = 0
    full: bool = False

    def __call__(self, trial) -> float:
        import torch
        from optuna_integration import PyTorchLightningPruningCallback

        from .training import train

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
            run = train(self.model, data=self.data, out=folder, progress=False, evaluate_test=False,
                        callbacks=[PyTorchLightningPruningCallback(trial, monitor=self.metric)],
                        **{**self.settings, **sampled})
        except AelabError as error:  # a diverging or failing trial: one line, recorded as failed
            trial.set_user_attr("error", " ".join(str(error).split()))
            raise
        values = [row[self.metric] for row in run.history if row.get(self.metric) is not None]
        if not values:
            raise AelabError(f"the runs log no {self.metric}; choose {opt('metric')} among "
                             f"{', '.join(k for k in run.history[-1] if k.startswith('val_'))}")
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


def params_text(params: dict[str, Any], spec: str = ".4g") -> str:
    """A trial's parameters as ``name=value, ...``, floats to ``spec``."""
    return ", ".join(f"{k}={v:{spec}}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


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
                log.info("waiting for trial%s %s, running elsewhere", "s"[:len(others) > 1],
                         ", ".join(str(t.number) for t in others))
                told = True
            time.sleep(min(5, HEARTBEAT))
            continue
        study.optimize(objective, n_trials=1, catch=(AelabError, Surplus), callbacks=[_log_trial])


def _log_trial(study, trial) -> None:
    if trial.user_attrs.get("surplus"):
        return
    value = "-" if trial.value is None else f"{trial.value:.5g}"
    params = params_text(trial.params, ".3g")
    why = f"; {trial.user_attrs['error']}" if trial.user_attrs.get("error") else ""
    if "failed_trial" in trial.system_attrs:  # a dead worker's trial, queued again
        why += f"; again for trial {trial.system_attrs['failed_trial']}, whose worker died"
    log.info("trial %d %s: %s (%s)%s", trial.number, trial.state.name.lower(), value, params, why)


def _worker(out: str, storage: str | None, sampler: str, pruning: bool, objective: Objective, total: int,
            threads: int, seed: int) -> None:
    """One worker process: its share of the CPU threads, the same study, trials until ``total``."""
    import optuna
    import torch

    torch.set_num_threads(threads)
    pruner = _pruner(pruning)
    study = optuna.load_study(study_name=STUDY_NAME, storage=_storage(storage, Path(out)),
                              sampler=_sampler(sampler, seed), pruner=pruner)
    _optimize(study, objective, total)


def _run_workers(out: Path, storage: str | None, sampler: str, pruning: bool, objective: Objective, total: int,
                 workers: int, seed: int) -> None:
    """``workers`` processes against the same storage, each with its share of the CPU threads."""
    import multiprocessing

    threads = max(1, cpu_cores() // workers)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(str(out), storage, sampler, pruning, objective, total,
                                                       threads, seed + i)) for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()


def finish(study, out: Path):
    """The best trial evaluated on test once, ``out/best`` pointing to it, ``trials.csv``, the plots
    and ``summary.md``. Returns the best :class:`~aelab.Run` (None if no trial completed)."""
    from .evaluation import evaluate
    from .runs import Run

    write_trials(study, out / "trials.csv")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best_run = None
    if complete:
        best = study.best_trial
        best_run = Run(out / best.user_attrs["run"])
        if not best_run.path.is_dir():
            # a worker with its own --out (another machine's disk) trained it: that worker evaluates it
            log.info("the best trial, %d, ran on %s: its run folder is %s there", best.number,
                     best.user_attrs.get("host", "another machine"), best.user_attrs.get("folder", best.user_attrs["run"]))
            write_summary(study, out, None, draw_plots(study, out))
            return None
        if not best_run.metrics_path.is_file():
            evaluate(best_run)
        staged = out / f".best-{os.getpid()}"  # replaced in one step: workers finishing together
        staged.unlink(missing_ok=True)
        staged.symlink_to(Path(best.user_attrs["run"]), target_is_directory=True)
        os.replace(staged, out / "best")
    plots = draw_plots(study, out)
    write_summary(study, out, best_run, plots)
    return best_run


def study_trials(study) -> list:
    """The study's trials, without the surplus ones discarded by a race between workers."""
    return [t for t in study.trials if not t.user_attrs.get("surplus")]


def write_trials(study, path: Path) -> None:
    from .runs import atomic_write

    atomic_write(path, lambda tmp: _write_trials(study, tmp))  # workers finishing together: whole files


def _write_trials(study, path: Path) -> None:
    names = sorted({name for t in study_trials(study) for name in t.params})
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["trial", "state", "value", *names, "seconds", "run", "retry_of"])
        for t in study_trials(study):
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
            writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else t.value,
                             *[t.params.get(n, "") for n in names], f"{seconds:.1f}" if seconds != "" else "",
                             t.user_attrs.get("run", ""), t.system_attrs.get("failed_trial", "")])


def draw_plots(study, out: Path) -> dict[str, str]:
    """Optuna's matplotlib plots: optimisation history, parameter importances, parallel coordinates.
    Returns, per file, "" when drawn or why it was not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    notes = {}
    for name, draw in (("history.png", views.plot_optimization_history), ("importances.png",
                       views.plot_param_importances), ("parallel.png", views.plot_parallel_coordinate)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
                axes = draw(study)
            figure = (axes[0] if hasattr(axes, "__len__") else axes).get_figure()
            figure.savefig(out / name, dpi=90, bbox_inches="tight")
            plt.close(figure)
            notes[name] = ""
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            notes[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
            (out / name).unlink(missing_ok=True)
    return notes


def write_summary(study, out: Path, best_run, plots: dict[str, str]) -> None:
    from .families import family_of

    attrs = study.user_attrs
    states = {}
    for t in study_trials(study):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    lines = [f"# Tuning {attrs.get('model')} on {attrs.get('data')}", "",
             f"{len(study_trials(study))} trials ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}); objective: "
             f"the best {attrs.get('metric')} of each trial's epochs ({study.direction.name.lower()}d); fixed "
             f"settings: {attrs.get('settings') or 'the model defaults'}; space: {', '.join(attrs.get('space', []))}.",
             ""]
    if best_run is not None:
        best = study.best_trial
        params = params_text(best.params)
        metrics = best_run.metrics
        tested = ", ".join(f"{k} {metrics[k]:.4f}" for k in family_of(attrs.get("model")).headline
                           if isinstance(metrics.get(k), float))
        lines += [f"Best: trial {best.number} ({best.user_attrs['run']}, linked as `best`): "
                  f"{attrs.get('metric')} {best.value:.5g} with {params}. On the test split, once: {tested}.", ""]
        try:
            model, settings = tuned_settings(out) if has_local_study(out) else (None, None)
        except AelabError:
            model = None
        if model is not None:
            settings.pop("epochs", None)
            lines += ["Train the best setting for longer (`aelab.tuned_settings` in Python):", "", "```bash",
                      train_command(model, {**settings, "epochs": 30}) + " --out runs/tuned", "```", ""]
    ranked = sorted((t for t in study_trials(study) if t.value is not None), key=lambda t: t.value,
                    reverse=study.direction.name == "MAXIMIZE")[:10]
    if ranked:
        names = sorted({n for t in ranked for n in t.params})
        lines += ["| trial | value | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for t in ranked:
            cells = [f"{t.params[n]:.4g}" if isinstance(t.params.get(n), float) else str(t.params.get(n, ""))
                     for n in names]
            lines.append(f"| {t.number} | {t.value:.5g} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("All trials: `trials.csv`.")
    for name, why in plots.items():
        lines.append(f"- {name}: {'![' + name + '](' + name + ')' if not why else 'not drawn (' + why + ')'}")
    from .runs import atomic_write

    atomic_write(out / "summary.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def load_study(out: str | Path, storage: str | None = None):
    """The Optuna study of ``aelab tune --out OUT``, from any machine that reaches its storage
    (``out``'s SQLite or journal file, or ``storage``): its trials, their states, values,
    parameters, and each trial's ``host`` and run ``folder`` in ``user_attrs``."""
    out = Path(out)
    if storage is None and not has_local_study(out):
        raise AelabError(f"{out} holds no study (no study.db or study.journal; give the {opt('storage')} it used)")
    return _load_study(_storage(storage, out))
