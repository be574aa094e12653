"""aelab against the same networks written in Keras 3 (TensorFlow-CPU) and in plain PyTorch (fp32
eager), each side trained for the same epochs on the same data in one run of this script.

    python benchmarks/peer_speed.py                          # every row, Fashion-MNIST if installed
    python benchmarks/peer_speed.py --only conv-resize --epochs 5
    python benchmarks/peer_speed.py --only conv-resize char-lstm --sides aelab keras --rounds 3

Rows (the Keras networks are in peers/keras_peers.py, the plain PyTorch ones here and in
speed_training.py / speed_text.py):
- ``conv-resize``: seed 1's conv autoencoder, batch 200, Adam 1e-3, binary cross-entropy; every
  side evaluates the validation images each epoch; quality: test BCE per pixel.
- ``vae``: seed 3's VAE (aelab's `vae`), batch 128, Adam 1e-3, summed BCE + KL; quality: the test
  ELBO in nats per image (100 draws, the first 2,000 test images; higher is better).
- ``char-lstm``: seed 3's text model on pydoc-topics, batch 128, RMSprop 0.01; quality: test bits
  per character (lower is better).
- ``gan``: seed 3's DCGAN (aelab's `gan`: Glorot-uniform weights, label noise 0.05, Adam 2e-4 with
  beta1 0.5 and gradients clipped at 1.0 by value, batch 64); one discriminator step then one
  generator step a batch; quality: aelab's ``fd_classifier`` of 10,000 samples against the test
  images (lower is better), computed here for the Keras and PyTorch samples.
Images train on aelab's training split less its 10% validation images. Throughput: training
images (windows) per second, the median of the epochs after the first; wall: the whole process,
start-up and evaluation included. The sides run alternately, ``--rounds`` times (3 by default;
each round starts with the next side, so no side always runs first or last), and every column is
the median over the rounds (each round's rates are printed as it ends): a peer's speed varies
from run to run on a shared machine, and one run of each says little. The Keras side runs in
.venv-peers (benchmarks/peers.py makes it). Writes its table on top of
benchmarks/results/speed.md, naming the CPU.

The roofline beside the table says whether a ratio is reachable at all on the CPU at hand: each
model's training FLOPs per item (forward and backward, counted by torch's FlopCounterMode on the
plain PyTorch twin; the LSTM's, which it does not count, from its gates' matrix sizes), the
CPU's peak measured in the same run (a 2048x2048 matrix product, float32 and bf16), and so the
most any implementation could run over Keras here: peak / Keras' achieved FLOP/s.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peers import KERAS_SCRIPT, export_data, peer_python
from speed_common import cpu_line, default_data, prepend_section
from torch import nn

ROOT = Path(__file__).resolve().parent
ROWS = {  # aelab model -> (Keras peer, batch, quality metric, its name, higher is better)
    "conv-resize": ("conv-ae", 200, "test_bce", "test BCE", False),
    "vae": ("seed-vae", 128, "test_elbo", "test ELBO (nats)", True),
    "char-lstm": ("char-lstm", 128, "test_bits_per_char", "test bits/char", False),
    "gan": ("gan", 64, "fd_classifier", "fd_classifier", False),
}
BOUND_IMAGES, BOUND_SAMPLES = 2000, 100


def export_text(path: Path) -> None:
    """The default corpus's training and test characters, as alphabet indices."""
    from aelab.data.text import load_text

    text = load_text(None)
    np.savez(
        path, train=text.train.numpy(), val=text.val.numpy(), test=text.test.numpy(), alphabet_size=len(text.alphabet)
    )


