"""Model families as objects: each module here is one family (its system, data, batches,
callbacks, evaluation, report lines, headline metrics and search space). A registered model
names its family (``register_model(..., family="vae")``); :func:`family_of` gives the object.

Adding a family: one module here with a :class:`~aelab.families.base.Family` subclass (setting
its own ``name`` registers it), imported below, and its networks in ``nets/`` declaring the
interfaces of ``nets/base.py``.
"""

from __future__ import annotations

from typing import Any

from ..config import TrainSettings, settings_from
from ..errors import AelabError, UnknownSetting, opt
from ..models import get_entry
from . import aae, betavae, rae, vqvae, wae  # noqa: F401  (each family's module registers it)
from .autoencoder import AutoencoderSettings
from .base import Family, NonFiniteLoss, ScheduleSettings
from .classifier import ClassifierSettings
from .gan import GANSettings
from .images import ImageSettings
from .text import TextSettings
from .vae import VAESettings

FAMILIES: dict[str, Family] = {name: family() for name, family in Family.registered.items()}


def family_of(model: str) -> Family:
    """The family of a registered model name (or alias)."""
    entry = get_entry(model)
    try:
        return FAMILIES[entry.family]
    except KeyError:
        raise AelabError(
            f"model {entry.name} names the family {entry.family!r}, which aelab.families does not "
            f"have; the families: {', '.join(FAMILIES)}"
        ) from None


def settings_classes() -> dict[str, type[TrainSettings]]:
    """Each family's settings class by family name (``AutoencoderSettings``, ``VAESettings``, ...)."""
    return {name: family.settings for name, family in FAMILIES.items()}


def families_with(setting: str) -> list[str]:
    """The families whose settings include ``setting``."""
    return [name for name, family in FAMILIES.items() if setting in family.settings.names()]


def model_settings(model: str, *, what: str = "", **changes: Any) -> TrainSettings:
    """A registered model's training settings: its family's settings class with the model's
    defaults and ``changes`` (each checked; ``what`` prefixes messages, e.g. a file's name). A
    setting the family lacks is an :class:`~aelab.errors.UnknownSetting` naming the ones it has."""
    entry = get_entry(model)
    family = family_of(entry.name)
    base = family.default_settings(entry)
    unknown = sorted(set(changes) - set(base.names()))
    if unknown:
        owners = families_with(unknown[0])
        where = f" (a setting of the {', '.join(owners)} famil{'ies' if len(owners) > 1 else 'y'})" if owners else ""
        name = f"{what}{unknown[0]}" if what else opt(unknown[0])  # a file's key, or as the caller spelled it
        raise UnknownSetting(
            f"{entry.name} has no setting {name}{where}; {family.settings.__name__}, "
            f"the {family.name} family's, has: {', '.join(base.names())}"
        )
    return settings_from(changes, base, what)


def model_info(model: str) -> dict:
    """What a registered model is and how it trains by default: its name, description, family,
    the training settings its family uses with the model's default for each, and its parameters
    with their defaults (what `aelab models --verbose NAME` prints)."""
    entry = get_entry(model)
    family = family_of(entry.name)
    train = family.default_settings(entry).to_json()
    return {
        "name": entry.name,
        "description": entry.description,
        "family": family.name,
        "settings": family.settings.__name__,
        "train": train,
        "params": entry.defaults(),
    }


__all__ = [
    "FAMILIES",
    "AutoencoderSettings",
    "ClassifierSettings",
    "Family",
    "GANSettings",
    "ImageSettings",
    "NonFiniteLoss",
    "ScheduleSettings",
    "TextSettings",
    "VAESettings",
    "families_with",
    "family_of",
    "model_info",
    "model_settings",
    "settings_classes",
]
