"""Looking inside a run: how good its codes are as features (a linear probe), and the layer outputs
saved while it trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import figures
from ..errors import AelabError, opt
from ..evaluation import run_data
from ..outputs import check_targets
from ..runs import Run, write_json
from .common import RunLike, drawn

# ------------------------------------------------------------------ features and looking inside


def probe(run: RunLike, data: Any = None, write: bool = True) -> dict[str, Any]:
    """How good the run's codes are as features: a linear classifier fitted on the training codes,
    scored on the test codes, beside the same probe on PCA codes of the same size and on raw
    pixels (:func:`aelab.probing.probe_run`). Adds the numbers to metrics.json (``write``, for the
    run's own data only)."""
    from ..probing import probe_run

    run = Run.of(run)
    result = probe_run(run, run_data(run, data))
    if write and data is None and run.metrics_path.is_file():
        write_json(run.metrics_path, {**run.metrics, **result})
    return result


def activation_epochs(run: RunLike) -> list[int]:
    """The epochs whose layer outputs ``log_activations`` saved (RUN/activations/epoch_NNN.npz)."""
    run = Run.of(run)
    stems = (p.stem.removeprefix("epoch_") for p in (run.path / "activations").glob("epoch_*.npz"))
    return sorted(int(stem) for stem in stems if stem.isdigit())


def activations(run: RunLike, epoch: int | None = None) -> dict[str, np.ndarray]:
    """The layer outputs saved by ``log_activations`` after ``epoch`` (default: the last saved):
    ``inputs`` (the fixed validation images) and one array per layer, by its name in the model."""
    run = Run.of(run)
    epochs = activation_epochs(run)
    if not epochs:
        raise AelabError(f"{run.path} has no saved activations: train it with {opt('log_activations', True)}")
    epoch = max(epochs) if epoch is None else epoch
    if epoch not in epochs:
        raise AelabError(f"no activations saved for epoch {epoch}; saved: epochs {min(epochs)} to {max(epochs)}")
    path = run.path / "activations" / f"epoch_{epoch:03d}.npz"
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise AelabError(f"{path} is damaged ({error})") from None


def activation_figure(
    run: RunLike,
    out: str | Path | None = None,
    epoch: int | None = None,
    layer: str | None = None,
    image: int = 0,
    overwrite: bool = False,
) -> Path:
    """Draw one layer's saved output for one of the fixed images as a PNG (default layer: the first
    convolutional one; default ``out``: RUN/activations/epoch_NNN_LAYER.png, redrawn each time)."""
    run = Run.of(run)
    if out is not None:
        out = check_targets([out], overwrite=overwrite, suffixes=(".png",))[0]
    arrays = activations(run, epoch)
    epoch = max(activation_epochs(run)) if epoch is None else epoch
    out = out if out is not None else run.path / "activations" / f"epoch_{epoch:03d}_{layer or 'first-conv'}.png"
    layers = [name for name in arrays if name != "inputs"]
    if layer is None:
        layer = next((n for n in layers if arrays[n].ndim == 4 and arrays[n].shape[1] > 1), layers[0])
    if layer not in arrays or layer == "inputs":
        raise AelabError(f"no layer {layer!r} among the saved activations; the layers: {', '.join(layers)}"[:400])
    count = len(arrays["inputs"])
    if not 0 <= image < count:
        raise AelabError(f"{opt('image')} must be 0 to {count - 1} (the saved batch has {count} images), got {image}")
    return drawn(
        run,
        figures.feature_maps(
            arrays["inputs"][image],
            arrays[layer][image],
            out,
            f"{run.config.model}, epoch {epoch}: {layer} {tuple(arrays[layer].shape[1:])}",
        ),
    )
