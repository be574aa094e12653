"""A fitted detector as one safetensors file: the autoencoder's weights (``model.*``), each part's
tensors under its own keys (:meth:`~aelab.anomaly.parts.Part.state`), the normal images' scores,
and a JSON header (format, aelab version, the run's config, contamination, score kind, threshold,
method and the parts it sums: a file without them sums its method's former parts, FORMER_PARTS).
Loading executes nothing from the file and checks every number before it is used."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AelabError, check_file
from ..outputs import atomic_write, check_targets
from .checks import check_choice, check_contamination, check_detector_model
from .parts import FORMER_PARTS, METHODS, PARTS, SCORES, Transformations
from .scorer import DetectorScore

FILE_FORMAT = 1  # the detector file's layout


def save_detector(detector: Any, path: str | Path, overwrite: bool = False) -> Path:
    """:meth:`AnomalyDetector.save` of ``detector``."""
    from safetensors.torch import save_file

    from ..version import __version__

    scorer = detector.scorer()
    path = check_targets([Path(path)], overwrite=overwrite, suffixes=(".safetensors",))[0]
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in scorer.model.state_dict().items()}
    tensors["decision_scores"] = torch.from_numpy(np.ascontiguousarray(detector.decision_scores_, dtype=np.float64))
    tensors.update({k: v.detach().cpu().contiguous() for k, v in scorer.state().items()})
    header = {
        "format": FILE_FORMAT,
        "aelab_version": __version__,
        "config": detector.config_.to_json(),
        "contamination": detector.contamination,
        "score": detector.score,
        "threshold": detector.threshold_,
        "method": detector.method,
        "parts": list(scorer.method.parts),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"aelab_detector": json.dumps(header)}))
    return path


def load_detector(cls: type, path: str | Path, device: str | torch.device = "cpu") -> Any:
    """:meth:`AnomalyDetector.load` (``cls``: the detector class; this module is below it)."""
    from safetensors import SafetensorError, safe_open

    from ..config_files import read_config
    from ..models import create_model
    from ..runs import load_state

    path = check_file(Path(path), "detector file")
    try:
        with safe_open(str(path), framework="pt") as file:
            raw = (file.metadata() or {}).get("aelab_detector")
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise AelabError(f"detector file {path} is damaged ({error})") from None
    try:
        header = json.loads(raw)
        config = read_config(header["config"], path)
        contamination, score, threshold = header["contamination"], header["score"], float(header["threshold"])
        method = header.get("method", "reconstruction")
        parts = header.get("parts", FORMER_PARTS.get(method))
    except (TypeError, ValueError, KeyError) as error:
        raise AelabError(f"{path} is not an aelab detector file ({type(error).__name__}: {error})") from None
    if method not in METHODS:
        raise AelabError(
            f"{path} holds a detector of method {method!r}, which this aelab does not know "
            f"({', '.join(METHODS)}): a newer aelab wrote it"
        )
    if parts is not None and (
        not isinstance(parts, list | tuple) or not parts or any(part not in PARTS for part in parts)
    ):
        raise AelabError(f"{path} is damaged (parts: expected names among {', '.join(PARTS)}, got {parts!r})")
    _check_stored(path, threshold, contamination, score, tensors)
    model = create_model(config.model, **config.params)
    load_state(model, {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}, path)
    try:
        check_detector_model(model, config.model)
    except AelabError:
        raise AelabError(f"{path} holds {config.model}, which does not score anomalies") from None
    scorer = DetectorScore(model.to(device).eval(), method, normalised=score == "normalised", parts=parts)
    missing = [key for key in ["decision_scores", *scorer.needs()] if key not in tensors]
    if missing:
        named = ["the transformations network" if key.startswith(Transformations.prefix) else key for key in missing]
        raise AelabError(
            f"{path} is not a whole aelab detector file of the {method} method (it lacks {', '.join(named)})"
        )
    scorer.load(tensors, path)
    pixels = tensors.get("reference_pixels")  # the pixel neighbours' rows: one image each, at the model's size
    if pixels is not None and pixels.shape[1] != math.prod(model.input_shape):
        raise AelabError(
            f"{path} is damaged (reference_pixels: rows of {pixels.shape[1]} values, and the model "
            f"takes {math.prod(model.input_shape)})"
        )
    transformations = scorer.part(Transformations)
    if transformations is not None:
        transformations.net.to(device)
    detector = cls(config.model, contamination, score=score, method=method)
    detector.scorer_, detector.config_ = scorer, config
    detector.decision_scores_ = tensors["decision_scores"].numpy()
    detector.threshold_ = threshold
    detector.labels_ = (detector.decision_scores_ > threshold).astype(int)
    return detector


def _check_stored(
    path: Path, threshold: float, contamination: Any, score: Any, tensors: dict[str, torch.Tensor]
) -> None:
    """A detector file's numbers, before they are used: a finite threshold, a contamination in its
    range, known choices, and each array of its expected shape with finite values (a NaN threshold
    would flag nothing, silently)."""
    if not math.isfinite(threshold):
        raise AelabError(f"{path} is damaged (its threshold is {threshold})")
    try:
        check_contamination(contamination)
        check_choice("score", score, SCORES)
    except AelabError as error:
        raise AelabError(f"{path} is damaged ({error})") from None
    shapes = {"decision_scores": 1, "standard": 2, "reference_pixels": 2, "reference_codes": 2, "pixel_errors": None}
    for key, dims in shapes.items():
        value = tensors.get(key)
        if value is None:
            continue
        if (
            (dims is not None and value.dim() != dims)
            or value.numel() == 0
            or not value.is_floating_point()
            or not torch.isfinite(value).all()
        ):
            raise AelabError(
                f"{path} is damaged ({key}: expected finite numbers in {dims or 'any number of'} "
                f"dimension(s), got {value.dtype} shaped {tuple(value.shape)})"
            )
    if "standard" in tensors and tensors["standard"].shape[1] != 2:
        raise AelabError(
            f"{path} is damaged (standard: expected a mean and a spread per part, got "
            f"{tuple(tensors['standard'].shape)})"
        )
