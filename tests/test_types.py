"""Every exported function keeps the API's one type convention (docs/api.md, "Types"): numpy in, numpy
out; a tensor in, a tensor out; numpy where nothing goes in; figures return their Path. Each name
``aelab`` exports is sorted into one of the lists below, so a new export has to say which it is."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

import aelab

SAME_KIND = {"reconstruct", "encode", "decode", "interpolate"}  # array in -> the same kind out
NUMPY_OUT = {
    "sample",
    "manifold",
    "latent",
    "encode_split",
    "load_data",
    "encode_file",
    "activations",
}  # nothing in -> numpy
# images as files or RGB tensors (3, H, W) in, the painting as a tensor: its own convention (README, "Style transfer")
OWN_CONVENTION = {"style_transfer"}
FIGURES = {name for name in aelab.inference.__all__ if name.endswith("_figure")}


def exported_functions() -> dict[str, object]:
    """Every function of the user's API that may take or give images: aelab's top level and
    aelab.inference, by name (the one list: each module's ``__all__``). The other namespaces'
    tensors are torch building blocks (data, anomaly parts, style losses)."""
    found = {}
    for module in (aelab, aelab.inference):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value):
                found.setdefault(name, value)
    return found


def test_every_function_that_gives_arrays_is_sorted_into_a_kind():
    """A function whose result is annotated as an array or tensor must be in a list this file tests."""
    gives_arrays = {
        name
        for name, function in exported_functions().items()
        if any(word in str(inspect.signature(function).return_annotation) for word in ("ndarray", "Tensor"))
    }
    assert gives_arrays, "no function found: the annotations are not being read"
    sorted_ = SAME_KIND | NUMPY_OUT | OWN_CONVENTION
    assert gives_arrays <= sorted_, sorted(gives_arrays - sorted_)


@pytest.fixture(scope="module")
def vae(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("types") / "vae"
    assert (
        run_cli(
            "train",
            "vae",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--out",
            out,
            "--no-progress",
            "--no-bounds",
            "--no-quality",
        )
        == 0
    )
    return out


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_an_array_comes_back_in_the_kind_it_went_in(kind, trained_run, vae, small_data):
    digits = np.load(small_data / "digits.npz")["x"][:3]  # uint8 (N, H, W)
    convert = (lambda a: a) if kind == "numpy" else torch.from_numpy
    expected = np.ndarray if kind == "numpy" else torch.Tensor
    for layout in (digits, digits[:, None], digits[..., None]):  # (N, H, W), (N, C, H, W), (N, H, W, C)
        x = convert(layout)
        recon = aelab.reconstruct(trained_run, x)
        assert (
            isinstance(recon, expected)
            and tuple(recon.shape) == (3, 1, 28, 28)
            and recon.dtype in (np.float32, torch.float32)
        )
        codes = aelab.encode(trained_run, x)
        assert isinstance(codes, expected) and isinstance(aelab.decode(trained_run, codes), expected)
    floats = convert(digits.astype(np.float16) / 255)  # half precision in, float32 out
    assert isinstance(aelab.reconstruct(trained_run, floats), expected)
    path = aelab.interpolate(vae, convert(digits[:1]), convert(digits[1:2]), steps=3)
    assert isinstance(path, expected) and tuple(path.shape) == (5, 1, 28, 28)


def test_functions_without_an_array_in_give_numpy(trained_run, vae, tmp_path):
    assert isinstance(aelab.sample(vae, 4), np.ndarray) and aelab.sample(vae, 4).shape == (4, 1, 28, 28)
    assert isinstance(aelab.manifold(vae, 3), np.ndarray)
    points, labels, axes = aelab.latent(trained_run)
    assert isinstance(points, np.ndarray) and isinstance(labels, np.ndarray) and len(axes) == 2
    assert isinstance(aelab.inference.encode_split(trained_run, "test"), np.ndarray)
    assert isinstance(aelab.interpolate(vae, steps=3), np.ndarray)  # no images: two prior points
    data = aelab.load_data("mnist-sample")
    assert isinstance(data.x_train, np.ndarray) and data.x_train.dtype == np.float32
    assert data.x_train.shape[1:] == (1, 28, 28) and data.y_train.dtype == np.int64 and data.classes[3] == "3"
    out, codes = aelab.inference.encode_file(trained_run, tmp_path / "codes.npy")
    assert isinstance(codes, np.ndarray) and isinstance(out, Path)


def test_figure_functions_return_the_path_they_wrote(trained_run, vae, tmp_path):
    written = [
        aelab.inference.sample_figure(vae, tmp_path / "s.png", n=4),
        aelab.inference.manifold_figure(vae, tmp_path / "m.png", 3),
        aelab.inference.latent_figure(trained_run, tmp_path / "l.png"),
        aelab.inference.interpolate_figure(vae, out=tmp_path / "i.png", steps=3),
    ]
    assert all(isinstance(p, Path) and p.is_file() and p.suffix == ".png" for p in written)
    assert FIGURES == {"sample_figure", "manifold_figure", "latent_figure", "interpolate_figure", "activation_figure"}


def test_fashion_mnist_and_class_folders_carry_class_names(tmp_path):
    from aelab.data import class_names, load_image_folder

    assert class_names("fashion-mnist")[9] == "Ankle boot" and len(class_names("cifar10")) == 10
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(2):
            from PIL import Image

            Image.new("L", (8, 8), 40 * i).save(tmp_path / name / f"{i}.png")
    assert load_image_folder(tmp_path, "pets", 8).classes == ("cat", "dog")


def test_a_damaged_copy_of_a_runs_arrays_is_one_line(small_data, tmp_path, capsys):
    x = np.load(small_data / "digits.npz")["x"]
    run = aelab.train("dense", data=(x[:300], x[300:]), epochs=1, out=tmp_path / "r", progress=None)
    kept = run.path / "data.npz"
    assert kept.is_file() and run.path.joinpath(".aelab-files.json").read_text().count("data.npz") == 1
    kept.write_bytes(kept.read_bytes()[:100])  # truncated
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with pytest.raises(aelab.AelabError, match="data.npz is damaged"):
        aelab.inference.encode_split(run, "test")
    assert run_cli("encode", run.path, "--out", tmp_path / "codes.npy") == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "codes.npy").exists()
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before
    with pytest.raises(aelab.AelabError, match="load_data takes a dataset name or a folder"):
        aelab.load_data(5)


def test_errors_name_options_as_the_caller_spelled_them(trained_run, tmp_path, capsys):
    """Through the API a message names keyword arguments (``resume=True``); through the CLI the
    same message names flags (``--resume``)."""
    with pytest.raises(aelab.AelabError) as caught:
        aelab.train("conv-resize", out=trained_run)
    assert "pass resume=True to continue it or overwrite=True" in str(caught.value) and "--" not in str(caught.value)
    assert run_cli("train", "conv-resize", "--out", trained_run) == 2
    assert "pass --resume to continue it or --overwrite" in capsys.readouterr().err
    taken = tmp_path / "codes.png"
    taken.write_bytes(b"mine")
    with pytest.raises(aelab.AelabError, match="pass overwrite=True to replace it"):
        aelab.inference.latent_figure(trained_run, out=taken)
    with pytest.raises(aelab.AelabError) as caught:
        aelab.export(trained_run, tmp_path / "g.onnx", part="generator")
    assert "choose part encoder, decoder or both" in str(caught.value)
    assert run_cli("export", trained_run, "--part", "generator", "--out", tmp_path / "g.onnx") == 2
    assert "choose --part encoder, decoder or both" in capsys.readouterr().err
    with pytest.raises(aelab.AelabError, match=r"ask for more with epochs=N"):
        aelab.train(out=trained_run, resume=True, epochs=1)
    assert taken.read_bytes() == b"mine"


def test_no_message_raised_by_the_library_spells_a_flag():
    """Every ``raise`` outside the CLI names options through ``errors.opt`` (so the API's
    messages speak its names); a literal ``--flag`` in one would reach Python users."""
    import io
    import re
    import tokenize

    src = Path(aelab.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.parent.name == "cli":  # (the CLI speaks of flags)
            continue
        tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
        inside = False
        for token in tokens:
            if token.type == tokenize.NAME and token.string == "raise":
                inside = True
            elif token.type == tokenize.NEWLINE:
                inside = False
            elif inside and token.type == tokenize.STRING and re.search(r"(?<![\w-])--[a-z]", token.string):
                found.append(f"{path.relative_to(src)}:{token.start[0]}")
    assert not found, found


def test_the_latent_scatter_names_the_classes_in_its_legend():
    import matplotlib.pyplot as plt

    from aelab.data import class_names
    from aelab.figures import labelled_dots

    fig, ax = plt.subplots()
    labels = np.array([0, 3, 9, 3, -1])  # -1: an image without a label is drawn in no class
    labelled_dots(ax, np.zeros((5, 2)), labels, class_names("fashion-mnist"))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0: T-shirt/top", "3: Dress", "9: Ankle boot"]
    fig2, ax2 = plt.subplots()
    labelled_dots(ax2, np.zeros((3, 2)), np.array([1, 2, 2]))
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["1", "2"]
    plt.close(fig)
    plt.close(fig2)
