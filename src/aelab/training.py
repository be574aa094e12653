"""`aelab train`: build the model, data and Lightning trainer; fit; keep the best weights; evaluate."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from . import __version__
from .accel import Precision, choose_precision, device_for, keep_freed_memory, skip_failing_nvml_check
from .callbacks import History, SampleGrid
from .data import TensorBatches, load_data, split_validation
from .errors import AelabError
from .evaluation import evaluate, noisy_copy, run_data
from .registry import create_model, get_entry, resolve_params
from .runs import Run, clear_out, load_state, prepare_out
from .systems import SYSTEMS


@dataclass
class TrainOptions:
    """Everything `aelab train` takes. ``None`` means: the model's registered default."""

    model: str | None
    out: Path
    data: str | None = "mnist-sample"
    data_dir: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    loss: str | None = None
    optimizer: str | None = None
    noise: float | None = None
    sparsity: float | None = None
    schedule: str | None = None
    kl_form: str | None = None
    kl_weight: float | None = None
    d_lr: float | None = None
    seed: int = 0
    precision: Precision = "auto"
    channels_last: bool | None = None
    early_stopping: bool = True
    patience: int = 10
    reduce_lr: bool = True
    lr_patience: int = 5
    val_fraction: float = 0.1
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    accelerator: str = "auto"


def _resolved_config(opts: TrainOptions) -> dict[str, Any]:
    """The run's config.json: from a previous run when resuming, else from the options."""
    run = Run(opts.out)
    if opts.resume:
        if not run.is_run():
            raise AelabError(f"--resume: {opts.out} holds no run to continue (no config.json)")
        config = run.config()
        if opts.model and opts.model != config["model"]:
            raise AelabError(f"--resume: {opts.out} trained {config['model']}, not {opts.model}")
        if not run.last_checkpoint.is_file():
            raise AelabError(f"--resume: {opts.out} has no checkpoints/last.ckpt to continue from")
        run.checkpoint_state(run.last_checkpoint)  # a damaged checkpoint fails here, in one line
        if opts.epochs:
            config["train"]["epochs"] = opts.epochs
        return config
    if not opts.model:
        raise AelabError("name a model to train (see `aelab models`)")
    entry = get_entry(opts.model)
    train = entry.train.updated(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, loss=opts.loss,
                                optimizer=opts.optimizer, noise=opts.noise, sparsity=opts.sparsity,
                                schedule=opts.schedule, kl_form=opts.kl_form, kl_weight=opts.kl_weight,
                                d_lr=opts.d_lr)
    if not 0 < opts.val_fraction < 1:
        raise AelabError(f"--val-fraction must lie between 0 and 1, got {opts.val_fraction}")
    return {
        "model": opts.model,
        "params": resolve_params(opts.model, **opts.params),
        "user_params": sorted(opts.params),
        "train": dataclasses.asdict(train),
        "data": opts.data if opts.data_dir is None else (opts.data or Path(opts.data_dir).name),
        "data_dir": None if opts.data_dir is None else str(Path(opts.data_dir).resolve()),
        "seed": opts.seed,
        "val_fraction": opts.val_fraction,
        "early_stopping_patience": opts.patience if opts.early_stopping else None,
        "lr_patience": opts.lr_patience if opts.reduce_lr else None,
        "aelab_version": __version__,
    }


def _fit_data_shape(config: dict[str, Any]):
    """Load the data; the model's input shape follows it unless the user set in_channels/in_size."""
    params, user = config["params"], set(config.get("user_params", []))
    if "input_shape" in config:  # resuming: the shape is settled
        return run_data(config)
    channels = params.get("in_channels") if "in_channels" in user else None
    size = params.get("in_size") if "in_size" in user or config["data_dir"] else None
    data = load_data(config["data"], config["data_dir"], channels=channels, size=size)
    c, h, _ = data.shape
    if "in_channels" in params:
        params["in_channels"] = c
    if "in_size" in params:
        params["in_size"] = h
    config["input_shape"] = [c, h, h]
    return data


