"""The VQ-VAE (van den Oord et al. 2017, "Neural discrete representation learning",
https://arxiv.org/abs/1711.00937) with a learned prior over its code grid.

The encoder maps an image to a grid of vectors (7 x 7 for 28 x 28 images); each is replaced by
its nearest codebook entry, and the decoder sees only those entries (gradients pass straight
through the choice). The codebook follows the vectors assigned to it by exponential moving
averages (the paper's appendix; Razavi et al. 2019), and an entry nobody has chosen for a few
while restarts at a vector of the batch. A PixelCNN-style network (van den Oord et al.
2016, https://arxiv.org/abs/1601.06759: masked convolutions) learns the distribution of the
grids of entry numbers; drawing a grid from it, position by position, and decoding it gives new
images. The prior reads the grids with their gradients stopped, so it learns the codes without
changing them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .backbone import check_side, down, up
from .base import AEOutput, Autoencoder, Generative
from .blocks import activation, check_positive


class Codebook(nn.Module):
    """``codes`` entries of ``dim`` numbers, updated by moving averages (``decay``), with restarts.

    Buffers, not parameters: no optimiser moves them. ``usage`` is the moving average of how
    many vectors each entry receives per step; below ``RESTART_BELOW`` the entry is dead."""

    RESTART_BELOW = 1.0  # fewer than one vector a step, on average (Jukebox's threshold); the
    # usage starts there, so the first step restarts every entry it did not choose at a vector of
    # the batch: the codebook starts among the encoder's outputs, not in a corner of their space
    EPS = 1e-5  # Laplace smoothing of the counts (an entry never divides by zero)

    def __init__(self, codes: int, dim: int, decay: float) -> None:
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        entries = torch.randn(codes, dim)
        self.register_buffer("entries", entries)
        self.register_buffer("usage", torch.ones(codes))
        self.register_buffer("sums", entries.clone())

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Vectors (B, D, H, W) -> their nearest entries (B, D, H, W), the entries' numbers
        (B, H, W) and the batch's codebook perplexity (how many entries it uses, in effect)."""
        b, d, h, w = z.shape
        flat = z.detach().float().permute(0, 2, 3, 1).reshape(-1, d)
        distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.entries.T + self.entries.pow(2).sum(1)
        index = distances.argmin(1)
        counts = torch.bincount(index, minlength=len(self.entries)).float()
        if self.training:
            self.update(flat, index, counts)
        chosen = self.entries[index].view(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        return chosen, index.view(b, h, w), perplexity(counts)

    @torch.no_grad()
    def update(self, flat: Tensor, index: Tensor, counts: Tensor) -> None:
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        sums = torch.zeros_like(self.sums).index_add_(0, index, flat)
        self.sums.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.usage.sum()
        smoothed = (self.usage + self.EPS) / (total + len(self.usage) * self.EPS) * total
        self.entries.copy_(self.sums / smoothed.unsqueeze(1))
        dead = (self.usage < self.RESTART_BELOW).nonzero().squeeze(1)
        if len(dead):  # each dead entry restarts at a random vector of this batch
            fresh = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]
            self.entries[dead], self.sums[dead], self.usage[dead] = fresh, fresh, 1.0


