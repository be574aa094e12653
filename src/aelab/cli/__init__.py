"""The `aelab` command. Thin: parse, call the API, print. Errors in input become one line and exit 2.

Every command calls names that ``import aelab`` exports, and nothing else of aelab's but this
package's own modules (a test checks it); options that the API also has take their defaults and
choices from its signature. Each sub-command's flags are added only when that command runs, so
``aelab --help`` loads no torch. A command module registers its commands with
:func:`.options.command`: :mod:`.info`, :mod:`.training`, :mod:`.images`, :mod:`.tools`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

import aelab
from aelab import AelabError
from aelab.accel import keep_freed_memory  # (process set-up: not the library's to do)
from aelab.errors import from_cli  # (messages that name flags, not parameters)

from . import images, info, tools, training  # noqa: F401  (each registers its commands, in this order)
from .options import COMMANDS


def _named_model(words: list[str]) -> dict[str, Any] | None:
    """``aelab.model_info`` of the first registered model name among ``words``, or None."""
    for word in words:
        if not word.startswith("-"):
            try:
                return aelab.model_info(word)
            except AelabError:
                continue
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line ``argv``, only the named command's flags are added (its
    defaults come from the API, whose modules load torch), else every command's."""
    parser = argparse.ArgumentParser(prog="aelab", description="Autoencoders and generative models of images.")
    parser.add_argument("--version", action="version", version=f"aelab {aelab.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else next((word for word in argv if word in COMMANDS), "")
    for name, (help_text, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen == "train" and {"-h", "--help"} & set(argv):
            p.model_info = _named_model(argv[argv.index("train") + 1 :])
        if chosen is None or name == chosen:
            func.arguments(p)
        p.set_defaults(func=func)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (a test may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else list(map(str, argv))).parse_args(argv)
    log = logging.getLogger("aelab")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())  # aelab's notes (a resume's changes, a GAN's collapse) as plain lines
        log.setLevel(logging.INFO)
    for handler in log.handlers:
        if isinstance(handler, _StderrHandler):
            handler.setFormatter(logging.Formatter(f"aelab {args.command}: %(message)s"))
    try:
        keep_freed_memory()  # a CLI command owns its process
        threads = getattr(args, "inference_threads", None)  # eval, score, style: --threads N
        with from_cli(), aelab.fixed_threads(threads) if threads is not None else contextlib.nullcontext():
            args.func(args)  # (messages name options as flags)
    except AelabError as error:
        print(f"aelab {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder made read-only while the command ran
        print(f"aelab {args.command}: error: {error.strerror or error} ({error.filename or ''})", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # Interrupted says what was kept and how to go on
        print(f"aelab {args.command}: {' '.join(str(error).split()) or 'interrupted'}", file=sys.stderr)
        return 130
    return 0
