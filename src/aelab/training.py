"""`aelab.train`: check everything, then fit with Lightning into a run folder, keep the best
weights and evaluate.

Check, then act: :func:`plan` validates the model, its settings, the data and the ``out`` folder
and writes nothing; only then does :func:`train` lock the folder and write. ``overwrite`` trains
into a sibling folder and replaces the old run only once the new one has trained and evaluated,
so a failure at any point leaves the old run as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from .accel import (
    choose_precision,
    device_for,
    keep_freed_memory,
    skip_failing_nvml_check,
)
from .callbacks import EpochLines, History
from .config import (
    EVAL_FIELDS,
    LAUNCH,
    TRAIN_FIELDS,
    EvalSettings,
    RunConfig,
    TrainConfig,
    read_train_config,
    settings_from,
)
from .data import ARRAYS, describe_source
from .datasets import RUN_ARRAYS, keep_run_arrays, read_run_arrays
from .distributed import (
    check_launch,
    end_process_group,
    lightning_strategy,
    local_rank,
    process_rank,
    share_cpu_threads,
)
from .errors import AelabError, Interrupted, eval_command, opt, resume_command
from .evaluation import evaluate
from .families import NonFiniteLoss, family_of
from .models import create_model, get_entry, resolve_params
from .nets.blocks import initialise
from .outputs import atomic_write, created, first_free, umask
from .progress import Progress, reporting, resolve, say
from .runs import Run, RunLock, check_out_folder, load_state, write_json
from .threads import AdaptiveThreads, fixed_count, fixed_threads
from .version import __version__

log = logging.getLogger("aelab")


class TrainingDiverged(AelabError):
    """Training stopped on a non-finite loss; the run kept its last finite weights and was evaluated."""


@dataclass
class Plan:
    """Everything :func:`train` will do, settled and checked before anything is written."""

    out: Path
    config: RunConfig
    data: Any  # the family's: images (ImageData or a FolderStream) or a TextData
    model: torch.nn.Module
    device: str
    resume: bool = False
    replace: bool = False  # --overwrite of an existing run: train beside it, swap at the end
    changes: list[str] = field(default_factory=list)  # settings a resume changes, for the log


def train(model: str | None = None, *, data: Any = None, out: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, progress: Progress = "auto", accelerator: str = "auto",
          callbacks: list[L.Callback] | None = None, evaluate_test: bool = True,
          config: TrainConfig | dict[str, Any] | str | Path | None = None, **settings: Any) -> Run:
    """Train ``model`` (a registered name) and evaluate it; returns the :class:`~aelab.Run`.

    ``data``: a dataset name (default ``mnist-sample``), a folder, or arrays ``x_train`` /
    ``(x_train, x_test)`` (see :func:`aelab.data.resolve_data`). ``out``: the run folder; ``None``
    trains into a fresh temporary folder. ``settings``: any :class:`~aelab.config.TrainSettings`
    field (``epochs``, ``lr``, ``noise``, ...), any :class:`~aelab.EvalSettings` field (what the
    evaluation after training measures: ``bounds=False``, ...) and any parameter of the model, by name. A setting
    the model's system does not use is refused. ``resume`` continues the run in ``out`` (only
    ``epochs`` and the launch settings may change: ``devices``, ``num_nodes``, ``strategy``, ``max_minutes``); ``overwrite`` replaces the run in ``out`` once the new one is done.
    ``progress``: "bar" (a progress bar), "epoch" (one line per epoch and per evaluation stage,
    as a log file wants), None (quiet), or "auto": "bar" on a terminal, else "epoch".
    ``config``: a ``.toml``/``.json`` file (or dict) with the same things by section (``model``,
    ``data``/``data_dir``, ``[train]``, ``[eval]``, ``[params]``; :func:`aelab.read_train_config`);
    a run's config.json trains that run again. Arguments given here override the file.
    ``callbacks`` (Lightning callbacks) join aelab's own. ``evaluate_test=False`` skips the
    test-set evaluation (no metrics.json or figures: a tuning trial must not see the test split);
    ``aelab.evaluate(run)`` does it later.

    ``devices``/``num_nodes``/``strategy`` train in several processes (:mod:`aelab.distributed`):
    every process calls ``train``; the main one writes the run and the others return its
    :class:`~aelab.Run` without writing (``aelab.is_main_process()`` tells them apart).
    """
    if config is not None:
        model, data, settings = _from_config(read_train_config(config), model, data, resume, settings)
    if process_rank():
        return _train_helper(model, data, out, resume, accelerator, callbacks, settings)
    progress = resolve(progress)
    evaluation = EvalSettings.of({k: settings.pop(k) for k in list(settings) if k in EVAL_FIELDS})
    if out is None:
        if resume or overwrite:
            raise AelabError(f"{opt('resume')} and {opt('overwrite')} need an {opt('out')} folder")
        out = Path(tempfile.gettempdir()) / f"aelab-run-{uuid.uuid4().hex[:12]}"  # made once the checks pass
    plan_ = plan(model, data, Path(out), resume, overwrite, accelerator, settings)
    keep_freed_memory()
    skip_failing_nvml_check()
    for change in plan_.changes:
        log.info("resuming %s: %s", plan_.out, change)
    created = not plan_.out.exists()
    plan_.out.mkdir(parents=True, exist_ok=True)
    with RunLock(plan_.out):
        check_out_folder(plan_.out, plan_.resume, overwrite, data_dir=plan_.config.data_dir, locked=True)
        remove_leftovers(plan_.out)
        folder = plan_.out
        if plan_.replace:
            folder = Path(tempfile.mkdtemp(prefix=f".{plan_.out.name}{NEW}", dir=plan_.out.parent))
            os.chmod(folder, 0o777 & ~umask())  # a folder as a plain mkdir makes it, not mkdtemp's 0700
        try:
            with Run(folder).recording(), reporting(progress):  # every file it writes goes on the run's record
                diverged = fit(plan_, folder, progress, callbacks or [], evaluate_test, evaluation=evaluation)
            if plan_.replace and not diverged:
                _swap(folder, plan_.out)
        except BaseException as error:
            if plan_.replace:
                shutil.rmtree(folder, ignore_errors=True)
                if isinstance(error, KeyboardInterrupt):
                    raise Interrupted(f"training interrupted; the run in {plan_.out} is as it was") from None
            elif created and not Run(plan_.out).last_checkpoint.is_file() and not Run(plan_.out).foreign_files():
                shutil.rmtree(plan_.out, ignore_errors=True)  # ours alone, and nothing in it to resume
                if isinstance(error, KeyboardInterrupt):
                    raise Interrupted("training interrupted before its first epoch ended; nothing was kept") from None
            raise
    if diverged:
        if plan_.replace:
            shutil.rmtree(folder, ignore_errors=True)
            raise TrainingDiverged(f"{diverged}; the run in {plan_.out} was left as it was (lower {opt('lr')})")
        raise TrainingDiverged(f"{diverged}; kept and evaluated the last finite weights in {plan_.out} (lower {opt('lr')})")
    return Run(plan_.out)


def _from_config(file: TrainConfig, model: str | None, data: Any, resume: bool,
                 settings: dict[str, Any]) -> tuple[str | None, Any, dict[str, Any]]:
    """The model, data and settings of a config file, under those given as arguments. A run's
    config.json naming arrays (data "arrays") takes the arrays the run kept (RUN/data.npz)."""
    if resume:
        raise AelabError("config starts a new run; resume continues one with its own config.json (leave config out)")
    if model and file.model and get_entry(model).name != get_entry(file.model).name:
        raise AelabError(f"{file.source} trains {file.model}, not {model}: name no model, or edit the file")
    if data is None:
        if file.data_dir is not None:
            data = Path(file.data_dir)
            if not data.is_dir():  # the file's setting, not a flag the user gave
                raise AelabError(f"{file.source}: its data_dir {data} "
                                 f"{'is not a folder' if data.exists() else 'does not exist'}; edit the file or "
                                 f"give the data ({opt('data_dir')})")
        elif file.data == ARRAYS:
            kept = Path(file.folder or ".") / RUN_ARRAYS
            if not kept.is_file():
                raise AelabError(f"{file.source} was trained on arrays given to aelab.train and no {RUN_ARRAYS} is "
                                 "beside it; pass them again (data=...)")
            data = read_run_arrays(kept)
        else:
            data = file.data
    return model or file.model, data, {**file.settings, **file.params, **settings}


def _train_helper(model: str | None, data: Any, out: str | Path | None, resume: bool, accelerator: str,
                  callbacks: list[L.Callback] | None, settings: dict[str, Any]) -> Run:
    """A process other than the main one in a multi-process run: the same plan, then its share of
    the training, writing nothing (the main process has checked and locked the run folder, and
    writes it). Its log lines would repeat the main process's: they are kept quiet."""
    logging.getLogger("aelab").setLevel(logging.WARNING)
    out = Path(out) if out is not None else Path(tempfile.gettempdir()) / "aelab-run-helper"  # rank 0 names the folder
    plan_ = plan(model, data, out, resume, False, accelerator, settings, main=False)
    fit(plan_, out, None, callbacks or [], evaluate_test=False, main=False)
    return Run(out)


