"""The run folder: everything a training run leaves behind, and :class:`Run`, the Python handle on it.

    RUN/config.json           model name and parameters, training settings, data (aelab.config.RunConfig)
    RUN/model.safetensors     the best weights (safetensors: loading runs no code from the file)
    RUN/checkpoints/          Lightning's best.ckpt and last.ckpt, for --resume (read weights-only)
    RUN/metrics.json          what `aelab eval` measured
    RUN/history.json          loss and learning rate per epoch
    RUN/logs/                 TensorBoard and CSV logs
    RUN/*.png, RUN/samples/   figures

    run = aelab.Run("runs/seed1")
    run.metrics["test_rmse"]; run.history[-1]["val_loss"]
    x_hat = run.reconstruct(x)            # x: (N, H, W) or (N, C, H, W), uint8 or float in [0, 1]
    z = run.encode(x); images = run.decode(z); run.sample(16)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import RunConfig
from .errors import AelabError
from .registry import create_model

LOCK_NAME = ".aelab.lock"
# what aelab itself writes into a run folder: --overwrite replaces a folder holding only these
RUN_LAYOUT = {"config.json", "model.safetensors", "metrics.json", "history.json", "checkpoints", "logs",
              "samples", "samples.txt", "activations", "anomaly", LOCK_NAME}  # anomaly: `aelab anomaly RUN`'s maps


class Run:
    """A trained run folder: its config, metrics, history and model, and the model's uses."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._model: torch.nn.Module | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    config_path = property(lambda self: self.path / "config.json")
    weights_path = property(lambda self: self.path / "model.safetensors")
    metrics_path = property(lambda self: self.path / "metrics.json")
    history_path = property(lambda self: self.path / "history.json")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.ckpt")

    def is_run(self) -> bool:
        return self.config_path.is_file()

    # -------------------------------------------------------------- what the folder holds

    @property
    def config(self) -> RunConfig:
        """config.json, validated (a damaged file is a one-line error naming the key)."""
        if not self.path.is_dir():
            raise AelabError(f"run folder {self.path} does not exist")
        if not self.is_run():
            raise AelabError(f"{self.path} is not an aelab run folder (no config.json)")
        return RunConfig.from_json(read_json(self.config_path), self.config_path)

    @property
    def metrics(self) -> dict[str, Any]:
        return read_json(self.metrics_path)

    @property
    def history(self) -> list[dict[str, float | None]]:
        """One row per epoch: losses, learning rate, training images/s."""
        if not self.history_path.is_file():
            return []
        rows = read_json(self.history_path).get("epochs")
        if not isinstance(rows, list) or not all(
                isinstance(row, dict) and all(isinstance(k, str) and (v is None or isinstance(v, (int, float))
                                                                      and not isinstance(v, bool))
                                              for k, v in row.items()) and isinstance(row.get("epoch"), int)
                for row in rows):
            raise AelabError(f"{self.history_path} is damaged (expected epochs: a list of rows of numbers)")
        return rows

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
            hint = (" (training was interrupted: continue it with `aelab train --resume --out "
                    f"{self.path}`)") if self.last_checkpoint.is_file() else ""
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

    # -------------------------------------------------------------- using the model

    def data(self, data: Any = None):
        """The run's dataset (or ``data`` instead: a name, folder or arrays) in its model's input shape."""
        from .evaluation import run_data

        return run_data(self.config, data)

    def evaluate(self, data: Any = None) -> dict[str, Any]:
        """Measure on the test split of the run's dataset, writing metrics.json and the figures
        again; or on ``data`` (a name, folder or arrays), returning the metrics and writing nothing,
        so the run's own record stays as it was."""
        from .evaluation import evaluate

        if data is None:
            return evaluate(self.path)
        return evaluate(self.path, self.data(data), write_figures=False, write=False)

    def reconstruct(self, x: Any, precision: str = "32", labels: Any = None) -> torch.Tensor:
        """Reconstructions (N, C, H, W) of images ``x``: (N, H, W) or (N, C, H, W), uint8 or in [0, 1]
        (a conditional model, such as cvae, also takes their ``labels``: one int or one per image)."""
        return self._through(x, precision, labels)[0]

    def encode(self, x: Any, precision: str = "32", labels: Any = None) -> torch.Tensor:
        """Codes of images ``x`` (see :meth:`reconstruct`)."""
        return self._through(x, precision, labels)[1]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: Any = None) -> torch.Tensor:
        from .latent import need

        need(self.model, "decode", "decoding needs an autoencoder (a gan generates from latent points: sample)")
        return self.model.decode(torch.as_tensor(z, dtype=torch.float32), labels)

    def sample(self, n: int = 16, seed: int = 0, label: int | None = None) -> torch.Tensor:
        """``n`` new images from a generative run's prior (a cvae's: of class ``label``)."""
        from .latent import samples

        return samples(self.model, n, seed, label)

    @property
    def encoder(self) -> torch.nn.Module:
        """The trained encoder as a plain module (images -> codes) to use in another network; it
        shares the run's weights."""
        from .latent import need

        need(self.model, "encoder_part", "a gan has no encoder")
        return self.model.encoder_part()

    @property
    def decoder(self) -> torch.nn.Module:
        """The trained decoder as a plain module (codes -> images in [0, 1])."""
        from .latent import need

        need(self.model, "decoder_part", "a gan has no decoder: its generator is run.model.generator")
        return self.model.decoder_part()

    def probe(self, data: Any = None, write: bool = True) -> dict[str, Any]:
        """How good the run's codes are as features: a linear classifier fitted on the training
        codes, scored on the test codes, beside the same probe on PCA codes of the same size and on
        raw pixels (:func:`aelab.probe.probe_run`). Adds the numbers to metrics.json (``write``,
        for the run's own data only)."""
        from .probe import probe_run

        result = probe_run(self, self.data(data))
        if write and data is None and self.metrics_path.is_file():
            write_json(self.metrics_path, {**self.metrics, **result})
        return result

    def activation_epochs(self) -> list[int]:
        """The epochs whose layer outputs ``log_activations`` saved (RUN/activations/epoch_NNN.npz)."""
        stems = (p.stem.removeprefix("epoch_") for p in (self.path / "activations").glob("epoch_*.npz"))
        return sorted(int(stem) for stem in stems if stem.isdigit())

    def activations(self, epoch: int | None = None) -> dict[str, np.ndarray]:
        """The layer outputs saved by ``log_activations`` after ``epoch`` (default: the last saved):
        ``inputs`` (the fixed validation images) and one array per layer, by its name in the model."""
        epochs = self.activation_epochs()
        if not epochs:
            raise AelabError(f"{self.path} has no saved activations: train it with --log-activations")
        epoch = max(epochs) if epoch is None else epoch
        if epoch not in epochs:
            raise AelabError(f"no activations saved for epoch {epoch}; saved: epochs {min(epochs)} to {max(epochs)}")
        path = self.path / "activations" / f"epoch_{epoch:03d}.npz"
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return {name: arrays[name] for name in arrays.files}
        except (OSError, ValueError, EOFError) as error:
            raise AelabError(f"{path} is damaged ({error})") from None

    def activation_figure(self, out: str | Path, epoch: int | None = None, layer: str | None = None,
                          image: int = 0) -> Path:
        """Draw one layer's saved output for one of the fixed images as a PNG (default layer: the
        first convolutional one)."""
        from . import figures

        arrays = self.activations(epoch)
        layers = [name for name in arrays if name != "inputs"]
        if layer is None:
            layer = next((n for n in layers if arrays[n].ndim == 4 and arrays[n].shape[1] > 1), layers[0])
        if layer not in arrays or layer == "inputs":
            raise AelabError(f"no layer {layer!r} among the saved activations; the layers: {', '.join(layers)}"[:400])
        count = len(arrays["inputs"])
        if not 0 <= image < count:
            raise AelabError(f"--image must be 0 to {count - 1} (the saved batch has {count} images), got {image}")
        epoch = max(self.activation_epochs()) if epoch is None else epoch
        return figures.feature_maps(arrays["inputs"][image], arrays[layer][image], Path(out),
                                    f"{self.config.model}, epoch {epoch}: {layer} {tuple(arrays[layer].shape[1:])}")

    def generate(self, prompt: str, length: int = 400, temperature: float = 1.0, seed: int = 0) -> str:
        """A text run's continuation of ``prompt``: ``length`` characters drawn at ``temperature``
        (0: always the likeliest; higher: more surprising). A fixed ``seed`` repeats the text."""
        from .latent import need
        from .text import decode, encode

        need(self.model, "continue_text", "only text models (char-lstm) generate text")
        if not isinstance(prompt, str) or not prompt:
            raise AelabError("give a prompt: at least one character of the model's alphabet")
        if not isinstance(length, int) or length < 1:
            raise AelabError(f"length must be a positive integer, got {length!r}")
        indices = encode(prompt, self.model.alphabet)
        drawn = self.model.continue_text(indices, length, temperature, torch.Generator().manual_seed(seed))
        return decode(drawn, self.model.alphabet)

    def manifold(self, grid: int = 15, label: int | None = None) -> torch.Tensor:
        """A 2-D generative run's decoded prior quantiles, ``grid`` x ``grid`` images (a cvae's, of
        class ``label``)."""
        from .latent import manifold

        return manifold(self.model, grid, label=label)

    def latent(self, data: Any = None, limit: int = 5000):
        """Test-set codes in 2-D (principal components where the code is larger), their labels
        (or None) and the axes' names."""
        from .latent import codes_2d

        return codes_2d(self.model, self.data(data), limit)

    def _through(self, x: Any, precision: str, labels: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        from .accel import choose_precision
        from .latent import need
        from .metrics import reconstruct

        need(self.model, "encode", "a gan has no encoder")
        x = self.model.check_images(x)
        labels = self.model.check_labels(labels, len(x))
        return reconstruct(self.model, x, precision=choose_precision(precision, "cpu"),
                           labels=labels[0].cpu() if labels else None)

    def reconstruct_files(self, images: list[str | Path], out: str | Path, noise: float = 0.0,
                          precision: str = "auto", mode: str = "reconstruct", label: int | None = None) -> list[Path]:
        """Reconstruct image files (``mode="denoise"``: denoise them, after adding ``noise`` if
        given, to try the model). Writes ``out/NAME_recon.png`` (``NAME_denoised.png``) for each
        and ``out/reconstruct.png`` (``denoise.png``), inputs over outputs; returns the files."""
        suffix = {"reconstruct": "recon", "denoise": "denoised"}.get(mode)
        if suffix is None:
            raise AelabError(f"unknown mode {mode!r}; choose reconstruct or denoise")
        from torchvision.utils import save_image

        from . import figures
        from .data import add_noise, read_images

        if noise < 0 or not math.isfinite(noise):
            raise AelabError(f"--noise must be a finite number >= 0, got {noise}")
        channels, size = self.model.input_shape[0], self.model.input_shape[1]
        inputs = read_images(images, channels, size)  # every file checked before anything is written
        if noise:
            inputs = add_noise(inputs, noise, torch.Generator().manual_seed(0))
        outputs = self.reconstruct(inputs, precision, labels=label)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for image, source in zip(outputs, images):
            target = out / f"{Path(source).stem}_{suffix}.png"
            save_image(image.clamp(0, 1), target)
            written.append(target)
        label = "denoised" if mode == "denoise" else "reconstruction"
        written.append(figures.image_rows([inputs, outputs], ["input", label], out / f"{mode}.png"))
        return written

    def encode_split(self, split: str = "test", data: Any = None, precision: str = "32") -> np.ndarray:
        """Flattened codes (N, code_size) of the run's dataset (or ``data``): split test, train or all."""
        loaded = self.data(data)
        images = {"train": loaded.train, "test": loaded.test}.get(split)
        if images is None:
            if split != "all":
                raise AelabError(f"unknown split {split!r}; choose train, test or all")
            images = torch.cat([loaded.train, loaded.test])
        return self.encode(images, precision).flatten(1).numpy()

    def interpolate(self, a: Any = None, b: Any = None, steps: int = 10, seed: int = 0,
                    label: int | None = None) -> torch.Tensor:
        """Decoded points on the straight line between the codes of images ``a`` and ``b`` (files or
        (1, C, H, W) tensors), framed by the two inputs; with no images, between two prior points."""
        from .data import read_images
        from .latent import interpolate

        if (a is None) != (b is None):
            raise AelabError("give two images to interpolate between (or none, for a generative model)")
        if a is None:
            return interpolate(self.model, steps=steps, seed=seed, label=label)
        ends = []
        for end in (a, b):
            if isinstance(end, (str, Path)):
                end = read_images([end], self.model.input_shape[0], self.model.input_shape[1])
            ends.append(self.model.check_images(end))
        return torch.cat([ends[0], interpolate(self.model, ends[0], ends[1], steps=steps, seed=seed, label=label),
                          ends[1]])


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename it into place, with the
    permissions a plain write would have had (the user's umask; a temporary file starts at 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ------------------------------------------------------------------------------ the out folder


def foreign_files(path: Path) -> list[str]:
    """What a folder holds besides an aelab run's layout and figures: --overwrite refuses it."""
    return sorted(p.name for p in path.iterdir()
                  if p.name not in RUN_LAYOUT and not (p.is_file() and p.suffix == ".png"))


def check_out_folder(out: Path, resume: bool, overwrite: bool, data_dir: str | None = None,
                     locked: bool = False) -> bool:
    """Refuse what could lose data; True where ``out`` holds a run that ``overwrite`` will replace.

    An existing run needs ``resume`` or ``overwrite``; ``overwrite`` replaces only a folder that
    holds an aelab run and nothing else; ``out`` may not be, lie inside or contain the data folder.
    """
    if out.exists() and not out.is_dir():
        raise AelabError(f"--out {out} is a file, not a folder")
    if not locked:
        RunLock(out).refuse_if_held()
    if data_dir is not None:
        data, target = Path(data_dir).resolve(), out.resolve()
        if target == data or data in target.parents or target in data.parents:
            raise AelabError(f"--out {out} is, lies inside or contains the data folder {data_dir}; "
                             "choose a run folder elsewhere")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not os.access(ancestor, os.W_OK):
        raise AelabError(f"--out {out}: cannot write in {ancestor} (permission denied)")
    entries = [p for p in out.iterdir() if not (locked and p.name == LOCK_NAME)] if out.is_dir() else []
    if resume or not entries:
        return False
    if not Run(out).is_run():
        raise AelabError(f"--out {out} holds files that are not an aelab run; choose a new or empty folder")
    if not overwrite:
        raise AelabError(f"--out {out} already holds an aelab run; pass --resume to continue it or --overwrite "
                         "to replace it")
    extra = foreign_files(out)
    if extra:
        raise AelabError(f"--out {out} holds files aelab did not write ({', '.join(extra[:3])}); --overwrite "
                         "replaces only a run folder: move them or choose another folder")
    return True


class RunLock:
    """An OS file lock on a run folder while a process writes in it (released if the process
    dies); a second writer gets a one-line error naming the holder's PID."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AelabError(f"run folder {self.path.parent} is in use: process {holder} is training there; "
                             "wait for it or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def refuse_if_held(self) -> None:
        """The one-line error a second writer gets, before it writes anything."""
        if self.path.is_file():
            with self:
                pass

    def __exit__(self, *exc) -> bool:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:  # the folder was replaced (--overwrite) with the lock in it
                pass
            os.close(self.fd)  # closing releases the lock
            self.fd = None
        return False


def load(run_dir: str | Path) -> torch.nn.Module:
    """``aelab.load(RUN_DIR)``: the trained model of a run folder, with ``encode`` and ``decode``."""
    return Run(run_dir).load_model()
