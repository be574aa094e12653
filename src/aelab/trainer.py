"""Lightning's part of :func:`aelab.training.fit`: :func:`lightning_fit` puts the pieces together
and runs the Trainer: the loggers (TensorBoard, CSV, MLflow, wandb), checkpoints on a time
interval, the run's own callbacks (logs recorded, weights kept finite), the per-epoch progress
line, the thread count's job, and Lightning kept quiet."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from .callbacks import EpochLines, History
from .distributed import lightning_strategy
from .errors import AelabError
from .families import NonFiniteLoss
from .outputs import atomic_write, created
from .progress import say
from .runs import Run
from .threads import WatchThreads, fixed_threads, job

log = logging.getLogger("aelab")


# the packages each logger needs beyond aelab's own, and the extra that installs them
LOGGER_PACKAGES = {"mlflow": ("mlflow", "aelab[mlflow]"), "wandb": ("wandb", "aelab[wandb]")}


def check_loggers(settings) -> None:
    """Each chosen logger's package is installed; one line otherwise, before anything is written
    (settings that write to TensorBoard check that it is a logger: ``AutoencoderSettings``)."""
    import importlib.util

    for name in settings.logger:
        if name in LOGGER_PACKAGES and importlib.util.find_spec(LOGGER_PACKAGES[name][0]) is None:
            module, extra = LOGGER_PACKAGES[name]
            raise AelabError(f"logger {name} needs the {module} package: pip install '{extra}' (or {module})")


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
            uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + urllib.parse.quote(
                str(logs.resolve() / "mlflow.db")
            )
            loggers.append(
                MLFlowLogger(
                    experiment_name="aelab",
                    run_name=run.path.name,
                    tracking_uri=uri,
                    artifact_location=(logs / "mlflow-artifacts").resolve().as_uri(),
                )
            )
        elif name == "wandb":
            import wandb
            from lightning.pytorch.loggers import WandbLogger

            logs.mkdir(parents=True, exist_ok=True)
            online = os.environ.get("WANDB_MODE", "").lower() == "online"
            logger = WandbLogger(
                save_dir=str(logs),
                project=os.environ.get("WANDB_PROJECT", "aelab"),
                name=run.path.name,
                offline=not online,
                settings=wandb.Settings(silent=True),
            )
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
        due = (
            trainer.world_size > 1
            or trainer.should_stop
            or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
            or time.monotonic() - self._written_at >= self.every_seconds
        )
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
        for name, level in (
            ("lightning.pytorch.utilities.rank_zero", logging.WARNING),
            ("lightning.pytorch.accelerators.cuda", logging.WARNING),
            ("lightning.fabric.utilities.seed", logging.WARNING),
            ("lightning.pytorch.trainer.connectors.signal_connector", logging.WARNING),
            ("lightning.pytorch.loggers.mlflow", logging.ERROR),  # "Experiment ... Creating it."
            ("mlflow", logging.WARNING),
            ("alembic", logging.WARNING),
        ):  # its database's set-up
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


@dataclass
class Fitted:
    """What a fit left: its epochs (``history``), the last finite weights (``finite``), why it
    stopped on a non-finite loss (or None), the epoch Ctrl-C interrupted (or None) and how its
    thread count went (:meth:`aelab.threads.Job.record`)."""

    history: History
    finite: FiniteWeights
    diverged: str | None
    interrupted_in: int | None
    threads: dict[str, Any]


def lightning_fit(
    system: L.LightningModule,
    batches: tuple[Any, Any],
    settings: Any,
    device: str,
    run: Run,
    *,
    callbacks: list[L.Callback],
    item: str,
    resume: bool,
    out: Path,
    progress: str | None,
    main: bool,
) -> Fitted:
    """Train ``system`` on ``batches`` (training, validation) with Lightning into ``run``:
    checkpoints each epoch (best and last), ``callbacks`` (the family's and the caller's) after
    aelab's own, the loggers and the progress the settings ask for, at the thread count the
    settings fix or the job chooses. ``main=False`` (a helper process) writes nothing."""
    train_batches, val_batches = batches
    processes = settings.devices * settings.num_nodes
    history, finite = History(), FiniteWeights()
    checkpoint = RunCheckpoint(
        dirpath=run.checkpoint_dir,
        filename="best",
        monitor=system.monitor,
        save_last=True,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    # History first: it records at train-epoch end, just before the checkpoint is written; the
    # first three decide together across processes, the rest only write
    everything = [history, finite, checkpoint, *([RecordLogs(run.path), *callbacks] if main else callbacks)]
    steps = max(1, len(train_batches) // processes)  # an epoch's steps in each process
    if progress == "bar":
        everything.append(EpochProgressBar(refresh_rate=max(1, steps // 20)))
    elif progress == "epoch":
        everything.append(EpochLines(history, item, cpu=device == "cpu"))
    # the thread count: --threads (or an aelab.fixed_threads() around the call) fixes it; else all
    # threads, fewer only while other programs are measured busy (one process on the CPU alone)
    watched = device == "cpu" and processes == 1
    diverged = interrupted_in = None
    with (
        quiet_lightning(mlflow="mlflow" in settings.logger and main),
        fixed_threads(settings.threads if device == "cpu" else None),
        job(look=watched) as threads,
    ):
        if watched:
            everything.append(WatchThreads(threads))
        loggers = make_loggers(settings.logger, run) if main else []
        trainer = L.Trainer(
            max_epochs=settings.epochs,
            max_time=None if settings.max_minutes is None else {"minutes": settings.max_minutes},
            accelerator="cpu" if device == "cpu" else "gpu",
            devices=settings.devices,
            num_nodes=settings.num_nodes,
            strategy=lightning_strategy(settings.strategy, processes, not system.automatic_optimization),
            precision=settings.precision,
            callbacks=everything,
            logger=loggers or False,
            enable_progress_bar=progress == "bar",
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=steps,
        )
        sigint = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(
                system, train_batches, val_batches, ckpt_path=run.last_checkpoint if resume else None, weights_only=True
            )
        except NonFiniteLoss as error:
            diverged = str(error)
        except SystemExit:  # Lightning answers Ctrl-C by exiting (after its callbacks kept the finished epochs)
            if not trainer.interrupted:
                raise
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C while it shuts down
            finish_loggers(loggers, run.path, out)
    if trainer.interrupted and not diverged:
        interrupted_in = trainer.current_epoch + 1
    return Fitted(history, finite, diverged, interrupted_in, threads.record())
