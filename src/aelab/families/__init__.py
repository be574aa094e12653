"""Model families as objects: each module here is one family (its system, data, batches,
callbacks, evaluation, report lines, headline metrics and search space). A registered model
names its family (``register_model(..., family="vae")``); :func:`family_of` gives the object.

Adding a family: one module here with a :class:`~aelab.families.base.Family` subclass, listed in
``FAMILIES`` below, and its networks in ``nets/`` declaring the interfaces of ``nets/base.py``.
"""

from __future__ import annotations

from ..errors import AelabError
from ..models import get_entry
from .autoencoder import AutoencoderFamily
from .base import Family, NonFiniteLoss
from .classifier import ClassifierFamily
from .gan import GANFamily
from .text import TextFamily
from .vae import CVAEFamily, VAEFamily

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (AutoencoderFamily(), VAEFamily(), CVAEFamily(), ClassifierFamily(), GANFamily(), TextFamily())
}


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


def model_info(model: str) -> dict:
    """What a registered model is and how it trains by default: its name, description, family,
    the training settings its family uses with the model's default for each, and its parameters
    with their defaults (what `aelab models --verbose NAME` prints)."""
    entry = get_entry(model)
    family = family_of(entry.name)
    train = entry.train.to_json()
    return {
        "name": entry.name,
        "description": entry.description,
        "family": family.name,
        "train": {k: train[k] for k in family.honours() if k in train},
        "params": entry.defaults(),
    }


__all__ = ["FAMILIES", "Family", "NonFiniteLoss", "family_of", "model_info"]
