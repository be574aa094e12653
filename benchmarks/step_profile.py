"""Where a training step's time goes, operator by operator, and how near it runs to this CPU's
arithmetic peak (the roofline ratio).

    python benchmarks/step_profile.py                        # seed 1's conv-resize, char-lstm, VGG19
    python benchmarks/step_profile.py --only conv-resize --steps 40
    python benchmarks/step_profile.py --only conv-resize --layers   # and each convolution alone
    python benchmarks/step_profile.py --only best vae               # aelab's best, seed 3's VAE
    python benchmarks/step_profile.py --only geom geom-scores       # the anomaly detector's network

Each row is a step as aelab runs it on this CPU:
- ``conv-resize``: seed 1's model on the embedded digits, batch 200, through the family's own
  system and optimiser (``_shared_step``: channels-last and the precision training chooses here,
  the written-out BCE, fused Adam);
- ``conv-resize-denoise``: the demo's second run (32-32-16 channels, noise 0.5), the same way;
- ``best`` and ``vae`` (with ``--only``): aelab's best at its defaults (batch 128) and seed 3's
  VAE (batch 128), the same way;
- ``char-lstm``: seed 3's text model on pydoc-topics, batch 128 windows of 40, RMSprop;
- ``geom`` and ``geom-scores`` (with ``--only``): the anomaly detector's transformations network,
  a training step at its batch of 128, and the scores of a chunk of 256 images under its 20
  transformations (5,120 forward passes, no gradient), as the detector runs them;
- ``vgg19``: one evaluation of style transfer's loss at 400x600 (VGG19's forward and backward
  through the image, the seed's content, style and variation losses), as each L-BFGS step
  evaluates it; random filters (the arithmetic is the same as ImageNet's).

Measured in one process, with glibc keeping freed memory as training sets it: the step's median
wall time over ``--steps`` steps after a warm-up, its FLOPs (torch's FlopCounterMode; the LSTM's,
which it does not count, from its gates' sizes), a 2048x2048 float32 matrix product's rate (the
peak any step could reach), and torch.profiler's self time per operator, grouped by kind, in ms a
step. "Python, dispatch and waiting" is the profiled steps' wall time less every operator's self
time (the profiler's own cost lands there too, so a profiled step is slower than the timed one).
The trainer's own cost per step is measured apart (benchmarks/speed_overhead.py,
epochs_speed.py). ``--layers`` also times each convolution of the image models (seed 1's two,
``best`` and ``vae``), transposed ones too, alone (forward, and backward as training runs it: the
input's gradient only where the input needs one), channels-last at the step's batch, with its
GFLOP/s. Writes a section on top of benchmarks/results/speed.md naming the CPU class
(ONEDNN_MAX_CPU_ISA caps it: results/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from peer_speed import peak_flops
from speed_common import cpu_line, prepend_section
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from aelab.accel import keep_freed_memory
from aelab.nets.blocks import ImageConv2d

GROUPS = (  # (kind, substrings of aten operator names), first match wins
    ("convolution, backward", ("convolution_backward",)),
    ("convolution, forward", ("convolution", "conv2d")),
    ("LSTM (oneDNN's fused kernel)", ("rnn", "lstm")),
    ("matrix products", ("addmm", "mm", "matmul", "linear", "bmm")),
    ("batch norm", ("batch_norm",)),
    ("max-pooling", ("max_pool",)),
    ("nearest resize", ("upsample",)),
    ("activations", ("relu", "threshold", "clamp", "sigmoid", "tanh")),
    ("optimiser", ("adam", "rmsprop", "foreach", "addcdiv", "lerp", "sqrt")),
    ("copies, fills, allocation", ("copy", "fill", "zero", "empty", "contiguous", "clone", "to_dense", "cat")),
    ("losses and sums", ("log", "exp", "sum", "mean", "pow", "sub", "mul", "add", "div", "abs", "neg", "one_hot")),
)


IMAGE_MODELS = ("conv-resize", "conv-resize-denoise", "best", "vae")  # what --layers times


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in GROUPS:
        if any(k in low for k in keys):
            return kind
    return "other operators"


def system_step(model: str, data: str):
    """aelab's training step for ``model`` (its family's system and optimiser), cycling its batches."""
    from aelab.families.base import make_optimizer
    from aelab.training import plan

    with tempfile.TemporaryDirectory() as folder:  # plan writes nothing; the folder only has to be free
        p = plan(model, data, Path(folder) / "run", False, False, "cpu", {})
    settings = p.config.train
    system = p.family.build_system(p.model, settings)
    # the optimiser configure_optimizers makes, without its schedule (a cosine one asks the trainer)
    name = settings.optimizer
    optimiser = make_optimizer(name, p.model.parameters(), settings.lr, **system.optimizer_options.get(name, {}))
    batches = list(p.family.batches(p.data, p.model, settings, None)[0])[:20]
    count = [0]

    def step() -> None:
        batch = batches[count[0] % len(batches)]
        count[0] += 1
        loss = system._shared_step(batch, "train", 0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step, len(batches[0][0]), p


def lstm_flops(model) -> float:
    """A training step's FLOPs per window for an nn.LSTM model: each gate's matrix products over the
    window (forward; backward twice that), the head once."""
    lstm = model.lstm
    units, inputs, steps = lstm.hidden_size, lstm.input_size, model.maxlen
    forward = steps * 2 * 4 * units * (inputs + units) + 2 * units * len(model.alphabet)
    return 3.0 * forward


def vgg_step():
    """One evaluation of style transfer's loss at 400x600 and its gradient, as L-BFGS evaluates it."""
    from aelab.config import StyleSettings
    from aelab.style import LAYOUT, StyleProblem
    from aelab.vgg import VGGFeatures, load_vgg19, to_caffe, vgg_precision

    settings = StyleSettings()
    features, _ = load_vgg19(None)
    net = VGGFeatures(features, [*settings.style_layers, settings.content_layer]).eval()
    net = net.to(memory_format=LAYOUT)
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 400, 600, generator=generator)
    style = torch.rand(1, 3, 300, 300, generator=generator)
    problem = StyleProblem(net, settings, content, style, vgg_precision(settings.precision, "cpu"))
    x = to_caffe(content).clone().requires_grad_(True)

    def step() -> None:
        x.grad = None
        problem.loss(x).backward()

    return step, 1


