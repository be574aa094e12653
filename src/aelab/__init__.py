"""aelab: autoencoders and deep generative models of images on PyTorch + Lightning.

    import aelab
    run = aelab.train("conv-resize", data=x_train, epochs=5)   # arrays, a dataset name or a folder
    run.metrics["test_rmse"]; x_hat = aelab.reconstruct(run, x)
    run = aelab.Run("runs/demo")           # a run folder: .model, .config, .metrics, .history, ...
    model = aelab.load("runs/demo")        # the trained model: model.encode(x), model.decode(z)
    aelab.list_models(); aelab.create_model("conv-resize")

Everything the ``aelab`` command does is one of these names or a name of a public namespace
(``aelab.settings``, ``aelab.inference``, ``aelab.anomaly``, ... :data:`NAMESPACES`); the CLI
imports nothing else. Attributes are imported on first use, so ``import aelab`` (and
``aelab --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports
from .version import __version__

# public name -> the module that defines it: what a first-hour user types. The rest lives in the
# public namespaces below (aelab.settings, aelab.inference, aelab.anomaly, ...), reached as
# attributes; the CLI imports these names and those namespaces' names, nothing else.
_EXPORTS = {
    "AelabError": "errors",
    "InputError": "errors",
    "UnknownSetting": "errors",
    "TrainSettings": "config",
    "EvalSettings": "config",
    "model_settings": "families",
    "model_info": "families",
    "create_model": "models",
    "list_models": "models",
    "list_datasets": "data.names",
    "load_data": "datasets",
    "Dataset": "arrays",
    "Run": "runs",
    "load": "runs",
    "train": "training",
    "TrainingDiverged": "training",
    "evaluate": "evaluation",
    "ensemble": "evaluation",
    "report": "reporting",
    "demo": "demo_runs",
    "tune": "tuning",
    "export": "exporting",
    "AnomalyDetector": "anomaly",
    "serve": "webapp",
    "style_transfer": "style",
    "linear_probe": "probing",
    "fixed_threads": "threads",
    **dict.fromkeys(
        ("reconstruct", "encode", "decode", "sample", "generate", "interpolate", "latent", "manifold"), "inference"
    ),
}

# public sub-namespaces: each module's __all__ is its public surface
NAMESPACES = (
    "settings",  # every settings class, config files (TrainConfig, read_train_config)
    "inference",  # a trained run's uses: the *_figure functions, encode_file, reconstruct_files, probe, ...
    "anomaly",  # the detector's parts and methods, score_files (`aelab score`)
    "data",  # the dataset registry, files, streams, resolve_data
    "evaluation",  # run_data, run_report
    "tuning",  # load_study, tuned_settings
    "style",  # style_transfer_files
    "summary",  # format_summary, draw_graph
    "webapp",  # build_app
    "registry",  # catalog
    "published",  # the seeds' published numbers
    "distributed",  # is_main_process
)

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for editors and type checkers
    from . import (
        anomaly,
        data,
        distributed,
        evaluation,
        inference,
        published,
        registry,
        settings,
        style,
        summary,
        tuning,
        webapp,
    )
    from .anomaly import AnomalyDetector
    from .arrays import Dataset
    from .config import EvalSettings, TrainSettings
    from .data.names import list_datasets
    from .datasets import load_data
    from .demo_runs import demo
    from .errors import AelabError, InputError, UnknownSetting
    from .evaluation import ensemble, evaluate
    from .exporting import export
    from .families import model_info, model_settings
    from .inference import decode, encode, generate, interpolate, latent, manifold, reconstruct, sample
    from .models import create_model, list_models
    from .probing import linear_probe
    from .reporting import report
    from .runs import Run, load
    from .style import style_transfer
    from .threads import fixed_threads
    from .training import TrainingDiverged, train
    from .tuning import tune
    from .webapp import serve


__getattr__ = lazy_exports(__name__, _EXPORTS, globals(), NAMESPACES)


def __dir__() -> list[str]:
    return __all__
