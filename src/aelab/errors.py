"""The one error type aelab raises for bad input: the CLI prints it as one line and exits non-zero;
its messages name options as the caller spelled them (:func:`opt`)."""

import contextvars
import os
from pathlib import Path


class AelabError(Exception):
    """A problem with what the user asked for (a name, a file, a run folder), not a bug."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept and how to go on: the CLI prints the message and exits 130. A
    KeyboardInterrupt still, so whatever catches that (Optuna's trial loop) stops as it would."""


class UnknownSetting(AelabError, TypeError):
    """A training setting the model's family does not have (as a dataclass refuses a keyword it lacks)."""


class InputError(AelabError, ValueError):
    """Tensors a model cannot take: wrong shape, channels or size, or pixel values outside [0, 1]."""


# Messages name an option as the caller spelled it: ``--epochs 5`` from the command line,
# ``epochs=5`` from Python. The CLI sets this while it runs a command.
_FROM_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("aelab_from_cli", default=False)
# options the CLI spells differently from the Python API: a folder or text file is data=, classes labels=
API_NAMES = {"data_dir": "data", "text": "data", "label": "labels"}


def opt(name: str, value: object = None) -> str:
    """An option as the user gave it, for a message: ``opt("out")`` is ``--out`` on the command
    line and ``out`` in Python; ``opt("resume", True)`` ``--resume`` / ``resume=True``;
    ``opt("epochs", "N")`` ``--epochs N`` / ``epochs=N``; ``opt("param", "code_size=2")``
    ``--param code_size=2`` / ``code_size=2`` (a model parameter is a keyword argument in Python)."""
    if _FROM_CLI.get():
        flag = "--" + name.replace("_", "-")
        if value is None or value is True:
            return flag
        if value is False:
            return "--no-" + name.replace("_", "-")
        return f"{flag} {value}"
    name = API_NAMES.get(name.replace("-", "_"), name.replace("-", "_"))
    if name == "param" and value is not None:
        return str(value)
    if value is None:
        return name
    shown = value if not isinstance(value, str) or value.isupper() else repr(value)  # N, FILE: placeholders
    return f"{name}={shown}"


def resume_command(out: object) -> str:
    """How to continue the run in ``out``, as the caller would write it."""
    if _FROM_CLI.get():
        return f"`aelab train --resume --out {out}`"
    return f"`aelab.train(resume=True, out={str(out)!r})`"


def as_path(value: object, what: str) -> Path:
    """``value`` as a Path when it is a str or an os.PathLike; else one line naming ``what``."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise AelabError(f"{what} must be a path (a str or pathlib.Path), got {type(value).__name__}")
    return Path(value)


def check_file(path: Path, what: str) -> Path:
    """``path`` when it is a regular file (a link to one counts); else one line saying what it is
    instead: missing, a folder, or a device or pipe (which reading would block on or never end)."""
    path = as_path(path, what)
    if path.is_file():
        return path
    if not os.path.lexists(path):
        raise AelabError(f"{what} {path} does not exist")
    if path.is_dir():
        raise AelabError(f"{what} {path} is a folder, not a file")
    if not path.exists():
        raise AelabError(f"{what} {path} is a broken link")
    raise AelabError(f"{what} {path} is not a regular file (a device, a pipe or a socket)")


def eval_command(run: object) -> str:
    """How to evaluate the run in ``run`` later, as the caller would write it."""
    return f"`aelab eval {run}`" if _FROM_CLI.get() else f"`aelab.evaluate({str(run)!r})`"


class from_cli:
    """While a CLI command runs: messages name options as flags (see :func:`opt`)."""

    def __enter__(self) -> "from_cli":
        self._token = _FROM_CLI.set(True)
        return self

    def __exit__(self, *exc) -> bool:
        _FROM_CLI.reset(self._token)
        return False