def geom_step(scoring: bool):
    """The anomaly detector's transformations network (aelab.transformations, its default width) on
    Fashion-MNIST-sized images: a training step as ``fit_transformation_net`` runs it (a batch, each
    image under a drawn transformation, cross-entropy, Adam), or (``scoring``) the scores of one
    chunk of images under all 20 transformations, as ``transformation_scores`` runs them."""
    import torch.nn.functional as F

    from aelab.transformations import BATCH, LR, TRANSFORMS, TransformationNet, _transformed, transformation_scores

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH if not scoring else 256, 1, 28, 28, generator=generator)
    net = TransformationNet(1).to(memory_format=torch.channels_last)
    if scoring:
        net.eval()
        return (lambda: transformation_scores(net, images)), len(images)
    optimiser = torch.optim.Adam(net.parameters(), lr=LR)

    def step() -> None:
        drawn = torch.randint(len(TRANSFORMS), (len(images),), generator=generator)
        inputs, targets = _transformed(images, drawn)
        loss = F.cross_entropy(net(inputs), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step, len(images)


def conv_layers(model: str, steps: int) -> list[str]:
    """Each convolution of ``model``'s network (transposed ones too) timed alone at the training batch,
    channels-last: the table's rows (kind and shape, forward and backward ms, GFLOP/s of each)."""
    step, items, p = system_step(model, "mnist-sample")
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach(), o.shape)))
        for m in p.model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    step()
    for hook in hooks:
        hook.remove()
    rows = []
    for index, (conv, x, shape) in enumerate(seen):
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(index > 0)  # the image needs none
        grad = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        forward, backward = [], []
        for _ in range(steps + 3):
            began = time.perf_counter()
            y = conv(x)
            middle = time.perf_counter()
            y.backward(grad)
            forward.append(middle - began)
            backward.append(time.perf_counter() - middle)
        f, b = statistics.median(forward[3:]), statistics.median(backward[3:])
        transposed = isinstance(conv, torch.nn.ConvTranspose2d)
        # each multiply-add pairs a pixel of the smaller side's grid with a tap and the other side's channels
        taps = conv.kernel_size[0] * conv.kernel_size[1]
        if transposed:
            flops = 2 * x.numel() * conv.out_channels * taps
        else:
            flops = 2 * shape.numel() * conv.in_channels // conv.groups * taps
        what = f"{conv.kernel_size[0]}x{conv.kernel_size[1]}{' transposed' if transposed else ''}"
        stride = f", stride {conv.stride[0]}" if conv.stride[0] > 1 else ""
        rows.append(
            f"| {what} {conv.in_channels} -> {conv.out_channels}{stride} at {shape[-1]}x{shape[-1]} | "
            f"{f * 1e3:.2f} | {flops / f / 1e9:,.0f} | {b * 1e3:.2f} | {flops * (2 if index else 1) / b / 1e9:,.0f} |"
        )
    return rows


def timed(step, steps: int) -> float:
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


@contextlib.contextmanager
def as_conv2d(model: torch.nn.Module | None):
    """``model``'s ImageConv2d layers as the nn.Conv2d whose arithmetic they do, for the block."""
    layers = [] if model is None else [m for m in model.modules() if isinstance(m, ImageConv2d)]
    for layer in layers:
        layer.__class__ = torch.nn.Conv2d
    try:
        yield
    finally:
        for layer in layers:
            layer.__class__ = ImageConv2d


