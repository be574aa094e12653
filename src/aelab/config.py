"""The typed definitions of settings, and how values are checked against them: each settings
dataclass (:class:`TrainSettings`, every family's extension of it, :class:`EvalSettings`,
:class:`StyleSettings`) is the one list its CLI flags, config files and keyword arguments are
read from, each field with its type, range and help text (:func:`setting`).

:class:`TrainSettings` holds what every model has; each family extends it in its own module
(``families/autoencoder.py``'s ``AutoencoderSettings``, ``families/vae.py``'s ``VAESettings``,
...), and a registered model gives its defaults by name (``registry.register_model(train=...)``).
:class:`RunConfig` is config.json (``config_files.read_config`` validates it field by field).

This module imports nothing heavy: ``aelab --help`` is built from it without loading torch.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from .errors import AelabError, UnknownSetting
from .limits import MAX_SEED
from .values import check_range, coerce, hints_of, setting, validate_fields

OptimizerName = Literal["adam", "adadelta", "rmsprop", "sgd"]
Precision = Literal["auto", "32", "bf16-mixed", "16-mixed"]
StylePrecision = Literal["auto", "bf16", "32"]
StyleSchedule = Literal["pyramid", "seed"]
StyleRestart = Literal["auto", "round", "level"]
# style transfer's rounds: the seed's at full size; the pyramid's at full size and at each coarser
# size (chosen by benchmarks/style_speed.py --candidates: with one L-BFGS a size, a lower final loss
# than the former 10 coarse rounds restarting every round, in two thirds of their time)
SEED_ROUNDS, PYRAMID_ROUNDS, PYRAMID_COARSE_ROUNDS = 20, 3, 3
StrategyName = Literal["auto", "ddp"]
LoggerName = Literal["tensorboard", "csv", "mlflow", "wandb"]


@dataclass(frozen=True)
class TrainSettings:
    """How any model is trained: the settings every family has. Each family extends it with its
    own (``families/NAME.py``: ``AutoencoderSettings``, ``VAESettings``, ``GANSettings``, ...), and
    a registered model gives its defaults for them; a name its family's class lacks is refused."""

    epochs: int = setting(20, "number of epochs", low=1)
    max_minutes: float | None = setting(
        None,
        "stop training after this many minutes even before --epochs (Lightning's "
        "max_time; the evaluation at the end comes after)",
        low=0,
        open_low=True,
    )
    batch_size: int = setting(200, "batch size", low=1)
    lr: float = setting(1e-3, "learning rate", low=0, open_low=True)
    optimizer: OptimizerName = setting("adam", "optimiser")
    seed: int = setting(
        0, "random seed: fixes the initial weights, the validation split and the batches", low=0, high=MAX_SEED
    )
    precision: Precision = setting(
        "auto",
        "auto (bf16 autocast where it pays: a bf16 GPU, a CPU with AMX or an AMD Zen 5), 32, bf16-mixed or 16-mixed",
    )
    devices: int = setting(
        1,
        "training processes on this machine: CPU processes, or GPUs with --accelerator gpu; "
        "more than one trains with DDP, and --batch-size is then per process",
        low=1,
    )
    num_nodes: int = setting(
        1, "machines taking part, each running the same command (see Scaling out in the README)", low=1
    )
    strategy: StrategyName = setting("auto", "auto (ddp when devices x num_nodes > 1) or ddp")
    threads: int | None = setting(
        None,
        "CPU threads per training process: a number fixes it (runs then repeat bit for "
        "bit); default: adapt, choosing the count that trains fastest now and probing "
        "again each minute (a shared CPU often runs faster on fewer)",
        low=1,
    )
    logger: tuple[LoggerName, ...] = setting(
        ("tensorboard", "csv"),
        "where training logs its curves, through "
        "Lightning's loggers: any of tensorboard, csv, mlflow, wandb, or none "
        "(mlflow: RUN/logs/mlflow.db unless MLFLOW_TRACKING_URI is set; wandb: "
        "offline in RUN/logs/wandb unless WANDB_MODE=online)",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        object.__setattr__(self, "logger", tuple(dict.fromkeys(self.logger)))  # each logger once, in order

    def updated(self, **changes: Any) -> TrainSettings:
        """A copy with ``changes`` applied (validated)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings this class has, in order."""
        return tuple(f.name for f in fields(cls))


# the settings that say how a run is launched and for how long, not what it learns: a resumed run may change them
LAUNCH = ("devices", "num_nodes", "strategy", "max_minutes", "threads", "logger")


def settings_from(raw: dict[str, Any], base: TrainSettings, what: str = "") -> TrainSettings:
    """``base`` (a :class:`TrainSettings` or a family's subclass) with the values of ``raw`` (a JSON
    object or keyword arguments), each coerced to its field's type. A name ``base``'s class lacks
    is an :class:`~aelab.errors.UnknownSetting` naming the ones it has (for a model's settings,
    ``families.model_settings`` says which family has the name)."""
    names = type(base).names()
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise UnknownSetting(
            f"{what}{type(base).__name__} has no setting {unknown[0]!r}; its settings: {', '.join(names)}"
        )
    hints = hints_of(type(base))
    values = {k: coerce(f"{what}{k}", v, hints[k]) for k, v in raw.items()}
    for key, value in values.items():  # a name=weight left out keeps the base's weight
        if isinstance(value, dict) and isinstance(getattr(base, key), dict):
            values[key] = {**getattr(base, key), **value}
    try:
        return base.updated(**values)
    except AelabError as error:
        raise AelabError(f"{what}{error}") from None


@dataclass(frozen=True)
class EvalSettings:
    """What evaluation measures beyond a model's test loss: the flags of ``aelab eval`` (and
    ``aelab train``), keyword arguments of ``aelab.evaluate`` and ``aelab.train``. The defaults
    keep evaluation to a small share of the training it follows (measured in
    benchmarks/results/first-hour.md); raise them for a paper's numbers."""

    bounds: bool = setting(True, "VAEs: the test ELBO and the importance-weighted (IWAE) log-likelihood bound")
    bound_samples: int = setting(
        50, "VAEs: importance samples per image for the IWAE bound (Burda et al. use 5,000)", low=1, high=5000
    )
    bound_images: int = setting(1000, "VAEs: test images the bounds are measured on", low=1, high=100_000)
    quality: bool = setting(
        True,
        "generative models: sample quality (fd_classifier: the Fréchet distance on a "
        "small classifier's features: shipped for Fashion-MNIST, else trained once per dataset and cached)",
    )
    quality_samples: int = setting(
        10_000, "generative models: samples drawn for the sample-quality distance", low=2, high=100_000
    )

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def of(cls, value: EvalSettings | dict[str, Any] | None) -> EvalSettings:
        """``value`` as EvalSettings: itself, a dict of fields (unknown names refused) or None (defaults)."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise AelabError(f"evaluation settings must be a dict or aelab.EvalSettings, got {type(value).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise AelabError(f"unknown evaluation setting {unknown[0]!r}; the settings are: {', '.join(names)}")
        return cls(**value)


EVAL_FIELDS = {f.name: f for f in fields(EvalSettings)}


# ------------------------------------------------------------------------------------- search spaces


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a float or int range (``log`` for log-uniform) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    def suggest(self, trial) -> Any:
        if self.choices is not None:  # Optuna's choices are scalars: a tuple (layer widths) goes as "16x48"
            return self.decode(trial.suggest_categorical(self.name, [_choice_text(c) for c in self.choices]))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def decode(self, stored: Any) -> Any:
        """The value a trial stored for this dimension, as the setting takes it."""
        if self.choices is None:
            return stored
        return next((c for c in self.choices if _choice_text(c) == stored), stored)

    def __str__(self) -> str:
        if self.choices is not None:
            return f"{self.name}={','.join(str(_choice_text(c)) for c in self.choices)}"
        return f"{self.name}={self.low:g}:{self.high:g}{':log' if self.log else ''}"


def _choice_text(choice: Any) -> Any:
    return "x".join(map(str, choice)) if isinstance(choice, tuple) else choice


# ------------------------------------------------------------------------------------- style transfer

STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYER = "block5_conv2"


@dataclass
class StyleSettings:
    """Style transfer's settings, the seed's by default: the ``aelab style`` flags and
    ``aelab.style_transfer``'s keyword arguments."""

    schedule: StyleSchedule = setting(
        "pyramid",
        "pyramid: rounds at 1/4 and 1/2 of the height first, each result "
        "upsampled to start the next (a lower loss in a fifth of the "
        "time: benchmarks/results/style.md); seed: every round at full "
        "size",
    )
    iterations: int | None = setting(
        None,
        "outer L-BFGS rounds at full size (default: the seed's 20 with schedule "
        f"seed, {PYRAMID_ROUNDS} after the pyramid's coarser rounds)",
        low=1,
    )
    coarse_iterations: int = setting(
        PYRAMID_COARSE_ROUNDS, f"the pyramid's rounds at each coarser size (default: {PYRAMID_COARSE_ROUNDS})", low=1
    )
    evaluations: int = setting(20, "loss evaluations per iteration (the seed's maxfun: 20)", low=1)
    restart: StyleRestart = setting(
        "auto",
        "when L-BFGS starts afresh: round (every round, as the seed calls "
        "fmin_l_bfgs_b anew), level (once a size: its memory kept across "
        "the size's rounds; a lower loss in the same time: "
        "benchmarks/results/style.md), auto (level for the pyramid, round "
        "for the seed's schedule)",
    )
    height: int = setting(400, "output height in pixels (seed: 400); the width keeps the content's aspect", low=1)
    content_weight: float = setting(0.025, "weight of the content loss (seed: 0.025)", low=0)
    style_weight: float = setting(1.0, "weight of the style loss, averaged over the style layers (seed: 1.0)", low=0)
    tv_weight: float = setting(1e-4, "weight of the total-variation loss (seed: 1e-4)", low=0)
    content_layer: str = setting(CONTENT_LAYER, f"VGG19 layer of the content loss (seed: {CONTENT_LAYER})")
    style_layers: tuple[str, ...] = setting(
        STYLE_LAYERS, f"VGG19 layers of the style loss, comma-separated (seed: {','.join(STYLE_LAYERS)})"
    )
    seed: int = setting(0, "seeds the random filters used where there are no pretrained weights", low=0, high=MAX_SEED)
    precision: StylePrecision = setting(
        "auto",
        "VGG19's arithmetic: auto (bf16 on a GPU with bf16 or a CPU with "
        "AMX, where it pays; else 32), bf16 or 32; the loss is summed in "
        "float64",
    )

    @property
    def full_rounds(self) -> int:
        """The rounds at full size: ``iterations``, or its schedule's default."""
        if self.iterations is not None:
            return self.iterations
        return SEED_ROUNDS if self.schedule == "seed" else PYRAMID_ROUNDS

    @property
    def restarts_each_round(self) -> bool:
        """Whether every round starts a fresh L-BFGS (``restart``, or its schedule's default)."""
        if self.restart != "auto":
            return self.restart == "round"
        return self.schedule == "seed"

    def check(self, names: list[str]) -> None:
        """Each value in its range, and the layers among ``names`` (VGG19's, from :mod:`aelab.style`)."""
        hints = typing.get_type_hints(StyleSettings)
        for f in fields(self):
            check_range(f.name, coerce(f.name, getattr(self, f.name), hints[f.name]), f.metadata)
        for layer in (self.content_layer, *self.style_layers):
            if layer not in names:
                raise AelabError(f"unknown VGG19 layer {layer!r}; choose from: {', '.join(names)}")
        if not self.style_layers:
            raise AelabError("give at least one style layer")


# ------------------------------------------------------------------------------------- config.json


@dataclass
class RunConfig:
    """A run's config.json: what was trained, on what, and how. Loading validates every key."""

    model: str
    params: dict[str, Any]
    train: TrainSettings
    data: str
    data_dir: str | None = None
    input_shape: tuple[int, int, int] | None = None
    user_params: tuple[str, ...] = ()
    aelab_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": dict(self.params),
            "train": self.train.to_json(),
            "data": self.data,
            "data_dir": self.data_dir,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "user_params": list(self.user_params),
            "aelab_version": self.aelab_version,
        }