def train_flops(model: str, alphabet_size: int) -> float:
    """Training FLOPs per item (image or window): forward and backward of the plain PyTorch twin."""
    from torch.utils.flop_counter import FlopCounterMode

    if model == "char-lstm":  # FlopCounterMode does not see inside nn.LSTM: 4 gates of (input + units) x units
        from speed_text import PlainCharLSTM

        units, steps = PlainCharLSTM(alphabet_size).lstm.hidden_size, 40
        forward = 2 * steps * 4 * units * (alphabet_size + units) + 2 * units * alphabet_size
        return 3.0 * forward  # backward: twice the forward's products (inputs' and weights' gradients)
    if model == "conv-resize":
        from speed_training import PlainSeedOne

        net = PlainSeedOne()
        loss_of = lambda x: F.binary_cross_entropy_with_logits(net(x), x)  # noqa: E731
    elif model == "gan":  # a discriminator step and a generator step (the generator runs in both)
        net = PlainDCGAN()
        x = torch.rand(ROWS[model][1], 1, 28, 28)
        with FlopCounterMode(display=False) as counter:
            net.d_loss(x * 2 - 1, net.generator(net.latent(len(x))).detach()).backward()
            net.g_loss(len(x)).backward()
        return counter.get_total_flops() / len(x)
    else:
        net = PlainSeedVAE()
        loss_of = lambda x: vae_loss(net, x)  # noqa: E731
    x = torch.rand(ROWS[model][1], 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        loss_of(x).backward()
    return counter.get_total_flops() / len(x)


def peak_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of one large matrix product on this CPU at torch's thread count: the roofline."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - began)


def steady(rates: list[float]) -> float:
    return statistics.median(rates[1:] or rates)


def run_aelab(model: str, data_name: str, epochs: int, tmp: Path, *options: str) -> dict:
    """`python -m aelab train MODEL` as a user runs it (``options``: more flags): its steady rate,
    wall time and quality (its row's metric)."""
    out = tmp / f"aelab-{model}-{len(list(tmp.iterdir()))}"
    data = [] if model == "char-lstm" else ["--data", data_name]
    data += [] if model == "gan" else ["--no-early-stopping"]  # a GAN has no early stop to turn off
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "aelab",
            "train",
            model,
            *data,
            "--epochs",
            str(epochs),
            "--no-progress",
            "--out",
            str(out),
            *options,
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - began
    history = json.loads((out / "history.json").read_text())["epochs"]
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "rate": steady([row["images_per_second"] for row in history]),
        "wall": wall,
        "quality": metrics[ROWS[model][2]],
    }


def run_keras(python: Path, model: str, data_file: Path, epochs: int, tmp: Path) -> dict:
    peer = ROWS[model][0]
    began = time.perf_counter()
    subprocess.run(
        [
            str(python),
            str(KERAS_SCRIPT),
            peer,
            "--data",
            str(data_file),
            "--epochs",
            str(epochs),
            "--out",
            str(tmp / f"keras-{peer}"),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - began
    result = json.loads((tmp / f"keras-{peer}" / "result.json").read_text())
    items = result.get("train_windows") or result["train_images"]
    return {
        "rate": steady([items / s for s in result["epoch_seconds"]]),
        "wall": wall,
        "quality": result.get(ROWS[model][2]),
        "samples": tmp / f"keras-{peer}" / "samples.npy",
    }


class PlainSeedVAE(nn.Module):
    """Seed 3's VAE as a user writes it in plain PyTorch (aelab's `vae`)."""

    def __init__(self, latent: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 14 * 14, 32),
            nn.ReLU(),
        )
        self.mean, self.logvar = nn.Linear(32, latent), nn.Linear(32, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, 64 * 14 * 14),
            nn.ReLU(),
            nn.Unflatten(1, (64, 14, 14)),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor):
        h = self.features(x)
        mean, logvar = self.mean(h), self.logvar(h)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decoder(z), mean, logvar


def vae_loss(model: PlainSeedVAE, x: torch.Tensor) -> torch.Tensor:
    logits, mean, logvar = model(x)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum()
    return (recon + kl) / len(x)