def train(opts: TrainOptions, extra_callbacks: list[L.Callback] | None = None) -> dict[str, Any]:
    """Train a model into ``opts.out`` and evaluate it. Returns the metrics.

    ``extra_callbacks`` (Python API only) join aelab's own, e.g. to stop at a target quality.
    """
    out = Path(opts.out)
    prepare_out(out, opts.resume, opts.overwrite)
    keep_freed_memory()
    skip_failing_nvml_check()
    config = _resolved_config(opts)
    data = _fit_data_shape(config)  # bad data fails here, before anything is written
    L.seed_everything(config["seed"], verbose=False)  # before the model: --seed fixes its initial weights too
    model = create_model(config["model"], **config["params"])
    device = device_for(opts.accelerator)
    precision = choose_precision(opts.precision, device)
    channels_last = opts.channels_last if opts.channels_last is not None else device == "cpu"
    config.update(precision=precision, channels_last=channels_last)
    settings = config["train"]
    run = Run(out)
    if not opts.resume:
        clear_out(out) if opts.overwrite else out.mkdir(parents=True, exist_ok=True)
    run.write_json(run.config_path, config)

    train_x, val_x = split_validation(data.train, config["val_fraction"], seed=config["seed"])
    if device == "cuda":
        train_x, val_x = train_x.cuda(), val_x.cuda()
    val_inputs = noisy_copy(val_x.cpu(), settings["noise"]).to(val_x.device)
    train_batches = TensorBatches(train_x, batch_size=settings["batch_size"], shuffle=True, seed=config["seed"])
    val_batches = TensorBatches(val_inputs, val_x, batch_size=max(settings["batch_size"], 1000))

    system_class = SYSTEMS[get_entry(config["model"]).kind]
    system = system_class.from_settings(model, settings, config["lr_patience"], channels_last)
    history = History()
    # History first: it records at train-epoch end, just before the checkpoint is written
    callbacks = [history, ModelCheckpoint(dirpath=run.checkpoint_dir, filename="best", monitor=system.monitor,
                                          save_last=True, save_top_k=1, save_on_train_epoch_end=True,
                                          enable_version_counter=False)]
    if config["early_stopping_patience"] is not None and system.monitor:
        callbacks.append(EarlyStopping(monitor=system.monitor, patience=config["early_stopping_patience"]))
    if hasattr(model, "sample"):
        callbacks.append(SampleGrid(run.path / "samples"))
    callbacks += extra_callbacks or []
    if opts.progress:
        callbacks.append(EpochProgressBar(refresh_rate=max(1, len(train_batches) // 20)))
    loggers = [TensorBoardLogger(run.path / "logs", name="tensorboard", version=""),
               CSVLogger(run.path / "logs", name="csv", version="")]
    with quiet_lightning():
        trainer = L.Trainer(max_epochs=settings["epochs"], accelerator=device if device == "cpu" else "gpu", devices=1,
                            precision=precision, callbacks=callbacks, logger=loggers,
                            enable_progress_bar=opts.progress, enable_model_summary=False,
                            num_sanity_val_steps=0, log_every_n_steps=max(1, len(train_batches)))
        ckpt_path = run.last_checkpoint if opts.resume else None
        trainer.fit(system, train_batches, val_batches, ckpt_path=ckpt_path, weights_only=True)
    run.write_json(run.history_path, {"epochs": history.epochs})
    if trainer.interrupted:
        raise AelabError(f"training interrupted after epoch {trainer.current_epoch}; "
                         f"continue it with `aelab train --resume --out {out}`")
    best = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
    model = model.cpu().to(memory_format=torch.contiguous_format)
    load_state(model, run.checkpoint_state(best), best)
    run.save_weights(model)
    return evaluate(out, data)


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar for training epochs, without a second bar flashing for each validation pass."""

    def init_validation_tqdm(self):
        bar = super().init_validation_tqdm()
        bar.disable = True
        return bar


class quiet_lightning:
    """Silence Lightning's start-up chatter (GPU available, LOCAL_RANK, tips) that buries our output."""

    def __enter__(self):
        self.levels = {}
        for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                     "lightning.fabric.utilities.seed", "lightning.pytorch.trainer.connectors.signal_connector"):
            logger = logging.getLogger(name)
            self.levels[name] = logger.level
            logger.setLevel(logging.WARNING)
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