def counted_flops(step, model) -> float:
    """A step's FLOPs as torch's FlopCounterMode counts them, with ``model``'s ImageConv2d layers
    counted as the nn.Conv2d whose arithmetic they do: the counter takes a depthwise convolution's
    backward for a full convolution's (6x too many FLOPs for seed 1's last layer)."""
    with as_conv2d(model), FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def measure(name: str, steps: int) -> dict:
    torch.manual_seed(0)
    model = None  # the training step's network, where it is one of aelab's models
    if name == "vgg19":
        step, items = vgg_step()
        steps = max(3, steps // 10)
    elif name.startswith("geom"):
        step, items = geom_step(scoring=name == "geom-scores")
    else:
        step, items, p = system_step(name, "pydoc-topics" if name == "char-lstm" else "mnist-sample")
        model = p.model
    for _ in range(3):
        step()
    if name == "char-lstm":
        flops = lstm_flops(model) * items
    else:
        flops = counted_flops(step, model)
    seconds = timed(step, steps)
    profiled = max(2, steps // 2)
    with profile() as prof:
        began = time.perf_counter()
        for _ in range(profiled):
            step()
        wall = (time.perf_counter() - began) / profiled * 1e3  # ms a step under the profiler
    kinds: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("aten::"):  # the rest (autograd's and the optimiser's frames) is Python
            kinds[kind_of(event.key)] += event.self_cpu_time_total / 1e3 / profiled  # ms a step
    kinds["Python, dispatch and waiting"] = max(0.0, wall - sum(kinds.values()))
    return {"seconds": seconds, "profiled": wall, "items": items, "flops": flops, "kinds": dict(kinds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = ["conv-resize", "conv-resize-denoise", "char-lstm", "vgg19"]
    more = ["best", "vae", "geom", "geom-scores"]  # the demo's third run, the quick start's VAE, the detector's network
    parser.add_argument("--only", nargs="+", choices=choices + more, default=choices)
    parser.add_argument("--steps", type=int, default=30, help="steps timed (VGG19: a tenth, at least 3)")
    parser.add_argument("--layers", action="store_true", help="also each convolution of the image models alone")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as `aelab train` runs: without it every step faults its activations in anew
    cpu = cpu_line()
    print(cpu, flush=True)
    results = {}
    for name in args.only:
        results[name] = measure(name, args.steps)
        r = results[name]
        print(f"{name}: {r['seconds'] * 1e3:.1f} ms a step, {r['flops'] / 1e9:.2f} GFLOP", flush=True)
    peak = statistics.median(peak_flops(torch.float32) for _ in range(3)) / 1e9
    options = (
        (f" --only {' '.join(args.only)}" if args.only != choices else "")
        + (f" --steps {args.steps}" if args.steps != 30 else "")
        + (" --layers" if args.layers else "")
    )
    lines = [
        f"## Step profile, {datetime.date.today()}: {cpu}",
        "",
        f"`python benchmarks/step_profile.py{options}`. Peak: a 2048x2048 float32 matrix product at "
        f"{peak:,.0f} GFLOP/s (median of 3) in the same run.",
        "",
        "| step | items | ms a step (median) | GFLOP a step | GFLOP/s | roofline ratio (achieved / peak) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        rate = r["flops"] / r["seconds"] / 1e9
        lines.append(
            f"| {name} | {r['items']} | {r['seconds'] * 1e3:,.1f} | {r['flops'] / 1e9:.2f} | {rate:,.0f} | "
            f"{rate / peak:.2f} |"
        )
    present = {k for r in results.values() for k in r["kinds"]}
    order = [g[0] for g in GROUPS] + ["other operators", "Python, dispatch and waiting"]
    kinds = [k for k in order if k in present]
    lines += [
        "",
        "Where each step's milliseconds go (torch.profiler's self time per operator, grouped; ms a step):",
        "",
        "| kind | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for kind in kinds:
        cells = [f"{r['kinds'].get(kind, 0.0):,.1f}" for r in results.values()]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append(
        "| the step under the profiler (wall) | " + " | ".join(f"{r['profiled']:,.1f}" for r in results.values()) + " |"
    )
    for name in [n for n in results if args.layers and n in IMAGE_MODELS]:
        lines += [
            "",
            f"{name}'s convolutions alone, in the order its forward runs them (ms and GFLOP/s; medians):",
            "",
            "| convolution | forward ms | forward GFLOP/s | backward ms | backward GFLOP/s |",
            "|---|---|---|---|---|",
            *conv_layers(name, args.steps),
        ]
    print("\n".join(lines), flush=True)
    prepend_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
