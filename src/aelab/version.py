"""aelab's version: written into every run's config.json."""

__version__ = "0.1.0"
