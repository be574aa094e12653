"""VGG19 as seed 3's Keras network sees images, for style transfer: torchvision's convolutional
part, fed images in Keras' "caffe" pixel space (BGR, 0-255, ImageNet mean removed) and returning
the named layers' activations at the magnitude Keras' 0-255 network gives (``KERAS_SCALE``).

Weights: torchvision's ImageNet VGG19 weights from its cache (``download=True`` fetches them), or
a file in torchvision's state-dict layout (read weights-only; the ``features.*`` keys suffice),
or random filters where there are none (said in a warning).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import AelabError, check_file, opt

log = logging.getLogger("aelab")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # what Keras' vgg19.preprocess_input removes
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Keras' VGG19 reads 0-255 pixels, torchvision's reads pixels / 255 / std: activations (and the
# network is close to linear in its input's scale) are this much smaller in torchvision's. The
# features are multiplied back, so the seed's loss weights meet the magnitudes they were set for.
KERAS_SCALE = 255.0 * sum(TORCHVISION_STD) / 3


def layer_names() -> list[str]:
    """Keras' names for VGG19's conv layers (block1_conv1 ...), in order."""
    from torchvision.models.vgg import cfgs

    names, block, conv = [], 1, 0
    for channels in cfgs["E"]:  # torchvision's VGG19 configuration
        if channels == "M":
            block, conv = block + 1, 0
        else:
            conv += 1
            names.append(f"block{block}_conv{conv}")
    return names


class VGGFeatures(nn.Module):
    """torchvision's VGG19 convolutional part, returning the activations (after ReLU, as Keras'
    conv layers with ``activation='relu'``) of the named layers, and running only as deep as the
    deepest of them."""

    def __init__(self, features: nn.Sequential, wanted: list[str]) -> None:
        super().__init__()
        # torchvision's features: conv, ReLU, ..., max-pool; index of each conv's ReLU by Keras name
        relus = [i for i, m in enumerate(features) if isinstance(m, nn.ReLU)]
        self.at = {name: relus[k] for k, name in enumerate(layer_names()) if name in wanted}
        self.layers = features[: max(self.at.values()) + 1]
        for module in self.layers:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # the activations are read after the next layer runs
        self.register_buffer("mean", torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def forward(self, caffe: Tensor) -> dict[str, Tensor]:  # (B, 3, H, W) caffe space -> {name: (B, C, h, w)}
        x = (from_caffe(caffe) - self.mean) / self.std
        wanted = {index: name for name, index in self.at.items()}
        out = {}
        for index, layer in enumerate(self.layers):
            if index < 2:  # the first conv and its ReLU in float32 (the image's small changes survive)
                with torch.autocast(x.device.type, enabled=False):
                    x = layer(x.float())
            else:
                x = layer(x)
            if index in wanted:
                out[wanted[index]] = x * KERAS_SCALE
        return out


def to_caffe(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> BGR, 0-255, mean removed (Keras' vgg19.preprocess_input)."""
    return image.flip(1) * 255.0 - torch.tensor(CAFFE_MEAN_BGR, device=image.device).view(1, 3, 1, 1)


def from_caffe(caffe: Tensor) -> Tensor:
    """The inverse of :func:`to_caffe` (unclipped): RGB in [0, 1]."""
    return ((caffe + torch.tensor(CAFFE_MEAN_BGR, device=caffe.device).view(1, 3, 1, 1)) / 255.0).flip(1)


def vgg_precision(requested: str, device: str) -> str:
    """ "bf16" where it pays for VGG19 (a GPU with bf16, a CPU with AMX) or where asked for, else "32".

    Not on an AMD Zen 5, where training's bf16 pays (:func:`aelab.accel.cpu_bf16_pays`): there
    `aelab style` at its defaults took 0.68x float32's time in bf16 but ended at a loss 8.9% higher
    (benchmarks/results/style.md), and the command keeps float32's final loss."""
    from .accel import cpu_has_amx

    if requested not in ("auto", "bf16", "32"):
        raise AelabError(f"unknown precision {requested!r}; choose auto, bf16 or 32")
    if requested != "auto":
        return requested
    fast = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_amx()
    return "bf16" if fast else "32"


def load_vgg19(weights: str | Path | None = None, download: bool = False, seed: int = 0) -> tuple[nn.Sequential, str]:
    """VGG19's ``features`` and where their weights came from ("imagenet", "random" or the file)."""
    from torchvision.models import VGG19_Weights
    from torchvision.models.vgg import cfgs, make_layers

    # only the convolutional part (the classifier's 120M weights are never used), initialised as
    # torchvision's VGG initialises it; the random filters are the same every run
    torch.manual_seed(seed)
    features = make_layers(cfgs["E"])
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    if weights is not None:
        path = check_file(Path(weights), "weights file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling errors come in many types
            raise AelabError(f"weights file {path} is damaged or not a state dict ({type(error).__name__})") from None
        return _load_features(features, state, path), str(path)
    imagenet = VGG19_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(imagenet.url).name
    if cached.is_file() or download:
        try:
            state = imagenet.get_state_dict(progress=True, weights_only=True)
        except Exception as error:  # offline, proxy, disk
            raise AelabError(
                f"cannot download the VGG19 weights ({type(error).__name__}); pass {opt('weights', 'FILE')}"
            ) from None
        return _load_features(features, state, cached), "imagenet"
    log.warning(
        "no VGG19 ImageNet weights in %s: running with random filters, a weaker transfer. For the real "
        f"one, pass {opt('download', True)} (or {opt('weights', 'FILE')}, a torchvision vgg19 state dict)",
        cached.parent,
    )
    return features, "random"


def _load_features(features: nn.Sequential, state: object, source: Path) -> nn.Sequential:
    if not isinstance(state, dict):
        raise AelabError(f"{source} is not a state dict")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = {k.removeprefix("features."): v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    try:
        features.load_state_dict(own)
    except RuntimeError as error:
        raise AelabError(
            f"{source} does not hold torchvision's vgg19 features ({str(error).splitlines()[0]})"
        ) from None
    return features
