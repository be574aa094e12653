"""Every typed settings class and the functions that read them: the one definition of each
setting that ``aelab train``'s flags, config files, config.json and the systems all read.

    from aelab.settings import VAESettings, model_settings
    model_settings("vae", beta=2.0)       # the model's defaults with one change, checked
    aelab.settings.settings_classes()     # each family's class by family name

``TrainSettings`` holds what every model has; each family's class adds its own knobs (an
autoencoder's ``noise``, a VAE's ``kl_weight``, a GAN's recipe). Names load on first use: the classes of
:mod:`aelab.config` need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("TrainSettings", "EvalSettings", "RunConfig", "StyleSettings"), "config"),
    **dict.fromkeys(("TrainConfig", "read_train_config"), "config_files"),
    **dict.fromkeys(
        (
            "AutoencoderSettings",
            "VAESettings",
            "ClassifierSettings",
            "GANSettings",
            "TextSettings",
            "model_settings",
            "settings_classes",
        ),
        "families",
    ),
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for editors and type checkers
    pass

_named = lazy_exports(__package__, _EXPORTS, globals())  # (the modules beside this one, in aelab)


def __getattr__(name: str):
    """The names above, and every other family's settings class by its name (``WAESettings``, ...):
    a new family's class is reachable here without a line in this file."""
    try:
        return _named(name)
    except AttributeError:
        from .families import settings_classes

        found = {cls.__name__: cls for cls in settings_classes().values()}
        if name not in found:
            raise
        globals()[name] = found[name]
        return found[name]


def __dir__() -> list[str]:
    return __all__
