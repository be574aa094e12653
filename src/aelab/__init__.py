"""aelab: autoencoders and deep generative models of images on PyTorch + Lightning.

    import aelab
    run = aelab.train("conv-resize", data=x_train, epochs=5)   # arrays, a dataset name or a folder
    run.metrics["test_rmse"]; x_hat = run.reconstruct(x)
    run = aelab.Run("runs/demo")           # a run folder: .model, .config, .metrics, .history, ...
    model = aelab.load("runs/demo")        # the trained model: model.encode(x), model.decode(z)
    aelab.list_models(); aelab.create_model("conv-resize")

Attributes are imported on first use, so ``import aelab`` (and ``aelab --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "AelabError": "errors", "InputError": "errors",
    "TrainSettings": "config", "RunConfig": "config",
    "create_model": "registry", "list_models": "registry",
    "Run": "runs", "load": "runs",
    "train": "training", "TrainingDiverged": "training",
    "evaluate": "evaluation", "ensemble": "evaluation",
    "resolve_data": "data", "list_datasets": "config",
    "style_transfer": "style", "StyleSettings": "config",
    "linear_probe": "probe", "tune": "tuning", "tuned_settings": "tuning",
    "export": "exporting", "AnomalyDetector": "anomaly", "serve": "webapp", "build_app": "webapp",
    "is_main_process": "distributed",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for editors and type checkers
    from .anomaly import AnomalyDetector
    from .config import RunConfig, StyleSettings, TrainSettings
    from .config import list_datasets
    from .data import resolve_data
    from .distributed import is_main_process
    from .errors import AelabError, InputError
    from .evaluation import ensemble, evaluate
    from .exporting import export
    from .probe import linear_probe
    from .registry import create_model, list_models
    from .runs import Run, load
    from .style import style_transfer
    from .training import TrainingDiverged, train
    from .tuning import tune, tuned_settings


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aelab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