def plan(model: str | None, data: Any, out: Path, resume: bool, overwrite: bool, accelerator: str,
         settings: dict[str, Any], main: bool = True) -> Plan:
    """Check everything :func:`train` needs and settle it; writes nothing. ``main=False``: a helper
    process of a multi-process run, which leaves the run folder to the main process."""
    given = {k: v for k, v in settings.items() if k in TRAIN_FIELDS}
    params = {k: v for k, v in settings.items() if k not in TRAIN_FIELDS}
    replace = check_out_folder(out, resume, overwrite, data_dir=describe_source(data)[1]) if main else False
    if resume:
        config, changes = _resume_config(model, data, out, given, params)
        explicit = set()
    else:
        if not model:
            raise AelabError("name a model to train (see `aelab models`)")
        entry = get_entry(model)
        resolve_params(entry.name, **params)  # unknown names are refused before data are loaded
        name, data_dir = describe_source(data)
        config = RunConfig(entry.name, {}, settings_from(given, entry.train), name, data_dir,
                           user_params=tuple(sorted(params)), aelab_version=__version__)
        changes, explicit = [], set(given)
    family = family_of(config.model)
    family.check(config.model, config.train, explicit)  # settings first: they cost nothing to check
    check_loggers(config.train)
    config.honoured = tuple(k for k in TRAIN_FIELDS if k in family.honours())
    if resume:
        data_ = family.run_data(config, data if config.data == ARRAYS else None)
    else:
        data_ = family.load_data(config, data, params)
    family.check_data(config, data_)
    device = device_for(accelerator)
    check_launch(config.train.devices, config.train.num_nodes, device)
    share_cpu_threads(config.train.devices, device)
    precision = choose_precision(config.train.precision, device)
    channels_last = config.train.channels_last if config.train.channels_last is not None else device == "cpu"
    config.train = config.train.updated(precision=precision, channels_last=channels_last)
    L.seed_everything(config.train.seed, verbose=False)  # before the model: --seed fixes its initial weights too
    net = create_model(config.model, **config.params)  # bad parameter values fail here
    if resume:
        load_state(net, Run(out).checkpoint_state(Run(out).last_checkpoint), Run(out).last_checkpoint)
    elif "init" in family.honours():
        initialise(net, config.train.init)
    return Plan(out, config, data_, net, device, resume, replace, changes)


