"""The run folder: everything a training run leaves behind, and :class:`Run`, the Python handle on
the folder (its paths, config, metrics, history and weights; the lock; atomic JSON). Using the
trained model is :mod:`aelab.inference`'s.

    RUN/config.json           model name and parameters, training settings, data (aelab.config.RunConfig)
    RUN/model.safetensors     the best weights (safetensors: loading runs no code from the file)
    RUN/checkpoints/          Lightning's best.ckpt and last.ckpt, for --resume (read weights-only)
    RUN/metrics.json          what `aelab eval` measured
    RUN/history.json          loss and learning rate per epoch
    RUN/logs/                 TensorBoard and CSV logs
    RUN/*.png, RUN/samples/   figures

    run = aelab.Run("runs/seed1")
    run.metrics["test_rmse"]; run.history[-1]["val_loss"]; model = run.model
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import RunConfig
from .config_files import read_config
from .errors import AelabError, as_path, resume_command
from .lock import LOCK_NAME, RunLock
from .models import create_model
from .outputs import TEMPORARY, atomic_write, listening

MEASUREMENTS = (
    "test_",
    "train_",
    "val_",
    "pca_",
    "fd_",
    "fid",
    "rmse",
    "bits",
    "mean_",
    "code_size",
)  # metrics.json's numbers
MANIFEST = ".aelab-files.json"  # the files aelab wrote in this run folder: --overwrite replaces only these
# what aelab itself writes into a run folder (its top-level names)
RUN_LAYOUT = {
    "config.json",
    "model.safetensors",
    "metrics.json",
    "history.json",
    "checkpoints",
    "logs",
    "samples",
    "samples.txt",
    "activations",
    "anomaly",
    LOCK_NAME,
    MANIFEST,
}
# what the libraries aelab drives write in a run folder, by their own names (Lightning's loggers;
# its checkpoints are noted as written): recorded when aelab next writes a file, and at the end
LIBRARY_FILES = (
    "logs/tensorboard/events.out.tfevents.*",
    "logs/tensorboard/hparams.yaml",
    "logs/csv/metrics.csv",
    "logs/csv/hparams.yaml",
    "logs/mlflow.db",
    "logs/mlflow.db-journal",
    "logs/mlflow-artifacts/*",
    "logs/wandb/*",
)


def by_libraries(files: set[str]) -> set[str]:
    """The ``files`` (relative paths) named as the loggers name what they write."""
    return {f for f in files if any(fnmatch.fnmatch(f, pattern) for pattern in LIBRARY_FILES)}


def leftovers(files: set[str]) -> set[str]:
    """The ``files`` that are temporary files of aelab's, left by a killed write (never a result)."""
    return {f for f in files if TEMPORARY.match(Path(f).name)}


