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
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from .accel import (
    choose_precision,
    device_for,
    keep_freed_memory,
    skip_failing_nvml_check,
)
from .config import EVAL_FIELDS, LAUNCH, EvalSettings, RunConfig
from .config_files import TrainConfig, check_train, read_train_config
from .data import ARRAYS, describe_source
from .datasets import RUN_ARRAYS, keep_run_arrays, read_run_arrays
from .distributed import (
    check_launch,
    end_process_group,
    local_rank,
    process_rank,
    share_cpu_threads,
)
from .errors import AelabError, Interrupted, eval_command, opt, resume_command
from .evaluation import measure
from .families import Family, families_with, family_of, model_settings
from .lock import RunLock
from .models import create_model, get_entry, resolve_params
from .outputs import umask
from .overwrite import NEW, check_out_folder, remove_leftovers, swap_in
from .progress import Progress, reporting, resolve
from .runs import Run, load_state, write_json
from .threads import fixed_threads
from .trainer import Fitted, check_loggers, lightning_fit
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
    family: Family
    resume: bool = False
    replace: bool = False  # --overwrite of an existing run: train beside it, swap at the end
    changes: list[str] = field(default_factory=list)  # settings a resume changes, for the log


def train(
    model: str | None = None,
    *,
    data: Any = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress = "auto",
    accelerator: str = "auto",
    callbacks: list[L.Callback] | None = None,
    evaluate_test: bool = True,
    config: TrainConfig | dict[str, Any] | str | Path | None = None,
    **settings: Any,
) -> Run:
    """Train ``model`` (a registered name) and evaluate it; returns the :class:`~aelab.Run`.

    ``data``: a dataset name (default ``mnist-sample``), a folder, or arrays ``x_train`` /
    ``(x_train, x_test)`` (see :func:`aelab.data.resolve_data`). ``out``: the run folder; ``None``
    trains into a fresh temporary folder. ``settings``: any setting of the model's family (its
    class, e.g. :class:`~aelab.settings.VAESettings`; :func:`aelab.model_settings` gives the model's
    defaults: ``epochs``, ``lr``, ``noise``, ...), any :class:`~aelab.EvalSettings` field (what
    the evaluation after training measures: ``bounds=False``, ...) and any parameter of the model,
    by name; another family's setting is an :class:`~aelab.UnknownSetting`. ``resume`` continues
    the run in ``out`` (only ``epochs`` and the launch settings may change: ``devices``,
    ``num_nodes``, ``strategy``, ``max_minutes``, ``threads``, ``logger``); ``overwrite``
    replaces the run in ``out`` once the new one is done.
    ``progress``: "bar" (a progress bar), "epoch" (one line per epoch and per evaluation stage,
    as a log file wants), None (quiet), or "auto": "bar" on a terminal, else "epoch".
    ``config``: a ``.toml``/``.json`` file (or dict) with the same things by section (``model``,
    ``data``/``data_dir``, ``[train]``, ``[eval]``, ``[params]``; :func:`aelab.settings.read_train_config`);
    a run's config.json trains that run again. Arguments given here override the file.
    ``callbacks`` (Lightning callbacks) join aelab's own. ``evaluate_test=False`` skips the
    test-set evaluation (no metrics.json or figures: a tuning trial must not see the test split);
    ``aelab.evaluate(run)`` does it later.

    ``devices``/``num_nodes``/``strategy`` train in several processes (:mod:`aelab.distributed`):
    every process calls ``train``; the main one writes the run and the others return its
    :class:`~aelab.Run` without writing (``aelab.distributed.is_main_process()`` tells them apart).
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
                swap_in(folder, plan_.out)
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
        raise TrainingDiverged(
            f"{diverged}; kept and evaluated the last finite weights in {plan_.out} (lower {opt('lr')})"
        )
    return Run(plan_.out)


def _from_config(
    file: TrainConfig, model: str | None, data: Any, resume: bool, settings: dict[str, Any]
) -> tuple[str | None, Any, dict[str, Any]]:
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
                raise AelabError(
                    f"{file.source}: its data_dir {data} "
                    f"{'is not a folder' if data.exists() else 'does not exist'}; edit the file or "
                    f"give the data ({opt('data_dir')})"
                )
        elif file.data == ARRAYS:
            kept = Path(file.folder or ".") / RUN_ARRAYS
            if not kept.is_file():
                raise AelabError(
                    f"{file.source} was trained on arrays given to aelab.train and no {RUN_ARRAYS} is "
                    "beside it; pass them again (data=...)"
                )
            data = read_run_arrays(kept)
        else:
            data = file.data
    model = model or file.model
    if model and not file.model:  # the file's [train] read against the model named here
        check_train(file.train, model, file.source)
    return model, data, {**file.train, **file.eval, **file.params, **settings}


def _train_helper(
    model: str | None,
    data: Any,
    out: str | Path | None,
    resume: bool,
    accelerator: str,
    callbacks: list[L.Callback] | None,
    settings: dict[str, Any],
) -> Run:
    """A process other than the main one in a multi-process run: the same plan, then its share of
    the training, writing nothing (the main process has checked and locked the run folder, and
    writes it). Its log lines would repeat the main process's: they are kept quiet."""
    logging.getLogger("aelab").setLevel(logging.WARNING)
    out = Path(out) if out is not None else Path(tempfile.gettempdir()) / "aelab-run-helper"  # rank 0 names the folder
    plan_ = plan(model, data, out, resume, False, accelerator, settings, main=False)
    fit(plan_, out, None, callbacks or [], evaluate_test=False, main=False)
    return Run(out)


