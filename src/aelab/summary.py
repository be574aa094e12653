"""`aelab summary`: each layer's output shape and parameter count, as Keras' ``model.summary()``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import AelabError, opt
from .nets.base import Autoencoder, Network

__all__ = ["format_summary", "draw_graph", "layer_table"]  # the public names of aelab.summary


@torch.no_grad()
def layer_table(model: Network, example: tuple[torch.Tensor, ...]) -> list[tuple[str, str, str, int]]:
    """(name, layer type, output shape, parameters) for every leaf module, in call order."""
    rows: list[tuple[str, str, str, int]] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, _inputs, output) -> None:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else "-"
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append((names[module], type(module).__name__, str(shape).replace(", ", "x")[1:-1], params))

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        model.eval()
        model.layers(*example)
    finally:
        for hook in hooks:
            hook.remove()
    return rows


def format_summary(model: Network, title: str) -> str:
    """The table for one input of the kind the model takes (``model.example_inputs()``)."""
    example = model.example_inputs()
    rows = [(name, kind, shape, f"{params:,}") for name, kind, shape, params in layer_table(model, example)]
    header = ("layer", "type", "output shape", "params")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    rule = "-" * (sum(widths) + 6)

    def fmt(row: tuple[str, str, str, str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3].rjust(widths[3])

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [
        title,
        rule,
        fmt(header),
        rule,
        *map(fmt, rows),
        rule,
        f"input: {'x'.join(map(str, example[0].shape))}",
        f"total parameters: {total:,} (trainable {trainable:,})",
    ]
    if isinstance(model, Autoencoder):
        lines.append(f"code: {'x'.join(map(str, model.code_shape()))} = {model.code_size()} values per image")
    return "\n".join(lines)


def draw_graph(model: Network, out: str | Path, title: str, depth: int = 3, overwrite: bool = False) -> Path:
    """The model's graph as a PNG, as Keras' ``plot_model(show_shapes=True)`` draws it: each layer
    with its input and output shapes, drawn by torchview and Graphviz's ``dot``. Checks ``out``
    (an existing file is replaced only with ``overwrite``) and ``dot`` before anything is
    written; the PNG is written whole or not at all."""
    import shutil

    from .outputs import atomic_write, check_targets

    out = check_targets([out], overwrite=overwrite, suffixes=(".png",), what=opt("graph"))[0]
    if shutil.which("dot") is None:
        raise AelabError(
            "drawing the graph needs Graphviz's dot program, which is not installed (Debian/Ubuntu: "
            "apt-get install graphviz; macOS: brew install graphviz; conda: conda install graphviz)"
        )
    from torchview import draw_graph as torchview_graph

    inputs = list(model.example_inputs())
    model.eval()
    graph = torchview_graph(
        _Layers(model), input_data=inputs, depth=depth + 1, expand_nested=True, graph_name=title, device="cpu"
    )
    png = graph.visual_graph.pipe(format="png")  # rendered in memory: no intermediate files beside the PNG
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_bytes(png))
    return out


class _Layers(nn.Module):
    """The model's layers without its input checks, which would otherwise appear in the graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor):
        return self.model.layers(*inputs)
