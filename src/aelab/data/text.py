"""Text for character-level models (seed 3's LSTM text generator): corpora (registered in
:mod:`aelab.data.sources` with ``holds="text"``), windows and the n-gram baseline.

A text is held as one integer tensor of character indices. Training windows of ``maxlen``
characters taken every ``step`` characters are rows of a strided view of it (``unfold``): a batch
gathers (B, maxlen + 1) indices, and the one-hot vectors the seed builds for the whole corpus are
never made.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..distributed import shard
from ..errors import AelabError, check_file, opt
from .names import dataset_names, loader

DEFAULT_CORPUS = "pydoc-topics"
HELD_OUT = 0.1  # the last 10% of the text: validation, then test (5% each)


@dataclass
class TextData:
    """A text split in three, as character indices into ``alphabet``."""

    name: str
    alphabet: str
    train: Tensor  # (N,) int64
    val: Tensor
    test: Tensor

    def encode(self, text: str) -> Tensor:
        return encode(text, self.alphabet)


def read_text(path: Path) -> str:
    """A UTF-8 text file; a missing, binary or empty file is a one-line error."""
    check_file(path, "text file")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise AelabError(f"{path} is a binary file, not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AelabError(f"{path} is not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise AelabError(f"{path} is empty")
    return text


def load_text(data=None, alphabet: str | None = None, min_length: int = 2) -> TextData:
    """A corpus by name (default ``pydoc-topics``) or a text file (a ``Path``, or a string naming
    an existing file), split 90/5/5; ``alphabet`` defaults to the text's characters, sorted."""
    if isinstance(data, TextData):
        return data
    if data is None or isinstance(data, str) and loader(data, "text") is not None:
        name = data or DEFAULT_CORPUS
        text = loader(name, "text")()
    elif isinstance(data, Path) or isinstance(data, str) and len(data) < 4096 and Path(data).is_file():
        name, text = Path(data).name, read_text(Path(data))
    else:
        raise AelabError(
            f"unknown corpus {data!r}; choose {', '.join(dataset_names('text'))} or pass a text file ({opt('text', 'FILE')})"
        )
    alphabet = alphabet or "".join(sorted(set(text)))
    cut_val, cut_test = int(len(text) * (1 - HELD_OUT)), int(len(text) * (1 - HELD_OUT / 2))
    parts = text[:cut_val], text[cut_val:cut_test], text[cut_test:]
    if min(map(len, parts)) < min_length:
        raise AelabError(
            f"{name} has {len(text)} characters: too short to hold out 5% for validation and 5% for "
            f"test with windows of {min_length - 1} (need about {20 * min_length})"
        )
    return TextData(name, alphabet, *(encode(part, alphabet) for part in parts))


def encode(text: str, alphabet: str) -> Tensor:
    index = {c: i for i, c in enumerate(alphabet)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise AelabError(f"characters outside the model's alphabet: {''.join(unknown)!r}")
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def decode(indices: Tensor | list[int], alphabet: str) -> str:
    return "".join(alphabet[int(i)] for i in indices)


def windows(text: Tensor, maxlen: int, step: int) -> Tensor:
    """(N, maxlen + 1) windows, one every ``step`` characters: inputs and the character after them.
    A strided view of ``text``: no copy."""
    if len(text) <= maxlen:
        raise AelabError(f"a text of {len(text)} characters has no window of {maxlen} + 1")
    return text.unfold(0, maxlen + 1, step)


class WindowBatches:
    """Batches of (inputs (B, maxlen), next characters (B,)) gathered from a text's windows;
    shuffled each epoch where asked. Lightning takes any sized iterable as a data loader."""

    def __init__(
        self,
        text: Tensor,
        maxlen: int,
        step: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        split: bool = False,
    ) -> None:
        self.windows = windows(text, maxlen, step)
        self.batch_size, self.shuffle, self.split = batch_size, shuffle, split  # split: see data.TensorBatches
        self.generator = torch.Generator().manual_seed(seed)

    def _share(self) -> tuple[int, int, int]:
        return shard(len(self.windows)) if self.split else (0, 1, len(self.windows))

    def __len__(self) -> int:
        return -(-self._share()[2] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        first, step, n = self._share()
        order = (
            torch.randperm(len(self.windows), generator=self.generator)
            if self.shuffle
            else torch.arange(len(self.windows))
        )
        order = order[first::step][:n]
        for start in range(0, n, self.batch_size):
            batch = self.windows[order[start : start + self.batch_size].to(self.windows.device)]
            yield batch[:, :-1], batch[:, -1]


class NGram:
    """A character n-gram model with add-one (Laplace) smoothing: the baseline that needs no
    training. P(c | the n-1 characters before) = (count(context + c) + 1) / (count(context) + V)."""

    def __init__(self, train: str, n: int, alphabet_size: int) -> None:
        self.n, self.size = n, alphabet_size
        k = n - 1
        self.grams = Counter(train[i : i + n] for i in range(len(train) - k))
        self.contexts = Counter(train[i : i + k] for i in range(len(train) - k)) if k else Counter({"": len(train)})

    def bits_per_char(self, text: str, start: int) -> float:
        """Mean -log2 P of every character of ``text`` from index ``start`` on (its context may
        reach back before ``start``)."""
        k = self.n - 1
        total = 0.0
        for i in range(start, len(text)):
            context = text[i - k : i] if k else ""
            total -= math.log2((self.grams[context + text[i]] + 1) / (self.contexts[context] + self.size))
        return total / max(1, len(text) - start)


def ngram_baseline(data: TextData, maxlen: int, max_n: int = 6) -> dict[str, float | int]:
    """The n-gram model with n (1 ... ``max_n``) chosen on validation, measured on test, on the
    characters the LSTM predicts (those with ``maxlen`` characters before them in their split)."""
    train, val, test = (decode(part, data.alphabet) for part in (data.train, data.val, data.test))
    models = {n: NGram(train, n, len(data.alphabet)) for n in range(1, max_n + 1)}
    scores = {n: model.bits_per_char(val, maxlen) for n, model in models.items()}
    best = min(scores, key=scores.get)
    return {
        "ngram_n": best,
        "ngram_val_bits_per_char": scores[best],
        "ngram_test_bits_per_char": models[best].bits_per_char(test, maxlen),
    }