def plan(
    model: str | None,
    data: Any,
    out: Path,
    resume: bool,
    overwrite: bool,
    accelerator: str,
    settings: dict[str, Any],
    main: bool = True,
) -> Plan:
    """Check everything :func:`train` needs and settle it; writes nothing. ``main=False``: a helper
    process of a multi-process run, which leaves the run folder to the main process."""
    replace = check_out_folder(out, resume, overwrite, data_dir=describe_source(data)[1]) if main else False
    if resume:
        config, changes = _resume_config(model, data, out, settings)
        explicit = set()
    else:
        if not model:
            raise AelabError("name a model to train (see `aelab models`)")
        entry = get_entry(model)
        given, params = split_settings(entry.name, settings)
        resolve_params(entry.name, **params)  # unknown names are refused before data are loaded
        name, data_dir = describe_source(data)
        config = RunConfig(
            entry.name,
            {},
            model_settings(entry.name, **given),
            name,
            data_dir,
            user_params=tuple(sorted(params)),
            aelab_version=__version__,
        )
        changes, explicit = [], set(given)
    family = family_of(config.model)
    family.check(config.model, config.train, explicit)  # settings first: they cost nothing to check
    check_loggers(config.train)
    if resume:
        data_ = family.run_data(config, data if config.data == ARRAYS else None)
    else:
        data_ = family.load_data(config, data, params)
    family.check_data(config, data_)
    device = device_for(accelerator)
    check_launch(config.train.devices, config.train.num_nodes, device)
    share_cpu_threads(config.train.devices, device)
    precision = choose_precision(config.train.precision, device)
    config.train = family.on_device(config.train.updated(precision=precision), device)
    L.seed_everything(config.train.seed, verbose=False)  # before the model: --seed fixes its initial weights too
    net = create_model(config.model, **config.params)  # bad parameter values fail here
    if resume:
        load_state(net, Run(out).checkpoint_state(Run(out).last_checkpoint), Run(out).last_checkpoint)
    else:
        family.initialise(net, config.train)
    return Plan(out, config, data_, net, device, family, resume, replace, changes)