def _resume_config(model: str | None, data: Any, out: Path, given: dict[str, Any],
                   params: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """The run's own config with the one change a resume may make (more epochs), after refusing
    any other change: a resumed run continues as it was set up."""
    run = Run(out)
    config = run.config
    launch_flags = [opt(k) for k in LAUNCH]
    if model and get_entry(model).name != config.model:
        raise AelabError(f"{opt('resume')}: {out} trained {config.model}, not {model}")
    if not run.last_checkpoint.is_file():
        raise AelabError(f"{opt('resume')}: {out} has no checkpoints/last.ckpt to continue from")
    done = run.epochs_done()
    current = {**config.params, **config.train.to_json(), "data": config.data}
    requested = {**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()},
                 **{k: v for k, v in given.items() if k != "epochs" and k not in LAUNCH and v != "auto"}}
    if data is not None:
        requested["data"] = describe_source(data)[0]
    changed = sorted(k for k, v in requested.items() if current.get(k) != v)
    if changed:
        key = changed[0]
        raise AelabError(f"{opt('resume')} continues {out} as it was set up and cannot change {key} ({current.get(key)} -> "
                         f"{requested[key]}); only {opt('epochs')} (and {', '.join(launch_flags)}) can change. "
                         "Train a new run for other settings")
    epochs = given.get("epochs", config.train.epochs)
    if epochs <= done:
        raise AelabError(f"{opt('resume')}: {out} has trained {done} epoch(s) already; ask for more with {opt('epochs', 'N')}, N > {done}")
    changes = [f"epochs {config.train.epochs} -> {epochs}"] if epochs != config.train.epochs else []
    launch = {k: given[k] for k in LAUNCH if k in given and given[k] != getattr(config.train, k)}
    changes += [f"{k} {getattr(config.train, k)} -> {v}" for k, v in launch.items()]
    config.train = config.train.updated(epochs=epochs, **launch)
    if config.data == ARRAYS and data is None:
        raise AelabError(f"{opt('resume')}: {out} was trained on arrays passed to aelab.train; pass them again (data=...)")
    return config, changes


