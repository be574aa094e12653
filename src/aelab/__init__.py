"""aelab: autoencoders and deep generative models of images on PyTorch + Lightning.

    import aelab
    run = aelab.train("conv-resize", data=x_train, epochs=5)   # arrays, a dataset name or a folder
    run.metrics["test_rmse"]; x_hat = aelab.reconstruct(run, x)
    run = aelab.Run("runs/demo")           # a run folder: .model, .config, .metrics, .history, ...
    model = aelab.load("runs/demo")        # the trained model: model.encode(x), model.decode(z)
    aelab.list_models(); aelab.create_model("conv-resize")

Everything the ``aelab`` command does is one of these names (the CLI imports nothing else).
Attributes are imported on first use, so ``import aelab`` (and ``aelab --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports
from .version import __version__

_INFERENCE = (
    "reconstruct",
    "encode",
    "decode",
    "encoder",
    "decoder",
    "encode_split",
    "encode_file",
    "reconstruct_files",
    "sample",
    "sample_figure",
    "manifold",
    "manifold_figure",
    "latent",
    "latent_figure",
    "interpolate",
    "interpolate_figure",
    "generate",
    "probe",
    "activation_epochs",
    "activations",
    "activation_figure",
)

# public name -> the module that defines it
_EXPORTS = {
    "AelabError": "errors",
    "InputError": "errors",
    "UnknownSetting": "errors",
    "TrainSettings": "config",
    "AutoencoderSettings": "families",
    "VAESettings": "families",
    "ClassifierSettings": "families",
    "GANSettings": "families",
    "TextSettings": "families",
    "model_settings": "families",
    "settings_classes": "families",
    "EvalSettings": "config",
    "RunConfig": "config",
    "StyleSettings": "config",
    "list_datasets": "data.names",
    "TrainConfig": "config_files",
    "read_train_config": "config_files",
    "catalog": "registry",
    "create_model": "models",
    "list_models": "models",
    "model_info": "families",
    "Run": "runs",
    "load": "runs",
    "train": "training",
    "TrainingDiverged": "training",
    "evaluate": "evaluation",
    "ensemble": "evaluation",
    "run_data": "evaluation",
    "run_report": "evaluation",
    "report": "reporting",
    "Published": "published",
    "PUBLISHED": "published",
    "demo": "demo_runs",
    "resolve_data": "data",
    "load_data": "datasets",
    "Dataset": "arrays",
    "style_transfer": "style",
    "style_transfer_files": "style",
    "linear_probe": "probing",
    "tune": "tuning",
    "tuned_settings": "tuning",
    "load_study": "tuning",
    "export": "exporting",
    "AnomalyDetector": "anomaly",
    "score_files": "anomaly",
    "serve": "webapp",
    "build_app": "webapp",
    "format_summary": "summary",
    "draw_graph": "summary",
    "is_main_process": "distributed",
    "fixed_threads": "threads",
    **{name: "inference" for name in _INFERENCE},
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for editors and type checkers
    from .anomaly import AnomalyDetector, score_files
    from .arrays import Dataset
    from .config import EvalSettings, RunConfig, StyleSettings, TrainSettings
    from .config_files import TrainConfig, read_train_config
    from .data import resolve_data
    from .data.names import list_datasets
    from .datasets import load_data
    from .demo_runs import demo
    from .distributed import is_main_process
    from .errors import AelabError, InputError, UnknownSetting
    from .evaluation import ensemble, evaluate, run_data, run_report
    from .exporting import export
    from .families import (
        AutoencoderSettings,
        ClassifierSettings,
        GANSettings,
        TextSettings,
        VAESettings,
        model_info,
        model_settings,
        settings_classes,
    )
    from .inference import (
        activation_epochs,
        activation_figure,
        activations,
        decode,
        decoder,
        encode,
        encode_file,
        encode_split,
        encoder,
        generate,
        interpolate,
        interpolate_figure,
        latent,
        latent_figure,
        manifold,
        manifold_figure,
        probe,
        reconstruct,
        reconstruct_files,
        sample,
        sample_figure,
    )
    from .models import create_model, list_models
    from .probing import linear_probe
    from .published import PUBLISHED, Published
    from .registry import catalog
    from .reporting import report
    from .runs import Run, load
    from .style import style_transfer, style_transfer_files
    from .summary import draw_graph, format_summary
    from .threads import fixed_threads
    from .training import TrainingDiverged, train
    from .tuning import load_study, tune, tuned_settings
    from .webapp import build_app, serve


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return __all__