def perplexity(counts: Tensor) -> Tensor:
    """How many codebook entries ``counts`` (K,) of choices use, in effect: exp of the usage entropy."""
    share = counts / counts.sum()
    return torch.exp(-(share * torch.log(share + 1e-10)).sum())


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the positions before its centre in reading order (mask ``A``)
    or those and the centre (mask ``B``)."""

    def __init__(self, mask: str, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        allowed = torch.ones_like(self.weight)
        centre = kernel_size // 2
        allowed[:, :, centre, centre + (mask == "B") :] = 0
        allowed[:, :, centre + 1 :] = 0
        self.register_buffer("allowed", allowed)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.allowed, self.bias, padding=self.padding)


class GridPrior(nn.Module):
    """p(grid) = prod over positions of p(entry | the entries before it): an embedding of each
    entry number, a 5x5 mask-A convolution, ``layers`` residual 3x3 mask-B convolutions, and two
    1x1 convolutions to logits over the ``codes`` entries."""

    def __init__(self, codes: int, width: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(codes, width)
        self.first = MaskedConv2d("A", width, width, 5)
        self.body = nn.ModuleList(MaskedConv2d("B", width, width, 3) for _ in range(layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(), nn.Conv2d(width, codes, 1))

    def forward(self, grid: Tensor) -> Tensor:  # (B, H, W) entry numbers -> (B, codes, H, W) logits
        h = self.first(self.embed(grid).permute(0, 3, 1, 2))
        for layer in self.body:
            h = h + layer(F.relu(h))
        return self.out(h)


@register_model(
    "vqvae",
    "VQ-VAE: conv 32-64 down to a 7x7 grid of 16-D vectors, a 128-entry codebook (moving averages, "
    "restarts), and a PixelCNN-style prior over the grid for sampling",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="vqvae",
)
class VQVAE(Autoencoder, Generative):
    """Encoder: ``down`` (4x4 stride-2 convolutions, ``channels``) and a 3x3 convolution to
    ``code_dim``; the codebook; decoder: a 3x3 convolution and ``up``. ``encode`` returns the
    chosen entries (B, code_dim, H/4, W/4), so ``decode(encode(x))`` is the reconstruction.
    ``forward`` adds two loss terms: ``commitment`` (the encoder's distance to its entries) and
    ``prior`` (the prior's cross-entropy per grid position, in nats), and logs ``perplexity``."""

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        codes: int = 128,
        code_dim: int = 16,
        channels: tuple[int, ...] = (32, 64),
        act: str = "relu",
        decay: float = 0.99,
        prior_width: int = 32,
        prior_layers: int = 4,
    ) -> None:
        super().__init__()
        check_positive(
            in_channels=in_channels,
            in_size=in_size,
            codes=codes,
            code_dim=code_dim,
            channels=channels,
            prior_width=prior_width,
            prior_layers=prior_layers,
        )
        side = check_side(in_size, channels)
        self.input_shape = (in_channels, in_size, in_size)
        self.grid = (side, side)
        self.latent_dim = code_dim * side * side  # decode_latent's flat view of a grid of entries
        self.encoder = nn.Sequential(down(in_channels, channels, act), nn.Conv2d(channels[-1], code_dim, 3, padding=1))
        self.codebook = Codebook(codes, code_dim, decay)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, channels[-1], 3, padding=1), activation(act), up(channels, in_channels, act)
        )
        self.prior = GridPrior(codes, prior_width, prior_layers)

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, code_dim, H/4, W/4) chosen entries
        return self.codebook(self.encoder(x))[0]

    def _decode_logits(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def _forward(self, x: Tensor) -> AEOutput:
        z = self.encoder(x)
        chosen, index, perplexity = self.codebook(z)
        passed = z + (chosen - z).detach()  # straight through: the decoder's gradient reaches the encoder
        commitment = (z.float() - chosen.float()).pow(2).mean()
        prior = F.cross_entropy(self.prior(index), index)
        return AEOutput(
            logits=self.decoder(passed),
            z=passed,
            terms={"commitment": commitment, "prior": prior},
            stats={"perplexity": perplexity},
        )

    @torch.no_grad()
    def sample_grid(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` grids of entry numbers (n, H, W) drawn from the prior, position by position."""
        device = next(self.parameters()).device
        grid = torch.zeros(n, *self.grid, dtype=torch.long, device=device)
        for row in range(self.grid[0]):
            for col in range(self.grid[1]):
                # no masked convolution reads below its centre: the rows so far give the same logits
                logits = self.prior(grid[:, : row + 1])[:, :, row, col].float().cpu() / temperature
                grid[:, row, col] = torch.multinomial(logits.softmax(1), 1, generator=generator).squeeze(1).to(device)
        return grid

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | int | None = None) -> Tensor:
        """``n`` new images: grids drawn from the learned prior, their entries decoded."""
        entries = self.codebook.entries[self.sample_grid(n, generator)].permute(0, 3, 1, 2)
        return self.decode(entries.contiguous(), labels)

    def decode_latent(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        """Images from flat codes (N, code_dim x H x W), each a grid of vectors, as they are."""
        return self.decode(z.view(len(z), -1, *self.grid), labels)
