"""`aelab eval`: test metrics, the PCA floor at the same code size, and the run's figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from . import figures, latent
from .data import ImageData, add_noise, load_data
from .errors import AelabError
from .frechet import sample_quality
from .metrics import error_metrics, image_metrics, pca_rmse, reconstruct, vae_bounds
from .registry import get_entry
from .runs import Run

EVAL_NOISE_SEED = 1234  # the same noisy test set every time a denoising run is evaluated


def run_data(config: dict[str, Any], name: str | None = None, data_dir: str | None = None) -> ImageData:
    """The dataset a run was trained on, or ``name``/``data_dir`` instead, in its model's input shape."""
    channels, size = config["input_shape"][0], config["input_shape"][1]
    if name is None and data_dir is None:
        name, data_dir = config.get("data"), config.get("data_dir")
    return load_data(name, data_dir, channels=channels, size=size)


def noisy_copy(images: torch.Tensor, noise: float) -> torch.Tensor:
    return add_noise(images, noise, torch.Generator().manual_seed(EVAL_NOISE_SEED)) if noise > 0 else images


def evaluate(run_dir: str | Path, data: ImageData | None = None, write_figures: bool = True,
             bound_images: int = 2000, bound_samples: int = 100) -> dict[str, Any]:
    """Measure a trained run on its test split; write ``metrics.json`` and the figures.

    Autoencoders (VAEs included): reconstruction metrics and the PCA floor. VAEs also: ELBO and
    the IWAE bound on ``bound_images`` test images with ``bound_samples`` samples each. Generative
    models (VAE, GAN): sample quality (:mod:`aelab.frechet`) and a sample grid.
    """
    run = Run(run_dir)
    config = run.config()
    model = run.load_model()
    data = data or run_data(config)
    kind = get_entry(config["model"]).kind
    metrics: dict[str, Any] = {"model": config["model"], "data": data.name, "test_images": len(data.test)}
    if kind != "gan":
        metrics.update(reconstruction_metrics(run, config, model, data, write_figures))
    if kind == "vae":
        metrics.update(vae_bounds(model, data.test[:bound_images], samples=bound_samples))
    if hasattr(model, "sample"):
        generated = torch.cat([model.sample(1000, torch.Generator().manual_seed(i)) for i in range(10)])
        metrics.update(sample_quality(generated, data))
        if write_figures:
            figures.grid(generated[:100], run.path / "samples.png", nrow=10, title=f"{config['model']}: samples")
            if getattr(model, "latent_dim", None) == 2:
                figures.grid(latent.manifold(model), run.path / "manifold.png", nrow=15,
                             title=f"{config['model']}: decoded prior quantiles")
    if write_figures:
        draw_curves(run, config)
    run.write_json(run.metrics_path, metrics)
    return metrics


def reconstruction_metrics(run: Run, config: dict[str, Any], model, data: ImageData,
                           write_figures: bool) -> dict[str, Any]:
    noise = float(config["train"].get("noise", 0.0))
    test_inputs = noisy_copy(data.test, noise)
    recon, codes = reconstruct(model, test_inputs)
    code_size = int(math.prod(codes.shape[1:]))
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in image_metrics(recon, data.test).items()}
    train_recon, _ = reconstruct(model, noisy_copy(data.train, noise))
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
        name = config["model"]
        figures.reconstructions(data.test, recon, run.path / "reconstructions.png", f"{name}: test images")
        figures.codes(test_inputs, codes, recon, run.path / "codes.png")
        if noise > 0:
            figures.denoising(data.test, test_inputs, recon, run.path / "denoising.png", f"{name}: noise factor {noise}")
    return metrics


def draw_curves(run: Run, config: dict[str, Any]) -> None:
    if run.history_path.is_file():
        history = run.read_json(run.history_path).get("epochs", [])
        if history:
            figures.curves(history, run.path / "curves.png", f"{config['model']} on {config.get('data')}")


def ensemble(run_dirs: list[str | Path], data: ImageData | None = None) -> dict[str, Any]:
    """Seed 3's model ensembling: average the members' reconstructions of the same test inputs.

    Members must take the same input shape and noise. The ensemble's PCA floor uses as many
    components as the members' codes have values together (what the ensemble stores per image).
    """
    if len(run_dirs) < 2:
        raise AelabError("an ensemble needs at least two run folders")
    runs = [Run(path) for path in run_dirs]
    configs = [run.config() for run in runs]
    shapes = {tuple(c["input_shape"]) for c in configs}
    noises = {float(c["train"].get("noise", 0.0)) for c in configs}
    if len(shapes) > 1:
        raise AelabError(f"ensemble members take different input shapes: {sorted(shapes)}")
    if len(noises) > 1:
        raise AelabError(f"ensemble members were trained with different noise: {sorted(noises)}")
    data = data or run_data(configs[0])
    noise = noises.pop()
    test_inputs = noisy_copy(data.test, noise)
    members, recons, total_code = [], [], 0
    for run, config in zip(runs, configs):
        recon, codes = reconstruct(run.load_model(), test_inputs)
        code_size = int(math.prod(codes.shape[1:]))
        total_code += code_size
        row = {"run": str(run.path), "model": config["model"], "code_size": code_size}
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