def files_in(folder: Path) -> set[str]:
    """Every file under ``folder`` as a relative path (the lock and the manifest aside)."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name not in (LOCK_NAME, MANIFEST)
    }


class Run:
    """A trained run folder: its config, metrics, history and weights (``model``, loaded once)."""

    def __init__(self, path: str | Path) -> None:
        if isinstance(path, torch.nn.Module):
            raise AelabError(
                f"expected a run folder (a path or aelab.Run), got a model ({type(path).__name__}); "
                "pass the folder it was trained in"
            )
        self.path = as_path(path, "a run folder")
        self._model: torch.nn.Module | None = None
        self._config: tuple[tuple[int, int], RunConfig] | None = None  # (config.json's mtime and size, it read)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @classmethod
    def of(cls, run: Run | str | Path) -> Run:
        """``run`` itself, or the run in the folder ``run``."""
        return run if isinstance(run, Run) else cls(run)

    config_path = property(lambda self: self.path / "config.json")
    weights_path = property(lambda self: self.path / "model.safetensors")
    metrics_path = property(lambda self: self.path / "metrics.json")
    history_path = property(lambda self: self.path / "history.json")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.ckpt")

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def sources(self, data: Any = None) -> list[Path]:
        """What a command reading this run (and ``data``) reads, which none of its outputs may be or
        lie inside: the run's config, weights, metrics, history, kept arrays and checkpoints, and the
        data (``data`` when it is a path, else the folder the run was trained on, if any)."""
        read = [
            self.config_path,
            self.weights_path,
            self.metrics_path,
            self.history_path,
            self.path / "data.npz",
            self.checkpoint_dir,
        ]
        if isinstance(data, (str, os.PathLike)):
            read.append(Path(data))
        elif data is None and self.is_run():
            folder = self.config.data_dir
            read += [Path(folder)] if folder else []
        return read

    # -------------------------------------------------------------- what aelab wrote here

    def written(self) -> set[str] | None:
        """The files aelab recorded writing in this folder (relative paths); None for a run written
        before runs kept the record."""
        path = self.path / MANIFEST
        if not path.is_file():
            return None
        files = read_json(path).get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise AelabError(f"{path} is damaged (expected files: a list of paths)")
        return set(files)

    def record(self, paths) -> None:
        """Add files aelab has written here (paths inside the folder, or relative to it) to the record."""
        relative = {(Path(p).relative_to(self.path) if Path(p).is_absolute() else Path(p)).as_posix() for p in paths}
        written = self.written() or set()
        if not relative <= written:
            write_json(self.path / MANIFEST, {"files": sorted(written | relative)})

    @contextmanager
    def recording(self):
        """Record each file aelab writes in the folder while the block runs, as it is written
        (:func:`aelab.outputs.created`), and the loggers' files by their names; a file anything
        else puts in the folder meanwhile stays off the record (and ``--overwrite`` then refuses)."""
        root = self.path.resolve()
        before = files_in(self.path)
        busy = False  # writing the record itself

        def note(path: Path) -> None:
            nonlocal busy
            path = path.resolve()
            if busy or not path.is_relative_to(root) or path.name in (LOCK_NAME, MANIFEST):
                return
            mine = [path.relative_to(root)] if path.is_file() else []  # a folder: the libraries wrote in it
            busy = True
            try:
                self.record([*mine, *by_libraries(files_in(self.path) - before)])
            finally:
                busy = False

        try:
            with listening(note):
                yield self
        finally:
            libraries = by_libraries(files_in(self.path) - before)
            if libraries and self.path.is_dir():
                self.record(libraries)

    def foreign_files(self) -> list[str]:
        """Files in the folder that aelab did not write, by its record (every file, for a folder
        without one); aelab's own temporary files, left by a killed write, are not foreign."""
        written = self.written() or set()
        files = files_in(self.path)
        foreign = files - written - leftovers(files)
        top = {p.name for p in self.path.iterdir() if p.is_dir() and p.name not in RUN_LAYOUT}
        return sorted(foreign | top)

    # -------------------------------------------------------------- what the folder holds

    @property
    def config(self) -> RunConfig:
        """config.json, validated (a damaged file is a one-line error naming the key); read once,
        and again only when the file changes (a resume writes it). Each access gives its own copy
        of the record, to change without changing the run's."""
        if not self.path.is_dir():
            raise AelabError(f"run folder {self.path} does not exist")
        if not self.is_run():
            raise AelabError(f"{self.path} is not an aelab run folder (no config.json)")
        stat = self.config_path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        if self._config is None or self._config[0] != key:
            self._config = (key, read_config(read_json(self.config_path), self.config_path))
        return dataclasses.replace(self._config[1])

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json, checked: a measurement (test_*, train_*, pca_*, fd_*, ...) is a number or
        null (a damaged one is a one-line error naming the key); its *_note and *_id keys are words."""
        metrics = read_json(self.metrics_path)
        for key, value in metrics.items():
            measured = key.startswith(MEASUREMENTS) and not key.endswith(("_note", "_id"))
            if measured and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise AelabError(f"{self.metrics_path} is damaged ({key}: expected a number, got {str(value)[:40]!r})")
        return metrics

    @property
    def history(self) -> list[dict[str, float | None]]:
        """One row per epoch: losses, learning rate, training images/s."""
        if not self.history_path.is_file():
            return []
        rows = read_json(self.history_path).get("epochs")
        if not isinstance(rows, list) or not all(
            isinstance(row, dict)
            and all(
                isinstance(k, str) and (v is None or isinstance(v, (int, float)) and not isinstance(v, bool))
                for k, v in row.items()
            )
            and isinstance(row.get("epoch"), int)
            for row in rows
        ):
            raise AelabError(f"{self.history_path} is damaged (expected epochs: a list of rows of numbers)")
        return rows

    @property
    def threads(self) -> dict[str, Any] | None:
        """How training set its thread count (history.json's ``threads``): ``most`` threads,
        ``fixed`` (``--threads``), and whether it ``changed`` mid-run (other programs measured
        busy: the run need not repeat bit for bit). None for a run written before it was kept."""
        record = read_json(self.history_path).get("threads") if self.history_path.is_file() else None
        return record if isinstance(record, dict) else None

    def steps_done(self) -> int | None:
        """Optimiser steps the run took: history.json's last epoch's step, or for a run written
        before history kept steps, the last step its CSV log recorded plus one (None without either)."""
        if self.history_path.is_file():
            rows = self.history
            if rows and isinstance(rows[-1].get("step"), int):
                return rows[-1]["step"]
        log = self.path / "logs" / "csv" / "metrics.csv"
        if not log.is_file():
            return None
        with open(log, newline="") as file:
            steps = [int(row["step"]) for row in csv.DictReader(file) if (row.get("step") or "").isdigit()]
        return max(steps) + 1 if steps else None

    def epochs_done(self) -> int:
        """Epochs finished in last.ckpt (0 without one)."""
        if not self.last_checkpoint.is_file():
            return 0
        epoch = _load_checkpoint(self.last_checkpoint).get("epoch")
        if not isinstance(epoch, int):
            raise AelabError(f"checkpoint {self.last_checkpoint} is damaged (no epoch)")
        return epoch + 1

    # -------------------------------------------------------------- weights

    @property
    def model(self) -> torch.nn.Module:
        """The trained model, in eval mode, on the CPU (loaded once)."""
        if self._model is None:
            self._model = self.load_model()
        return self._model

    def build_model(self) -> torch.nn.Module:
        config = self.config
        return create_model(config.model, **config.params)

    def save_weights(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        atomic_write(self.weights_path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))

    def load_model(self) -> torch.nn.Module:
        model = self.build_model()
        if not self.weights_path.is_file():
            training = RunLock(self.path).holder()
            if training:
                raise AelabError(
                    f"the run in {self.path} is still training (process {training}); its weights are "
                    "written when it finishes"
                )
            hint = (
                f" (training was interrupted: continue it with {resume_command(self.path)})"
                if self.last_checkpoint.is_file()
                else ""
            )
            raise AelabError(f"{self.weights_path} is missing{hint}")
        try:
            state = load_file(str(self.weights_path))
        except (SafetensorError, OSError, ValueError) as error:
            raise AelabError(f"{self.weights_path} is damaged ({error})") from None
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise AelabError(f"{self.weights_path} holds non-finite weights ({bad[0]}): the training diverged")
        load_state(model, state, self.weights_path)
        return model.eval()

    def checkpoint_state(self, path: Path) -> dict[str, torch.Tensor]:
        """The model weights inside a Lightning checkpoint, read with ``weights_only=True``."""
        state = _load_checkpoint(path).get("state_dict")
        if not isinstance(state, dict):
            raise AelabError(f"checkpoint {path} is damaged (no state_dict)")
        return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AelabError(f"checkpoint {path} is missing") from None
    except Exception as error:  # unpickling errors come in many types
        raise AelabError(f"checkpoint {path} is damaged ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise AelabError(f"checkpoint {path} is damaged (not a checkpoint)")
    return checkpoint


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[:2]
        raise AelabError(f"{source} does not fit the model in config.json ({' '.join(first)})") from None


# ------------------------------------------------------------------------------ files


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AelabError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise AelabError(f"{path} is damaged ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise AelabError(f"{path} is damaged (expected a JSON object)")
    return data


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write valid JSON atomically: a crash leaves the old file or the new one, never half of one."""
    text = json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def load(run_dir: str | Path) -> torch.nn.Module:
    """``aelab.load(RUN_DIR)``: the trained model of a run folder, with ``encode`` and ``decode``."""
    return Run(run_dir).load_model()