@torch.no_grad()
def plain_elbo(model: PlainSeedVAE, images: torch.Tensor) -> float:
    """The ELBO in nats per image: the reconstruction's log-likelihood averaged over 100 draws, less the KL."""
    total = 0.0
    for x in images.split(100):
        h = model.features(x)
        mean, logvar = model.mean(h), model.logvar(h)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(BOUND_SAMPLES, *mean.shape)
        logits = model.decoder(z.flatten(0, 1)).view(BOUND_SAMPLES, len(x), -1)
        flat = x.flatten(1).expand(BOUND_SAMPLES, -1, -1)
        log_px = -F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(-1)
        kl = -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum(-1)
        total += float((log_px.mean(0) - kl).sum())
    return total / len(images)


class PlainDCGAN(nn.Module):
    """Seed 3's DCGAN as aelab's `gan` builds it, written in plain PyTorch: generator dense to
    64x7x7, 4x4 stride-2 transposed convs to 32 and 16 (batch norm, LeakyReLU 0.2), a 5x5 conv with
    tanh; discriminator 4x4 stride-2 convs 32 and 64 (LeakyReLU 0.2), dropout 0.4, dense; Glorot-
    uniform weights and zero biases (Keras' defaults, which the seed trained with)."""

    LATENT, LABEL_NOISE = 32, 0.05

    def __init__(self) -> None:
        super().__init__()
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.generator = nn.Sequential(
            nn.Linear(self.LATENT, 64 * 7 * 7),
            nn.Unflatten(1, (64, 7, 7)),
            nn.BatchNorm2d(64),
            act(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.BatchNorm2d(32),
            act(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.BatchNorm2d(16),
            act(),
            nn.Conv2d(16, 1, 5, padding=2),
            nn.Tanh(),
        )
        self.discriminator = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1),
            act(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            act(),
            nn.Flatten(),
            nn.Dropout(0.4),
            nn.Linear(64 * 7 * 7, 1),
        )
        for layer in self.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def latent(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.LATENT)

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Generated images labelled 1, real ones 0, each label moved inward by 0.05 x U(0, 1)."""
        labels = torch.cat([torch.ones(len(fake)), torch.zeros(len(real))])
        labels = labels - self.LABEL_NOISE * torch.rand_like(labels) * (2 * labels - 1)
        return F.binary_cross_entropy_with_logits(self.discriminator(torch.cat([fake, real])).squeeze(1), labels)

    def g_loss(self, n: int) -> torch.Tensor:
        logits = self.discriminator(self.generator(self.latent(n))).squeeze(1)
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def train_plain_gan(train: torch.Tensor, epochs: int, samples_file: str) -> list[float]:
    """Seed 3's loop, batch 64; the training rate of each epoch; 10,000 samples in [0, 1] to ``samples_file``."""
    model = PlainDCGAN()
    adam = lambda part: torch.optim.Adam(part.parameters(), lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
    opt_d, opt_g = adam(model.discriminator), adam(model.generator)
    rates = []
    for _ in range(epochs):
        began = time.perf_counter()
        model.train()
        for real in train[torch.randperm(len(train))].split(64):
            real = real * 2 - 1
            for optimizer, player, loss_of in (
                (
                    opt_d,
                    model.discriminator,
                    lambda: model.d_loss(real, model.generator(model.latent(len(real))).detach()),  # noqa: B023
                ),  # (each loss is called within this step, while ``real`` is this batch)
                (opt_g, model.generator, lambda: model.g_loss(len(real))),  # noqa: B023
            ):
                loss = loss_of()
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_value_(player.parameters(), 1.0)  # Keras' clipvalue=1.0
                optimizer.step()
        rates.append(len(train) / (time.perf_counter() - began))
    model.eval()
    with torch.no_grad():
        samples = torch.cat([model.generator(model.latent(1000)) for _ in range(10)])
    np.save(samples_file, ((samples[:, 0] + 1) / 2).clamp(0, 1).numpy())
    return rates


def torch_worker(model_name: str, data_file: str, epochs: int) -> dict:
    """The plain PyTorch side, in a process of its own."""
    data = np.load(data_file)
    torch.manual_seed(0)
    rates = []
    if model_name == "char-lstm":
        from speed_text import PlainCharLSTM

        train, test, size = (torch.from_numpy(data[k]).long() for k in ("train", "test", "alphabet_size"))
        size = int(size)
        model = PlainCharLSTM(size)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, eps=1e-7)  # Keras' RMSprop
        windows = train.unfold(0, 41, 3)
        for _ in range(epochs):
            began = time.perf_counter()
            for batch in windows[torch.randperm(len(windows))].split(128):
                loss = F.cross_entropy(model(F.one_hot(batch[:, :-1], size).float()), batch[:, -1])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            rates.append(len(windows) / (time.perf_counter() - began))
        with torch.no_grad():
            nats = sum(
                float(F.cross_entropy(model(F.one_hot(b[:, :-1], size).float()), b[:, -1], reduction="sum"))
                for b in test.unfold(0, 41, 1).split(1000)
            )
        return {"rate": steady(rates), "quality": nats / (len(test) - 40) / math.log(2)}
    as_float = lambda key: torch.from_numpy(data[key]).float().div(255).unsqueeze(1)  # noqa: E731
    train, val, test = as_float("x_train"), as_float("x_val"), as_float("x_test")
    if model_name == "gan":  # its quality (the samples' fd_classifier) is measured by the calling process
        return {"rate": steady(train_plain_gan(train, epochs, str(Path(data_file).with_name("torch-gan.npy"))))}
    if model_name == "conv-resize":
        from speed_training import PlainSeedOne

        model, batch_size = PlainSeedOne(), 200

        def loss_of(x):
            return F.binary_cross_entropy_with_logits(model(x), x)
    else:
        model, batch_size = PlainSeedVAE(), 128

        def loss_of(x):
            return vae_loss(model, x)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        began = time.perf_counter()
        model.train()
        for batch in train[torch.randperm(len(train))].split(batch_size):
            loss = loss_of(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum(float(loss_of(b)) for b in val.split(1000))
        rates.append(len(train) / (time.perf_counter() - began))
    if model_name == "vae":
        return {"rate": steady(rates), "quality": plain_elbo(model, test[:BOUND_IMAGES])}
    with torch.no_grad():
        bce = sum(float(F.binary_cross_entropy_with_logits(model(b), b, reduction="sum")) for b in test.split(1000))
    return {"rate": steady(rates), "quality": bce / test.numel()}


SIDES = {"aelab": "aelab", "keras": "Keras 3 (TensorFlow)", "torch": "plain PyTorch (fp32 eager)"}


def medians(runs: list[dict]) -> dict:
    """One side's rounds as one row: the median of each figure, and every round's rate."""
    return {
        "rate": statistics.median(r["rate"] for r in runs),
        "wall": statistics.median(r["wall"] for r in runs),
        "quality": statistics.median(r["quality"] for r in runs),
        "rates": [r["rate"] for r in runs],
    }


def run_torch(model: str, data_file: Path, epochs: int) -> dict:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", model, "--data-file", str(data_file), "--epochs", str(epochs)],
        check=True,
        capture_output=True,
        text=True,
    )
    return {
        **json.loads(done.stdout.strip().splitlines()[-1]),
        "wall": time.perf_counter() - began,
        "samples": data_file.with_name("torch-gan.npy"),
    }


def sample_fd(samples_file: Path, data) -> float:
    """aelab's fd_classifier of a peer's samples (N, 28, 28) in [0, 1] against the test images."""
    from aelab.frechet import sample_quality

    samples = torch.from_numpy(np.load(samples_file)).float().unsqueeze(1)
    return sample_quality(samples, data)["fd_classifier"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data(), help="the image rows' dataset")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES), help="aelab always runs")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side; medians reported")
    parser.add_argument("--worker", choices=list(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(torch_worker(args.worker, args.data_file, args.epochs)))
        return 0
    cpu = cpu_line()
    print(cpu, flush=True)
    options = (
        (f" --data {args.data}" if args.data != default_data() else "")
        + (f" --epochs {args.epochs}" if args.epochs != 3 else "")
        + (f" --only {' '.join(args.only)}" if args.only != list(ROWS) else "")
        + (f" --sides {' '.join(args.sides)}" if args.sides != list(SIDES) else "")
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
    )
    chosen = ["aelab", *(s for s in args.sides if s != "aelab")]
    python = peer_python(ROOT.parent / ".venv-peers") if "keras" in chosen else None
    lines = [
        f"## Peers, {datetime.date.today()}: {cpu}",
        "",
        f"`python benchmarks/peer_speed.py{options}`: {args.epochs} epochs each side, {args.rounds} alternating "
        f"round(s), medians; images from {args.data}.",
        "",
        "| model | side | training items/s (steady; median) | each round | wall s | quality | aelab's speed over it |",
        "|---|---|---|---|---|---|---|",
    ]
    roofline = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        images = export_data(args.data, tmp / "images.npz")
        export_text(tmp / "text.npz")
        alphabet_size = int(np.load(tmp / "text.npz")["alphabet_size"])
        for model in args.only:
            data_file = tmp / ("text.npz" if model == "char-lstm" else "images.npz")
            runners = {
                "aelab": functools.partial(run_aelab, model, args.data, args.epochs, tmp),
                "keras": functools.partial(run_keras, python, model, data_file, args.epochs, tmp),
                "torch": functools.partial(run_torch, model, data_file, args.epochs),
            }
            runs = {side: [] for side in chosen}
            for round_ in range(args.rounds):
                order = chosen[round_ % len(chosen) :] + chosen[: round_ % len(chosen)]
                for side in order:
                    done = runners[side]()
                    # the GAN's peers leave samples, measured here as aelab measures its own
                    if done.get("quality") is None:
                        done["quality"] = sample_fd(done["samples"], images)
                    runs[side].append(done)
                    print(f"  {model} round {round_ + 1} {side}: {done['rate']:,.0f} items/s", flush=True)
            sides = {SIDES[side]: medians(runs[side]) for side in chosen}
            for name, side in sides.items():
                ratio = "-" if name == "aelab" else f"{sides['aelab']['rate'] / side['rate']:.2f}x"
                each = ", ".join(f"{r:,.0f}" for r in side["rates"])
                lines.append(
                    f"| {model} | {name} | {side['rate']:,.0f} | {each} | {side['wall']:.0f} | "
                    f"{ROWS[model][3]} {side['quality']:.4f} | {ratio} |"
                )
                print(lines[-1], flush=True)
            flops = train_flops(model, alphabet_size)
            achieved = {name: side["rate"] * flops / 1e9 for name, side in sides.items()}
            roofline.append((model, flops, achieved))
    from aelab.accel import cpu_supports_bf16

    peaks = {"float32": peak_flops(torch.float32) / 1e9}
    if cpu_supports_bf16():  # without bf16 instructions torch's bf16 product crawls (minutes): no peak to know
        peaks["bf16"] = peak_flops(torch.bfloat16) / 1e9
    best = max(peaks.values())
    lines += [
        "",
        f"Roofline: one 2048x2048 matrix product ran at {peaks['float32']:,.0f} GFLOP/s in float32"
        + (f" and {peaks['bf16']:,.0f} in bf16" if "bf16" in peaks else " (this CPU has no bf16 arithmetic)")
        + " on this CPU; no training step runs faster than that.",
        "",
        "| model | training MFLOP per item | aelab GFLOP/s | Keras GFLOP/s | PyTorch GFLOP/s | "
        "most any side could run over Keras here |",
        "|---|---|---|---|---|---|",
    ]
    for model, flops, achieved in roofline:
        keras = achieved.get(SIDES["keras"])
        torch_ = achieved.get(SIDES["torch"])
        lines.append(
            f"| {model} | {flops / 1e6:,.1f} | {achieved['aelab']:,.0f} | "
            + (f"{keras:,.0f}" if keras else "-")
            + f" | {f'{torch_:,.0f}' if torch_ else '-'} | "
            + (f"{best / keras:.1f}x |" if keras else "- |")
        )
        print(lines[-1], flush=True)
    prepend_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
