"""`aelab eval`: test metrics, the PCA floor at the same code size, and the run's figures."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from . import figures, latent
from .config import RunConfig
from .data import ARRAYS, ImageData, add_noise, resolve_data
from .errors import AelabError
from .frechet import sample_quality
from .metrics import error_metrics, image_metrics, pca_rmse, reconstruct, vae_bounds
from .registry import get_entry
from .runs import Run, write_json
from .text import TextData, WindowBatches, load_text, ngram_baseline

EVAL_NOISE_SEED = 1234  # the same noisy test set every time a denoising run is evaluated


def run_data(config: RunConfig, data: Any = None) -> ImageData | TextData:
    """The dataset a run was trained on, or ``data`` instead (a name, folder or arrays), in its
    model's input shape (a text model's: in its alphabet)."""
    if get_entry(config.model).kind == "text":
        source = data if data is not None else Path(config.data_dir) if config.data_dir else config.data
        return load_text(source, alphabet=config.params["alphabet"], min_length=config.params["maxlen"] + 2)
    if config.input_shape is None:
        raise AelabError("config.json has no input_shape: the run never started training")
    if data is None:
        if config.data == ARRAYS:
            raise AelabError("this run was trained on arrays handed to aelab.train; pass the data to use "
                             "(--data / --data-dir, or data=...)")
        data = Path(config.data_dir) if config.data_dir else config.data
    stream = config.train.stream if isinstance(data, (str, Path)) and Path(data).is_dir() else None
    return resolve_data(data, channels=config.input_shape[0], size=config.input_shape[1], stream=stream)


def noisy_copy(images: torch.Tensor, noise: float) -> torch.Tensor:
    return add_noise(images, noise, torch.Generator().manual_seed(EVAL_NOISE_SEED)) if noise > 0 else images


def evaluate(run_dir: str | Path, data: ImageData | None = None, write_figures: bool = True,
             bound_images: int = 2000, bound_samples: int = 100, stopped: str | None = None,
             write: bool = True) -> dict[str, Any]:
    """Measure a trained run on its test split; write ``metrics.json`` and the figures (with
    ``write=False``, nothing: the metrics are only returned).

    Autoencoders (VAEs included): reconstruction metrics and the PCA floor. VAEs also: ELBO and
    the IWAE bound on ``bound_images`` test images with ``bound_samples`` samples each. Generative
    models (VAE, GAN): sample quality (:mod:`aelab.frechet`) and a sample grid. ``stopped``:
    why training stopped early, recorded in the metrics.
    """
    run = Run(run_dir)
    config = run.config
    model = run.load_model()
    data = data or run_data(config)
    kind = get_entry(config.model).kind
    if kind == "text":
        metrics = {"model": config.model, "data": data.name, **text_metrics(model, data)}
    else:
        metrics = {"model": config.model, "data": data.name, "test_images": len(data.test)}
    if stopped:
        metrics["stopped"] = stopped
    labels = data.test_labels if model_takes_labels(model) else None
    if kind in ("autoencoder", "vae", "cvae", "classifier"):
        metrics.update(reconstruction_metrics(run, config, model, data, write_figures))
    if kind in ("vae", "cvae"):
        started = time.perf_counter()
        metrics.update(vae_bounds(model, data.test[:bound_images], samples=bound_samples,
                                  labels=None if labels is None else labels[:bound_images]))
        metrics["bounds_seconds"] = round(time.perf_counter() - started, 2)
    if kind == "classifier":
        metrics.update(classifier_metrics(model, data))
    if hasattr(model, "sample"):
        started = time.perf_counter()
        generated = torch.cat([model.sample(1000, torch.Generator().manual_seed(i)) for i in range(10)])
        sampled = time.perf_counter() - started
        metrics.update(sample_quality(generated, data))
        metrics["fd_seconds"] = round(metrics.get("fd_seconds", 0.0) + sampled, 2)  # drawing the samples too
        if write_figures and model_takes_labels(model):  # a row of samples per class
            grid = latent.class_samples(model, per_class=10)
            figures.grid(grid, run.path / "samples.png", nrow=10, title=f"{config.model}: samples, a row per class")
        elif write_figures:
            figures.grid(generated[:100], run.path / "samples.png", nrow=10, title=f"{config.model}: samples")
            if getattr(model, "latent_dim", None) == 2:
                figures.grid(latent.manifold(model), run.path / "manifold.png", nrow=15,
                             title=f"{config.model}: decoded prior quantiles")
    if write_figures:
        draw_curves(run, config)
    if write:
        write_json(run.metrics_path, metrics)
    return metrics


@torch.no_grad()
def text_metrics(model, data: TextData, batch_size: int = 1000) -> dict[str, Any]:
    """Next-character loss (nats), bits per character and accuracy on every character of the
    validation and test texts that has ``maxlen`` characters before it, beside the n-gram
    baseline's bits per character on the same characters."""
    model.eval()
    metrics: dict[str, Any] = {"alphabet_size": len(data.alphabet)}
    for split, text in (("val", data.val), ("test", data.test)):
        loss, correct, count = 0.0, 0, 0
        for inputs, targets in WindowBatches(text, model.maxlen, 1, batch_size):
            logits = model(inputs).float()
            loss += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            correct += int((logits.argmax(-1) == targets).sum())
            count += len(targets)
        metrics.update({f"{split}_loss": loss / count, f"{split}_bits_per_char": loss / count / math.log(2),
                        f"{split}_accuracy": correct / count, f"{split}_characters": count})
    metrics.update(ngram_baseline(data, model.maxlen))
    metrics["bits_vs_ngram"] = metrics["test_bits_per_char"] / metrics["ngram_test_bits_per_char"]
    return metrics


