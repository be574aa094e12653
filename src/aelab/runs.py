"""The run folder: everything a training run leaves behind, and loading it back safely.

    RUN/config.json           model name and parameters, training settings, data, seed
    RUN/model.safetensors     the best weights (safetensors: loading runs no code from the file)
    RUN/checkpoints/          Lightning's best.ckpt and last.ckpt, for --resume (read weights-only)
    RUN/metrics.json          what `aelab eval` measured
    RUN/history.json          loss and learning rate per epoch
    RUN/logs/                 TensorBoard and CSV logs
    RUN/*.png                 figures
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import AelabError
from .registry import create_model, get_entry


class Run:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    weights_path = property(lambda self: self.path / "model.safetensors")
    metrics_path = property(lambda self: self.path / "metrics.json")
    history_path = property(lambda self: self.path / "history.json")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.ckpt")

    def is_run(self) -> bool:
        return self.config_path.is_file()

    # -------------------------------------------------------------- files

    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise AelabError(f"{path} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AelabError(f"{path} is damaged ({error})") from None
        if not isinstance(data, dict):
            raise AelabError(f"{path} is damaged (expected a JSON object)")
        return data

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))

    def config(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise AelabError(f"run folder {self.path} does not exist")
        if not self.is_run():
            raise AelabError(f"{self.path} is not an aelab run folder (no config.json)")
        config = self.read_json(self.config_path)
        for key in ("model", "params", "train"):
            if key not in config:
                raise AelabError(f"{self.config_path} is damaged (no {key!r})")
        if not isinstance(config["params"], dict):
            raise AelabError(f"{self.config_path} is damaged ('params' is not an object)")
        entry = get_entry(config["model"])  # an unknown model name is refused here, with the list
        config["params"] = {**entry.added_later, **config["params"]}  # a run saved before a parameter existed
        return config

    # -------------------------------------------------------------- weights

    def build_model(self) -> torch.nn.Module:
        config = self.config()
        return create_model(config["model"], **config["params"])

    def save_weights(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        atomic_write(self.weights_path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))

    def load_model(self) -> torch.nn.Module:
        """The trained model, in eval mode, on the CPU."""
        model = self.build_model()
        if not self.weights_path.is_file():
            hint = (" (training was interrupted: continue it with `aelab train --resume --out "
                    f"{self.path}`)") if self.last_checkpoint.is_file() else ""
            raise AelabError(f"{self.weights_path} is missing{hint}")
        try:
            state = load_file(str(self.weights_path))
        except (SafetensorError, OSError, ValueError) as error:
            raise AelabError(f"{self.weights_path} is damaged ({error})") from None
        load_state(model, state, self.weights_path)
        return model.eval()

    def checkpoint_state(self, path: Path) -> dict[str, torch.Tensor]:
        """The model weights inside a Lightning checkpoint, read with ``weights_only=True``."""
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint["state_dict"]
        except FileNotFoundError:
            raise AelabError(f"checkpoint {path} is missing") from None
        except Exception as error:  # unpickling errors come in many types
            raise AelabError(f"checkpoint {path} is damaged ({type(error).__name__})") from None
        return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[:2]
        raise AelabError(f"{source} does not fit the model in config.json ({' '.join(first)})") from None


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def prepare_out(path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber: an existing run needs --resume or --overwrite, other files need --overwrite."""
    if path.exists() and not path.is_dir():
        raise AelabError(f"--out {path} is a file, not a folder")
    if resume:
        return
    if path.is_dir() and any(path.iterdir()):
        what = "an aelab run" if Run(path).is_run() else "files"
        if not overwrite:
            raise AelabError(f"--out {path} already holds {what}; pass --resume to continue it or --overwrite to replace it")


def clear_out(path: Path) -> None:
    """Empty ``path`` for --overwrite; called only once everything else has been validated."""
    if path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def load(run_dir: str | Path) -> torch.nn.Module:
    """``aelab.load(RUN_DIR)``: the trained model of a run folder, with ``encode`` and ``decode``."""
    return Run(run_dir).load_model()
