"""The one error type aelab raises for bad input: the CLI prints it as one line and exits non-zero."""


class AelabError(Exception):
    """A problem with what the user asked for (a name, a file, a run folder), not a bug."""


class InputError(AelabError, ValueError):
    """Tensors a model cannot take: wrong shape, channels or size, or pixel values outside [0, 1]."""