def split_settings(model: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of :func:`train` as the model's family's settings and the rest (the
    model's parameters); another family's setting is refused, naming the settings this one has."""
    names = family_of(model).settings.names()
    given = {k: v for k, v in arguments.items() if k in names}
    params = {k: v for k, v in arguments.items() if k not in names}
    other = next((k for k in params if families_with(k)), None)
    if other is not None:
        model_settings(model, **{other: params[other]})  # raises UnknownSetting
    return given, params


def _resume_config(model: str | None, data: Any, out: Path, arguments: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """The run's own config with the one change a resume may make (more epochs), after refusing
    any other change: a resumed run continues as it was set up."""
    run = Run(out)
    config = run.config
    launch_flags = [opt(k) for k in LAUNCH]
    if model and get_entry(model).name != config.model:
        raise AelabError(f"{opt('resume')}: {out} trained {config.model}, not {model}")
    given, params = split_settings(config.model, arguments)
    if not run.last_checkpoint.is_file():
        raise AelabError(f"{opt('resume')}: {out} has no checkpoints/last.ckpt to continue from")
    done = run.epochs_done()
    current = {**config.params, **config.train.to_json(), "data": config.data}
    requested = {
        **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()},
        **{k: v for k, v in given.items() if k != "epochs" and k not in LAUNCH and v != "auto"},
    }
    if data is not None:
        requested["data"] = describe_source(data)[0]
    changed = sorted(k for k, v in requested.items() if current.get(k) != v)
    if changed:
        key = changed[0]
        raise AelabError(
            f"{opt('resume')} continues {out} as it was set up and cannot change {key} ({current.get(key)} -> "
            f"{requested[key]}); only {opt('epochs')} (and {', '.join(launch_flags)}) can change. "
            "Train a new run for other settings"
        )
    epochs = given.get("epochs", config.train.epochs)
    if epochs <= done:
        raise AelabError(
            f"{opt('resume')}: {out} has trained {done} epoch(s) already; ask for more with {opt('epochs', 'N')}, N > {done}"
        )
    changes = [f"epochs {config.train.epochs} -> {epochs}"] if epochs != config.train.epochs else []
    launch = {k: given[k] for k in LAUNCH if k in given and given[k] != getattr(config.train, k)}
    changes += [f"{k} {getattr(config.train, k)} -> {v}" for k, v in launch.items()]
    config.train = config.train.updated(epochs=epochs, **launch)
    if config.data == ARRAYS and data is None:
        raise AelabError(
            f"{opt('resume')}: {out} was trained on arrays passed to aelab.train; pass them again (data=...)"
        )
    return config, changes


def fit(
    plan_: Plan,
    folder: Path,
    progress: str | None,
    extra_callbacks: list[L.Callback],
    evaluate_test: bool = True,
    main: bool = True,
    evaluation: EvalSettings | None = None,
) -> str | None:
    """Fit into ``folder``, keep the best (or last finite) weights, evaluate; ``progress``: "bar",
    "epoch" or None (resolved). Returns why training stopped early on a non-finite loss, or None.
    ``main=False`` (a helper process of a multi-process run) trains its share and writes nothing:
    no config, logs, figures or weights."""
    run, family, settings = Run(folder), plan_.family, plan_.config.train
    if main:
        record_start(plan_, run, keep_arrays=evaluate_test)
    # on a GPU the data live on it, and batches are slices there (each process on its own GPU)
    device = torch.device("cuda", local_rank()) if plan_.device == "cuda" else None
    batches = family.batches(plan_.data, plan_.model, settings, device)
    callbacks = (family.callbacks(run, plan_.model, plan_.data, settings, batches[1]) if main else []) + extra_callbacks
    fitted = lightning_fit(
        family.build_system(plan_.model, settings),
        batches,
        settings,
        plan_.device,
        run,
        callbacks=callbacks,
        item=family.item,
        resume=plan_.resume,
        out=plan_.out,
        progress=progress,
        main=main,
    )
    if settings.devices * settings.num_nodes > 1:
        end_process_group()  # the rest is the main process's alone (metrics would otherwise wait for the others)
    if not main:
        return fitted.diverged
    record_history(plan_, run, fitted)
    model = keep_best_weights(plan_, run, fitted)
    if evaluate_test:
        evaluate_trained(plan_, run, model, fitted.diverged, progress, evaluation or EvalSettings())
    return fitted.diverged


def record_start(plan_: Plan, run: Run, keep_arrays: bool) -> None:
    """config.json first (what is being trained), and arrays handed to train() beside it (the
    run's tools, encode_split, probe, latent, read them later)."""
    write_json(run.config_path, plan_.config.to_json())
    if plan_.config.data == ARRAYS and keep_arrays:
        keep_run_arrays(run.path, plan_.data)


def record_history(plan_: Plan, run: Run, fitted: Fitted) -> None:
    """history.json: a row per epoch, and how the thread count went (a change in an earlier part
    of a resumed run counts too); an interrupted fit then stops here, its epochs kept."""
    threads = fitted.threads
    if plan_.resume and run.threads:
        threads = {**threads, "changed": threads["changed"] or bool(run.threads.get("changed"))}
    write_json(run.history_path, {"epochs": fitted.history.epochs, "threads": threads})
    if fitted.interrupted_in and not fitted.diverged:
        raise Interrupted(
            f"training interrupted in epoch {fitted.interrupted_in}; the finished epochs are kept: "
            f"continue with {resume_command(plan_.out)}"
        )


def keep_best_weights(plan_: Plan, run: Run, fitted: Fitted) -> torch.nn.Module:
    """The model with the best checkpoint's weights (the last finite ones after a non-finite
    loss), on the CPU, saved as the run's model.safetensors."""
    model = plan_.model.cpu().to(memory_format=torch.contiguous_format)
    if fitted.diverged:
        load_state(model, fitted.finite.last_finite(model), run.path)
    else:
        best = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
        load_state(model, run.checkpoint_state(best), best)
    run.save_weights(model)
    return model.eval()


def evaluate_trained(
    plan_: Plan, run: Run, model: torch.nn.Module, diverged: str | None, progress: str | None, options: EvalSettings
) -> None:
    """The test-set evaluation of the model in hand, on the data in hand (at --threads where fixed)."""
    settings = plan_.config.train
    with fixed_threads(settings.threads if plan_.device == "cpu" else None):
        try:
            measure(run, plan_.config, model, plan_.data, stopped=diverged, progress=progress, options=options)
        except KeyboardInterrupt:
            raise Interrupted(
                f"evaluation interrupted; the trained run is kept: measure it with {eval_command(plan_.out)}"
            ) from None