def model_takes_labels(model) -> bool:
    return bool(getattr(model, "conditional", False))


@torch.no_grad()
def classifier_metrics(model, data: ImageData, batch_size: int = 1000) -> dict[str, Any]:
    """Test accuracy of a model's classifier head on the test images that have a label."""
    if data.test_labels is None:
        return {}
    known = data.test_labels >= 0
    model.eval()
    predicted = torch.cat([model.classify(batch).argmax(-1) for batch in data.test[known].split(batch_size)])
    return {"test_accuracy": (predicted == data.test_labels[known]).float().mean().item(),
            "test_labelled_images": int(known.sum())}


def reconstruction_metrics(run: Run, config: RunConfig, model, data: ImageData,
                           write_figures: bool) -> dict[str, Any]:
    noise = config.train.noise
    test_inputs = noisy_copy(data.test, noise)
    test_labels, train_labels = (data.test_labels, data.train_labels) if model_takes_labels(model) else (None, None)
    recon, codes = reconstruct(model, test_inputs, labels=test_labels)
    code_size = int(math.prod(codes.shape[1:]))
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in image_metrics(recon, data.test).items()}
    train_recon, _ = reconstruct(model, noisy_copy(data.train, noise), labels=train_labels)
    metrics.update({f"train_{k}": v for k, v in error_metrics(train_recon, data.train).items()})
    metrics["code_size"] = code_size
    metrics["pca_rmse"] = pca_rmse(data.train, test_inputs, data.test, code_size)
    # a code as large as the image makes PCA lossless on clean inputs: there is no floor to divide by
    metrics["rmse_vs_pca"] = metrics["test_rmse"] / metrics["pca_rmse"] if metrics["pca_rmse"] > 1e-6 else None
    metrics["mean_code_activation"] = codes.abs().mean().item()
    if noise > 0:
        metrics["noise"] = noise
        metrics["noisy_input_rmse"] = math.sqrt(torch.nn.functional.mse_loss(test_inputs, data.test).item())
    if write_figures:
        name = config.model
        figures.reconstructions(data.test, recon, run.path / "reconstructions.png", f"{name}: test images")
        figures.codes(test_inputs, codes, recon, run.path / "codes.png")
        if noise > 0:
            figures.denoising(data.test, test_inputs, recon, run.path / "denoising.png", f"{name}: noise factor {noise}")
    return metrics


def draw_curves(run: Run, config: RunConfig) -> None:
    history = run.history
    if history:
        figures.curves(history, run.path / "curves.png", f"{config.model} on {config.data}")


def ensemble(run_dirs: list[str | Path], data: Any = None) -> dict[str, Any]:
    """Seed 3's model ensembling: average the members' reconstructions of the same test inputs.

    Members must take the same input shape and noise. The ensemble's PCA floor uses as many
    components as the members' codes have values together (what the ensemble stores per image).
    """
    if len(run_dirs) < 2:
        raise AelabError("an ensemble needs at least two run folders")
    runs = [Run(path) for path in run_dirs]
    configs = [run.config for run in runs]
    shapes = {c.input_shape for c in configs}
    noises = {c.train.noise for c in configs}
    if len(shapes) > 1:
        raise AelabError(f"ensemble members take different input shapes: {sorted(shapes)}")
    if len(noises) > 1:
        raise AelabError(f"ensemble members were trained with different noise: {sorted(noises)}")
    data = run_data(configs[0], data)
    noise = noises.pop()
    test_inputs = noisy_copy(data.test, noise)
    members, recons, total_code = [], [], 0
    for run, config in zip(runs, configs):
        recon, codes = reconstruct(run.load_model(), test_inputs)
        code_size = int(math.prod(codes.shape[1:]))
        total_code += code_size
        row = {"run": str(run.path), "model": config.model, "code_size": code_size}
        row.update({f"test_{k}": v for k, v in image_metrics(recon, data.test).items()})
        row["pca_rmse"] = pca_rmse(data.train, test_inputs, data.test, code_size)
        members.append(row)
        recons.append(recon)
    mean = torch.stack(recons).mean(0)
    result: dict[str, Any] = {"data": data.name, "test_images": len(data.test), "members": members,
                              "code_size": total_code}
    result.update({f"test_{k}": v for k, v in image_metrics(mean, data.test).items()})
    result["pca_rmse"] = pca_rmse(data.train, test_inputs, data.test, total_code)
    return result


def ensemble_table(result: dict[str, Any]) -> str:
    """The ensemble's result as the table ``aelab ensemble`` prints: each member, then the mean."""
    lines = [f"{'member':<40} {'code':>6} {'test_rmse':>10} {'test_bce':>9} {'pca_rmse':>9}"]
    rows = [(row["run"][-40:], row) for row in result["members"]]
    rows.append(("ensemble (mean of reconstructions)", result))
    for label, row in rows:
        lines.append(f"{label:<40} {row['code_size']:>6} {row['test_rmse']:>10.4f} {row['test_bce']:>9.4f} "
                     f"{row['pca_rmse']:>9.4f}")
    return "\n".join(lines)
