"""`aelab export`: a trained run's network as an ONNX file, for runtimes without PyTorch or aelab.

The file holds one part of the model (the encoder, the decoder, the whole autoencoder, a GAN's
generator, or the anomaly detector: images in, anomaly scores out, its threshold in the file's
metadata), exported by ``torch.onnx`` with a dynamic batch axis; the channels and size of its
input are the run's. Inputs are float32 images in [0, 1] shaped (N, C, H, W) (codes, for a
decoder; latent points, for a generator), plus int64 class labels shaped (N,) for conditional
models (cvae). The checks aelab's own methods make on their inputs (shapes, the value range) are
the caller's job in another runtime.
"""

from __future__ import annotations

import logging
import os
import typing
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .anomaly import DEFAULT_METHOD, AnomalyDetector, MethodName, Score
from .errors import AelabError, as_path, opt
from .nets.base import Autoencoder
from .nets.gan import DCGAN
from .outputs import check_targets, created
from .runs import Run

Part = Literal["encoder", "decoder", "both", "generator", "detector"]
Format = Literal["onnx"]
PARTS, FORMATS = typing.get_args(Part), typing.get_args(Format)
OPSET = 18


class ExportedPart(nn.Module):
    """One part of a model, through its unchecked inner methods (what an exporter can trace)."""

    def __init__(self, model: nn.Module, part: str) -> None:
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        extra = () if labels is None else (labels,)
        if self.part == "encoder":
            return self.model.layers_encode(x, *extra)
        if self.part == "decoder":
            return self.model.layers_decode(x, *extra)
        if self.part == "both":
            return self.model.layers(x, *extra).recon
        return self.model.layers(x)  # a GAN's generator: latent points -> images in [0, 1]


def export(
    run: Any,
    out: str | Path,
    part: Part = "encoder",
    format: Format = "onnx",
    overwrite: bool = False,
    contamination: float = 0.1,
    score: Score = "normalised",
    method: MethodName = DEFAULT_METHOD,
) -> Path:
    """Write ``run``'s ``part`` (encoder, decoder, both, a GAN's generator, or ``detector``: the
    anomaly score of :class:`aelab.AnomalyDetector`, its threshold set on the run's validation
    images at ``contamination``, ``score`` and ``method`` as in :class:`aelab.AnomalyDetector`, and
    kept in the file's metadata as ``aelab.threshold``) to ``out``
    as ONNX; returns the file. ``run`` may also be a fitted AnomalyDetector (``part="detector"``).
    Everything is checked before the file is written; a failure leaves no file (and an existing
    ``out`` as it was); an existing ``out`` is replaced only with ``overwrite``."""
    out = as_path(out, opt("out"))
    if format not in FORMATS:
        raise AelabError(f"unknown export format {format!r}; choose {', '.join(FORMATS)}")
    if part not in PARTS:
        raise AelabError(f"unknown part {part!r}; choose {', '.join(PARTS)}")
    if isinstance(run, AnomalyDetector) or part == "detector":
        if part != "detector":
            raise AelabError(f"a detector exports as part 'detector', not {part!r}")
        inputs = [] if isinstance(run, AnomalyDetector) else Run.of(run).sources()
        check_targets([out], overwrite=overwrite, suffixes=(".onnx",), inputs=inputs)
        detector = (
            run
            if isinstance(run, AnomalyDetector)
            else AnomalyDetector.from_run(run, contamination, score=score, method=method)
        )
        module, metadata = detector.scoring_module()
        return export_module(
            module,
            (torch.rand(2, *module.model.input_shape),),
            ["images"],
            out,
            metadata=metadata,
            overwrite=overwrite,
            what=f"{detector.config_.model}'s detector",
            inputs=inputs,
        )
    run = Run.of(run)
    check_targets([out], overwrite=overwrite, suffixes=(".onnx",), inputs=run.sources())
    model = run.model.eval()
    example, names = _example(run, model, part)
    return export_module(
        ExportedPart(model, part).eval(),
        example,
        names,
        out,
        overwrite=overwrite,
        what=f"{run.config.model}'s {part}",
        inputs=run.sources(),
    )


def export_module(
    module: nn.Module,
    example: tuple[Tensor, ...],
    names: list[str],
    out: str | Path,
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
    what: str = "the model",
    inputs: list[Path] = (),
) -> Path:
    """``module`` as an ONNX file at ``out`` (batch axis dynamic, output named ``output``), with
    ``metadata`` as the model's metadata properties; written whole or not at all."""
    out = check_targets([Path(out)], overwrite=overwrite, suffixes=(".onnx",), inputs=list(inputs))[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        # torch.onnx's TorchScript-based exporter: these networks are plain static graphs, which it
        # exports in seconds, where the torch.export-based one (dynamo=True) takes 10-40 s each
        with warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(staged),
                input_names=names,
                output_names=["output"],
                dynamic_axes={name: {0: "batch"} for name in [*names, "output"]},
                opset_version=OPSET,
                dynamo=False,
            )
        if metadata:
            import onnx

            graph = onnx.load(str(staged))
            for key, value in metadata.items():
                graph.metadata_props.add(key=key, value=value)
            onnx.save(graph, str(staged))
        os.replace(staged, out)
        created(out)
    except Exception as error:  # noqa: BLE001 - the exporter raises many kinds; the user gets one line
        raise AelabError(
            f"could not export {what}: {type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:400]
        ) from None
    finally:
        staged.unlink(missing_ok=True)
        for extra in staged.parent.glob(f"{staged.name}*"):  # an exporter's side files, if any
            extra.unlink(missing_ok=True)
    return out


def _example(run, model: nn.Module, part: str) -> tuple[tuple[Tensor, ...], list[str]]:
    """An example input for ``part`` (batch of 2) and the input names; refuses what the model lacks."""
    if part == "generator":
        if not isinstance(model, DCGAN):
            raise AelabError(f"{run.config.model} has no generator; choose {opt('part')} encoder, decoder or both")
        return (torch.randn(2, model.latent_dim),), ["latent"]
    if not isinstance(model, Autoencoder):
        what = f"a GAN: {opt('part', 'generator')}" if isinstance(model, DCGAN) else "not an image autoencoder"
        raise AelabError(f"{run.config.model} is {what}")
    if part == "decoder" and not model.decodes_from_code_alone:
        raise AelabError(
            f"{run.config.model}'s decoder needs more than the code (the encoder's pooling "
            f"switches); choose {opt('part')} both or encoder"
        )
    x = torch.rand(2, *model.input_shape) if part != "decoder" else torch.randn(2, *model.code_shape())
    names = ["images" if part != "decoder" else "codes"]
    if model.conditional:
        return (x, torch.zeros(2, dtype=torch.long)), names + ["labels"]
    return (x,), names


class _quiet_exporter:
    """torch.onnx's exporter logs its progress at INFO/WARNING; a command prints one line instead."""

    def __enter__(self):
        self.loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)