def fit(plan_: Plan, folder: Path, progress: str | None, extra_callbacks: list[L.Callback],
        evaluate_test: bool = True, main: bool = True, evaluation: EvalSettings | None = None) -> str | None:
    """Fit into ``folder``, keep the best (or last finite) weights, evaluate; ``progress``: "bar",
    "epoch" or None (resolved). Returns why training
    stopped early on a non-finite loss, or None. ``main=False`` (a helper process of a
    multi-process run) trains its share and writes nothing: no config, logs, figures or weights."""
    config, settings, model = plan_.config, plan_.config.train, plan_.model
    run = Run(folder)
    if main:
        write_json(run.config_path, config.to_json())
        if config.data == ARRAYS and evaluate_test:  # the run's tools (encode_split, probe, latent) read them later
            keep_run_arrays(folder, plan_.data)
    family = family_of(config.model)
    # on a GPU the data live on it, and batches are slices there (each process on its own GPU)
    device = torch.device("cuda", local_rank()) if plan_.device == "cuda" else None
    train_batches, val_batches = family.batches(plan_.data, model, settings, device)
    processes = settings.devices * settings.num_nodes

    system = family.build_system(model, settings)
    history, finite = History(), FiniteWeights()
    # History first: it records at train-epoch end, just before the checkpoint is written
    callbacks = [history, finite, RunCheckpoint(dirpath=run.checkpoint_dir, filename="best", monitor=system.monitor,
                                                save_last=True, save_top_k=1, save_on_train_epoch_end=True,
                                                enable_version_counter=False)]
    if settings.early_stopping and system.monitor:
        callbacks.append(EarlyStopping(monitor=system.monitor, patience=settings.patience))
    if main:  # the callbacks above decide together across processes; these only write
        callbacks += [RecordLogs(run.path), *family.callbacks(run, model, plan_.data, settings, val_batches)]
    callbacks += extra_callbacks
    steps = max(1, len(train_batches) // processes)  # an epoch's steps in each process
    # fixed for the fit and anything inside it: --threads, or an aelab.fixed_threads() around the call
    fixed = (settings.threads if settings.threads is not None else fixed_count()) if plan_.device == "cpu" else None
    if plan_.device == "cpu" and fixed is None and processes == 1:
        callbacks.append(AdaptiveThreads())
    if progress == "bar":
        callbacks.append(EpochProgressBar(refresh_rate=max(1, steps // 20)))
    elif progress == "epoch":
        callbacks.append(EpochLines(history, family.item, cpu=plan_.device == "cpu"))
    diverged = None
    with quiet_lightning(mlflow="mlflow" in settings.logger and main), fixed_threads(fixed):
        loggers = make_loggers(settings.logger, run) if main else []
        trainer = L.Trainer(max_epochs=settings.epochs,
                            max_time=None if settings.max_minutes is None else {"minutes": settings.max_minutes},
                            accelerator="cpu" if plan_.device == "cpu" else "gpu",
                            devices=settings.devices, num_nodes=settings.num_nodes,
                            strategy=lightning_strategy(settings.strategy, processes,
                                                        not system.automatic_optimization),
                            precision=settings.precision, callbacks=callbacks, logger=loggers or False,
                            enable_progress_bar=progress == "bar", enable_model_summary=False, num_sanity_val_steps=0,
                            log_every_n_steps=steps)
        sigint = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(system, train_batches, val_batches, ckpt_path=run.last_checkpoint if plan_.resume else None,
                        weights_only=True)
        except NonFiniteLoss as error:
            diverged = str(error)
        except SystemExit:  # Lightning answers Ctrl-C by exiting (after its callbacks kept the finished epochs)
            if not trainer.interrupted:
                raise
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C while it shuts down
            finish_loggers(loggers, run.path, plan_.out)
    if processes > 1:
        end_process_group()  # the rest is the main process's alone (metrics would otherwise wait for the others)
    if not main:
        return diverged
    write_json(run.history_path, {"epochs": history.epochs})
    if trainer.interrupted and not diverged:
        raise Interrupted(f"training interrupted in epoch {trainer.current_epoch + 1}; the finished epochs are kept: "
                          f"continue with {resume_command(plan_.out)}")
    model = model.cpu().to(memory_format=torch.contiguous_format)
    if diverged:
        load_state(model, finite.last_finite(model), run.path)
    else:
        best = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
        load_state(model, run.checkpoint_state(best), best)
    run.save_weights(model)
    if evaluate_test:
        with fixed_threads(fixed):
            try:
                evaluate(folder, plan_.data, stopped=diverged, progress=progress, **asdict(evaluation or EvalSettings()))
            except KeyboardInterrupt:
                raise Interrupted(f"evaluation interrupted; the trained run is kept: measure it with "
                                  f"{eval_command(plan_.out)}") from None
    return diverged


# the packages each logger needs beyond aelab's own, and the extra that installs them
LOGGER_PACKAGES = {"mlflow": ("mlflow", "aelab[mlflow]"), "wandb": ("wandb", "aelab[wandb]")}


def check_loggers(settings) -> None:
    """Each chosen logger's package is installed, and the settings that write to TensorBoard have
    it; one line otherwise, before anything is written."""
    import importlib.util

    for name in settings.logger:
        if name in LOGGER_PACKAGES and importlib.util.find_spec(LOGGER_PACKAGES[name][0]) is None:
            module, extra = LOGGER_PACKAGES[name]
            raise AelabError(f"logger {name} needs the {module} package: pip install '{extra}' (or {module})")
    for needs in ("log_activations", "log_embeddings"):
        if getattr(settings, needs) and "tensorboard" not in settings.logger:
            raise AelabError(f"{needs} writes to TensorBoard: add tensorboard to logger "
                             f"(now {','.join(settings.logger) or 'none'})")


def make_loggers(names: tuple[str, ...], run: Run) -> list:
    """Lightning's own loggers, writing under RUN/logs: TensorBoard and CSV files; MLflow to
    RUN/logs/mlflow.db (or the server MLFLOW_TRACKING_URI names); Weights & Biases offline in
    RUN/logs/wandb (online when WANDB_MODE=online), named after the run folder."""
    logs = run.path / "logs"
    loggers: list = []
    for name in names:
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(logs, name="tensorboard", version=""))
        elif name == "csv":
            loggers.append(AppendingCSVLogger(logs, name="csv", version=""))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            logs.mkdir(parents=True, exist_ok=True)
            uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + urllib.parse.quote(str(logs.resolve() / "mlflow.db"))
            loggers.append(MLFlowLogger(experiment_name="aelab", run_name=run.path.name, tracking_uri=uri,
                                        artifact_location=(logs / "mlflow-artifacts").resolve().as_uri()))
        elif name == "wandb":
            import wandb
            from lightning.pytorch.loggers import WandbLogger

            logs.mkdir(parents=True, exist_ok=True)
            online = os.environ.get("WANDB_MODE", "").lower() == "online"
            logger = WandbLogger(save_dir=str(logs), project=os.environ.get("WANDB_PROJECT", "aelab"),
                                 name=run.path.name, offline=not online, settings=wandb.Settings(silent=True))
            logger._wandb_init.pop("anonymous", None)  # Lightning passes it; wandb >= 0.19 warns it does nothing
            loggers.append(logger)
    return loggers


def finish_loggers(loggers: list, folder: Path, out: Path) -> None:
    """End each logger's run: a W&B run left open would take the next training's curves in this
    process; say where an offline W&B run is (in ``out``, where ``folder`` ends up), to upload it."""
    from lightning.pytorch.loggers import WandbLogger  # Lightning's class, present without the wandb package

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            offline = out / Path(logger.experiment.dir).parent.relative_to(folder)
            logger.experiment.finish()
            if offline.name.startswith("offline-"):
                say(f"wandb: an offline run in {offline}; upload it with `wandb sync {offline}`")


NEW, OLD = ".aelab-new-", ".aelab-old-"  # the siblings of an --overwrite: the run in training, the one retired


def remove_leftovers(out: Path) -> list[Path]:
    """Remove (and name in the log) the siblings a killed --overwrite of ``out`` left behind; the
    caller holds ``out``'s lock, so no process is still writing them."""
    found = [p for marker in (NEW, OLD) for p in out.parent.glob(f".{out.name}{marker}*") if p.is_dir()]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by an interrupted %s of %s", path, opt("overwrite"), out)
    return found


def _swap(new: Path, old: Path) -> None:
    """Put the finished run ``new`` where ``old`` is, then delete ``old``. ``old`` is moved aside
    first and checked against its record again: if a file aelab did not write appeared in it while
    the new run trained, both are kept (``old`` as it was, ``new`` in a visible sibling) and the
    error names them."""
    retired = Path(tempfile.mkdtemp(prefix=f".{old.name}{OLD}", dir=old.parent))
    aside = retired / old.name
    os.rename(old, aside)
    extra = Run(aside).foreign_files()
    if extra:
        os.rename(aside, old)
        retired.rmdir()
        kept = first_free(old.with_name(f"{old.name}-new"), suffix="")
        os.rename(new, kept)
        raise AelabError(f"{old} gained files aelab did not write while the new run trained ({', '.join(extra[:3])}); "
                         f"it is left as it was, and the new run is in {kept}")
    os.rename(new, old)
    shutil.rmtree(retired, ignore_errors=True)


class RecordLogs(L.Callback):
    """The loggers' files go on the run's record as soon as they exist (at the start, then after
    each epoch), so a run killed midway holds no file its record does not know."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        created(self.folder / "logs")

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        created(self.folder / "logs")


class FiniteWeights(L.Callback):
    """The model's weights at the start and after each epoch (a CPU copy): what a run keeps when a
    later step's loss is not finite and the weights it reached are not finite either."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None

    def _keep(self, module: L.LightningModule) -> None:
        state = module.model.state_dict()
        if all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            self.state = {k: v.detach().cpu().clone() for k, v in state.items()}

    def on_train_start(self, trainer, module) -> None:
        self._keep(module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._keep(module)

    def last_finite(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        state = model.state_dict()
        finite = all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
        return state if finite or self.state is None else self.state


CHECKPOINT_SECONDS = 60.0  # at most this much training is lost when a run is killed


class RunCheckpoint(ModelCheckpoint):
    """Lightning's checkpointing, with two changes:

    - writes on a time interval: an epoch's checkpoint (last, and best when it improved) is kept
      in memory and written once :data:`CHECKPOINT_SECONDS` have passed since the last write, when
      training ends, stops early or is interrupted, so epochs of a second do not each write two
      files (benchmarks/results/epochs.md) and a killed run loses at most a minute;
    - the best score kept when the run folder has moved (copied, or swapped in by --overwrite):
      its stored paths are re-rooted at the folder it is in now.
    """

    def __init__(self, *args, every_seconds: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.every_seconds = CHECKPOINT_SECONDS if every_seconds is None else every_seconds
        self._pending: dict[str, dict[str, Any]] = {}  # path -> a checkpoint not written yet
        self._written_at = time.monotonic()

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        due = (trainer.world_size > 1 or trainer.should_stop or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
               or time.monotonic() - self._written_at >= self.every_seconds)
        if not due:  # Lightning's bookkeeping as if written; the file follows with the next write
            self._pending[filepath] = _copied(trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only))
            self._last_global_step_saved = trainer.global_step
            self._last_checkpoint_saved = filepath
            return
        self._pending.pop(filepath, None)
        super()._save_checkpoint(trainer, filepath)
        created(filepath)
        self.write_pending(trainer)

    def write_pending(self, trainer: L.Trainer) -> None:
        """Write the checkpoints kept in memory."""
        for path, checkpoint in list(self._pending.items()):
            trainer.strategy.save_checkpoint(checkpoint, path)
            created(path)
            del self._pending[path]
        self._written_at = time.monotonic()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.write_pending(trainer)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.write_pending(trainer)  # Ctrl-C or a non-finite loss: the finished epochs are kept

    @property
    def state_key(self) -> str:  # stored under ModelCheckpoint's key, so runs saved before this class resume too
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            def moved(path):
                return path.replace(old, self.dirpath, 1) if isinstance(path, str) and path.startswith(old) else path

            state_dict = {k: moved(v) for k, v in state_dict.items()}
            state_dict["best_k_models"] = {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()}
            state_dict["dirpath"] = self.dirpath
        super().load_state_dict(state_dict)


def _copied(value: Any) -> Any:
    """A checkpoint with every tensor cloned (its weights and optimiser state go on changing)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, _copied(v)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(_copied(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, which deletes an existing metrics.csv on start; a resumed run
    appends to it instead."""

    def _check_log_dir_exists(self) -> None:
        path = self.metrics_file_path
        if os.path.islink(path) or (os.path.isfile(path) and os.stat(path).st_nlink > 1):
            # a link (or a hard link, as `cp -al` makes for a backup): the run gets its own copy to
            # append to, and the file the link shares is left as it was
            content = Path(path).read_bytes() if os.path.exists(path) else b""
            atomic_write(Path(path), lambda tmp: tmp.write_bytes(content))
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path) as file:
                header = file.readline().strip()
            self.metrics_keys = sorted(header.split(",")) if header else []


class AppendingCSVLogger(CSVLogger):
    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar for training epochs, without a second bar flashing for each validation pass."""

    def init_validation_tqdm(self):
        bar = super().init_validation_tqdm()
        bar.disable = True
        return bar


class quiet_lightning:
    """Silence Lightning's start-up chatter (GPU available, LOCAL_RANK, tips) that buries our output."""

    def __init__(self, mlflow: bool = False) -> None:
        self.mlflow = mlflow  # MLflow logs too: its database's set-up lines are quietened as well

    def __enter__(self):
        self.levels = {}
        for name, level in (("lightning.pytorch.utilities.rank_zero", logging.WARNING),
                            ("lightning.pytorch.accelerators.cuda", logging.WARNING),
                            ("lightning.fabric.utilities.seed", logging.WARNING),
                            ("lightning.pytorch.trainer.connectors.signal_connector", logging.WARNING),
                            ("lightning.pytorch.loggers.mlflow", logging.ERROR),  # "Experiment ... Creating it."
                            ("mlflow", logging.WARNING), ("alembic", logging.WARNING)):  # its database's set-up
            if name == "mlflow" and self.mlflow:
                import mlflow  # noqa: F401  (it sets its loggers' levels on import: import it before lowering them)
            logger = logging.getLogger(name)
            self.levels[name] = logger.level
            logger.setLevel(level)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
        return self

    def __exit__(self, *exc):
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        self.warnings.__exit__(*exc)
        return False
