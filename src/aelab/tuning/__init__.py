"""`aelab tune`: hyperparameter search with Optuna (seed 3's "choose, train, evaluate, choose the
next from what was learned", as a loop nobody runs by hand).

Each trial is an ordinary run folder, ``STUDY_DIR/trials/NNNN``, trained by :func:`aelab.train`
with the settings the sampler chose, scored by its best validation loss (never the test split)
and pruned early from its per-epoch validation loss. The study lives in an Optuna storage: an
SQLite file inside ``STUDY_DIR`` by default, or any URL Optuna accepts (PostgreSQL for workers on
several machines). When the trials are done the best one is evaluated once on the test split and
``STUDY_DIR/best`` points to it; ``trials.csv``, three plots and ``summary.md`` describe the study.

Modules: :mod:`.search` (``tune``), :mod:`.space` (the search space), :mod:`.storage` (where a
study lives), :mod:`.results` (trials.csv, plots, summary.md, the best run, ``tuned_settings``).
"""

from .results import params_text, study_trials, train_command, tuned_settings
from .search import SAMPLERS, Objective, tune
from .space import Dimension, default_space, merge_space, parse_dimension
from .storage import STUDY_FILES, STUDY_NAME, has_local_study, load_study

__all__ = [
    "SAMPLERS",
    "STUDY_FILES",
    "STUDY_NAME",
    "Dimension",
    "Objective",
    "default_space",
    "has_local_study",
    "load_study",
    "merge_space",
    "params_text",
    "parse_dimension",
    "study_trials",
    "train_command",
    "tune",
    "tuned_settings",
]
