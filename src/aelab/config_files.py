"""Configurations read from files, each checked key by key with a one-line error: training set-ups
(``aelab train --config FILE``, ``aelab.train(config=...)``: a ``.toml`` or ``.json`` file with the
sections of a run's config.json, so a run's config.json trains it again), and a run's own
config.json (:func:`read_config`, mapping what earlier versions wrote)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import EvalSettings, RunConfig, settings_from
from .errors import AelabError, UnknownSetting
from .families import families_with, family_of, model_settings, settings_classes
from .models import get_entry, upgrade_params
from .values import coerce

# a config file's sections: config.json's own keys, so a run's config.json re-trains it
CONFIG_KEYS = ("model", "data", "data_dir", "params", "train", "eval")
CONFIG_RECORDS = ("input_shape", "user_params", "aelab_version")  # what config.json records beside them; not read


@dataclass(frozen=True)
class TrainConfig:
    """A training set-up read from a file (``aelab train --config FILE``, ``aelab.train(config=...)``):
    the model, the data (a dataset name or a folder), training and evaluation settings and model
    parameters, each checked as the flags and keyword arguments of the same names are."""

    model: str | None = None
    data: str | None = None
    data_dir: str | None = None
    train: dict[str, Any] = field(default_factory=dict)  # the model's family's settings, by name
    eval: dict[str, Any] = field(default_factory=dict)  # EvalSettings fields
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "config"  # the file, for messages
    folder: str | None = None  # the folder the file is in (a run's: its kept arrays)


def read_train_config(source: TrainConfig | dict[str, Any] | str | os.PathLike[str]) -> TrainConfig:
    """A training set-up from a ``.toml`` or ``.json`` file (or a dict of the same sections):

    ``model``, ``data`` (a dataset name), ``data_dir`` (a folder), ``[train]`` (training
    settings), ``[eval]`` (evaluation settings) and ``[params]`` (the model's parameters), all
    optional. A run's config.json has these sections, so it trains the run again. Each name and
    value is checked here, with a one-line error naming the file and the key."""
    if isinstance(source, TrainConfig):
        return source
    folder = None
    if isinstance(source, dict):
        raw, where = source, "config"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        where = path
        if not os.path.isfile(path):
            raise AelabError(
                f"config file {path} does not exist"
                if not os.path.exists(path)
                else f"config file {path} is not a file"
            )
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (".toml", ".json"):
            raise AelabError(f"config file {path}: expected a .toml or .json file")
        try:
            with open(path, "rb") as file:
                raw = tomllib.load(file) if suffix == ".toml" else json.loads(file.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:  # TOMLDecodeError and JSONDecodeError are ValueErrors
            kind = "TOML" if suffix == ".toml" else "JSON"
            raise AelabError(f"config file {path} is not valid {kind}: {str(error).splitlines()[0]}"[:300]) from None
        except OSError as error:
            raise AelabError(f"config file {path} cannot be read: {error.strerror or error}") from None
        folder = os.path.dirname(os.path.abspath(path))
    else:
        raise AelabError(f"config must be a .toml/.json path or a dict, got {type(source).__name__}")
    if not isinstance(raw, dict):
        raise AelabError(
            f"{where}: expected a table of sections ({', '.join(CONFIG_KEYS)}), got a {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(CONFIG_KEYS) - set(CONFIG_RECORDS))
    if unknown:
        hint = " (a training setting: put it under [train])" if families_with(unknown[0]) else ""
        raise AelabError(f"{where}: unknown key {unknown[0]!r}{hint}; a config has: {', '.join(CONFIG_KEYS)}")
    for key in ("model", "data", "data_dir"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise AelabError(f"{where}: {key} must be a string, got {raw[key]!r}"[:300])
    for key in ("params", "train", "eval"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise AelabError(f"{where}: {key} must be a table of name = value, got {raw[key]!r}"[:300])
    train, evaluation = dict(raw.get("train") or {}), dict(raw.get("eval") or {})
    check_train(train, raw.get("model"), where)  # names, types and ranges, as flags are checked
    try:
        EvalSettings.of(evaluation)
    except AelabError as error:
        raise AelabError(f"{where}: eval: {error}") from None
    return TrainConfig(
        raw.get("model"),
        raw.get("data"),
        raw.get("data_dir"),
        train,
        evaluation,
        dict(raw.get("params") or {}),
        where,
        folder,
    )


def check_train(train: dict[str, Any], model: str | None, where: str) -> None:
    """A ``[train]`` section's names and values: the model's family's settings; with no model
    named yet, each name a setting of some family and its value of that setting's type."""
    try:
        if model is not None:
            model_settings(model, what="train.", **train)
            return
        classes = settings_classes()
        for name, value in train.items():
            owners = families_with(name)
            if not owners:
                raise UnknownSetting(
                    f"train.{name} is a setting of no family of models (aelab.settings.settings_classes())"
                )
            settings_from({name: value}, classes[owners[0]](), "train.")
    except AelabError as error:
        raise type(error)(f"{where}: {error}") from None


# ------------------------------------------------------------------------------ a run's config.json


# the settings record every run shared before each family had its own settings (aelab 0.1.0)
FLAT = tuple(
    "epochs max_minutes batch_size lr loss optimizer noise sparsity schedule reduce_lr lr_patience early_stopping "
    "patience kl_form kl_weight d_lr seed init val_fraction precision channels_last loss_weights labelled "
    "log_activations log_embeddings stream devices num_nodes strategy threads logger".split()
)


def read_config(raw: Any, source: Path | str = "config.json") -> RunConfig:
    """Validate a parsed config.json; any problem is one line naming the key. Runs written by
    earlier versions (settings at the top level, old parameter names) are mapped first."""

    def damaged(why: str) -> AelabError:
        return AelabError(f"{source} is damaged ({why})")

    if not isinstance(raw, dict):
        raise damaged("expected a JSON object")
    raw = dict(raw)
    for key in ("model", "params", "train"):
        if key not in raw:
            raise damaged(f"no {key!r}")
    if not isinstance(raw["model"], str):
        raise damaged("'model' is not a string")
    for key in ("params", "train"):
        if not isinstance(raw[key], dict):
            raise damaged(f"{key!r} is not an object")
    train = dict(raw.pop("train"))
    train.setdefault("init", "torch")  # runs written before the setting existed started from PyTorch's weights
    for old in ("seed", "val_fraction", "precision", "channels_last"):  # top-level before 0.2
        if old in raw:
            train.setdefault(old, raw.pop(old))
    for old, flag, patience in (
        ("early_stopping_patience", "early_stopping", "patience"),
        ("lr_patience", "reduce_lr", "lr_patience"),
    ):
        if old in raw:
            value = raw.pop(old)
            train.setdefault(flag, value is not None)
            if value is not None:
                train.setdefault(patience, value)
    unknown = sorted(set(raw) - {f.name for f in fields(RunConfig)})
    if unknown:
        raise damaged(f"unknown key {unknown[0]!r}")
    try:
        entry = get_entry(raw["model"])
    except AelabError as error:
        raise damaged(str(error)) from None
    try:
        own = family_of(entry.name).settings.names()  # the flat record's others were never used by this family
        settings = model_settings(
            entry.name, what="train.", **{k: v for k, v in train.items() if k in own or k not in FLAT}
        )
        params = upgrade_params(entry.name, raw["params"], "params.")
        input_shape = raw.get("input_shape")
        if input_shape is not None:
            input_shape = coerce("input_shape", input_shape, tuple[int, ...])
            if len(input_shape) != 3 or min(input_shape) < 1:
                raise AelabError(f"input_shape must be 3 positive integers, got {list(input_shape)}")
        data = raw.get("data", "mnist-sample")
        data_dir = raw.get("data_dir")
        user_params = coerce("user_params", raw.get("user_params", []), tuple[str, ...])
        version = raw.get("aelab_version", "")
        for key, value, hint in (
            ("data", data, str),
            ("data_dir", data_dir, str | None),
            ("aelab_version", version, str),
        ):
            coerce(key, value, hint)
    except AelabError as error:
        raise damaged(str(error)) from None
    return RunConfig(entry.name, params, settings, data, data_dir, input_shape, user_params, version)
