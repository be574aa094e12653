"""Seed 3's character-level text generator (003_cc967e401ad40983.txt): an LSTM reads ``maxlen``
characters and a dense softmax over the alphabet predicts the next one."""

from __future__ import annotations

import math
import string

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AelabError, InputError
from ..registry import register_model
from .base import Network, TextModel
from .blocks import check_positive

# the alphabet of a model built without data (`aelab summary char-lstm`); training sets the text's own
PRINTABLE = "".join(sorted(set(string.printable) - set("\r\x0b\x0c")))


@register_model(
    "char-lstm",
    "seed-3 text generator: LSTM 128 over 40-character windows (every 3rd), softmax "
    "over the alphabet; RMSprop 0.01, batch 128",
    family="text",
    train=dict(optimizer="rmsprop", lr=0.01, batch_size=128, epochs=60),
)
class CharLSTM(Network, TextModel):
    """``layers`` LSTM layers of ``units`` (the seed: one of 128) over the window, then a dense
    layer to one logit per character of ``alphabet`` (the softmax is in the loss). ``embedding=0``
    feeds one-hot vectors, as the seed does (made per batch from the indices, never for the whole
    corpus); a width > 0 learns an embedding of that width instead. ``maxlen`` and ``step`` say how
    training windows are cut: ``maxlen`` characters, one window every ``step``.
    """

    def __init__(
        self,
        alphabet: str = PRINTABLE,
        maxlen: int = 40,
        step: int = 3,
        units: int = 128,
        layers: int = 1,
        embedding: int = 0,
    ) -> None:
        super().__init__()
        check_positive(maxlen=maxlen, step=step, units=units, layers=layers)
        if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet must be a non-empty string of distinct characters")
        if not isinstance(embedding, int) or embedding < 0:
            raise ValueError(f"embedding must be 0 (one-hot) or a positive width, got {embedding!r}")
        self.alphabet, self.maxlen, self.step = alphabet, maxlen, step
        size = len(alphabet)
        self.embed = nn.Embedding(size, embedding) if embedding else None
        self.lstm = nn.LSTM(embedding or size, units, num_layers=layers, batch_first=True)
        self.head = nn.Linear(units, size)

    def _inputs(self, x: Tensor) -> Tensor:  # (B, T) indices -> (B, T, input_size)
        return self.embed(x) if self.embed is not None else F.one_hot(x, len(self.alphabet)).float()

    def forward(self, x: Tensor) -> Tensor:  # (B, T) character indices -> (B, alphabet) logits of the next
        if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32, torch.uint8):
            raise InputError(f"char-lstm takes character indices shaped (B, T), got {tuple(x.shape)} {x.dtype}")
        out, _ = self.lstm(self._inputs(x.long()))
        return self.head(out[:, -1])

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.zeros(1, self.maxlen, dtype=torch.long),)

    @torch.no_grad()
    def generate(
        self, prompt: Tensor, length: int, temperature: float, generator: torch.Generator | None = None
    ) -> list[int]:
        """``length`` characters after ``prompt`` (indices), each drawn at ``temperature`` from the
        prediction for the last ``maxlen`` characters, as the seed's generation loop does."""
        window = prompt.long().tolist()
        drawn = []
        for _ in range(length):
            logits = self(torch.tensor([window[-self.maxlen :]], device=self.head.weight.device))[0]
            drawn.append(sample_index(logits.float().cpu(), temperature, generator))
            window.append(drawn[-1])
        return drawn


def sample_index(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> int:
    """Seed 3's ``sample``: the distribution reweighted by ``temperature`` (log p / T, then softmax)
    and one draw from it; temperature 0 is the argmax (greedy sampling)."""
    if temperature < 0 or not math.isfinite(temperature):
        raise AelabError(f"temperature must be a finite number >= 0, got {temperature}")
    if temperature == 0:
        return int(logits.argmax())
    probabilities = torch.softmax(logits.double().log_softmax(-1) / temperature, -1)
    return int(torch.multinomial(probabilities, 1, generator=generator))
