"""VAE and GAN: the registry sweep's generative half, their losses, bounds and latent tools."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from aelab import create_model, evaluate, list_models, model_settings
from aelab.errors import AelabError
from aelab.families.gan import GANSystem
from aelab.losses import vae_loss
from aelab.metrics import vae_bounds
from aelab.models import get_entry
from aelab.runs import Run, write_json

GANS = [name for name in list_models() if get_entry(name).family == "gan"]


def test_vae_matches_seed_three():
    model = create_model("vae")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride[0]) for c in convs] == [(32, 1), (64, 2), (64, 1), (64, 1)]
    assert model.to_mean.out_features == 2 and model.to_mean.in_features == 32
    assert model.sample(5).shape == (5, 1, 28, 28)


def test_vae_loss_forms():
    logits, target = torch.zeros(4, 1, 28, 28), torch.full((4, 1, 28, 28), 0.5)
    mean, logvar = torch.ones(4, 2), torch.zeros(4, 2)
    loss, recon, kl = vae_loss(logits, target, mean, logvar, "elbo", 1.0)
    assert recon.item() == pytest.approx(784 * torch.log(torch.tensor(2.0)).item(), rel=1e-5)
    assert kl.item() == pytest.approx(1.0)  # 0.5 * mean^2 summed over 2 dimensions
    loss_seed, recon_seed, kl_seed = vae_loss(logits, target, mean, logvar, "seed", 5e-4)
    assert recon_seed.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-5)
    # seed 3: -5e-4 * mean(1 + log_var - mean^2 - exp(log_var)) = 5e-4 * 1
    assert (loss_seed - recon_seed).item() == pytest.approx(5e-4, rel=1e-3)


def test_iwae_bound_is_tighter_than_elbo():
    torch.manual_seed(0)
    model = create_model("vae", latent_dim=4).eval()
    bounds = vae_bounds(model, torch.rand(20, 1, 28, 28).round(), samples=50)
    assert bounds["test_iwae_k50"] >= bounds["test_elbo"] - 1e-3
    assert bounds["test_elbo"] == pytest.approx(-bounds["test_recon_nats"] - bounds["test_kl_nats"], rel=1e-4)


@pytest.mark.parametrize("name", GANS)
def test_gan_shapes_and_save_load(name, tmp_path):
    model = create_model(name).eval()
    assert model.sample(6).shape == (6, *model.input_shape)
    assert model.sample(3).min() >= 0 and model.sample(3).max() <= 1
    run = Run(tmp_path)
    write_json(run.config_path, {"model": name, "params": model.params, "train": {}})
    run.save_weights(model)
    z = torch.randn(4, model.latent_dim)
    assert torch.equal(model(z), run.load_model()(z))


def test_gan_sn_recipe_spectral_norm_hinge_and_moving_average():
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    model = create_model("gan-sn", ema_decay=0.5)
    layers = [m for m in model.discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in model.generator.modules())
    assert sum(p.numel() for p in model.generator.parameters()) == sum(
        p.numel() for p in create_model("gan").generator.parameters()
    )  # the same generator size
    wide = create_model("gan-sn", d_channels=128, d_depth=2)  # SNGAN's standard CNN pattern, still all normalised
    layers = [m for m in wide.discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [m.out_channels for m in layers[:-1]] == [64, 64, 128, 128]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert wide.discriminator(torch.zeros(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(AelabError, match="d_channels 30 must be divisible by 4"):
        create_model("gan-sn", d_channels=30)
    system = GANSystem(model, model_settings("gan-sn"))  # two timescales: D at 2x G's rate
    assert (system.lr, system.d_lr) == (4e-4, 8e-4)
    assert system.hinge and system.label_noise == 0 and system.loss_floor == 0
    opt_d, opt_g = system.configure_optimizers()
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.9)
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    # hinge: the discriminator's loss is 2 when every logit is 0
    assert system._d_loss(real, real).item() == pytest.approx(2.0, abs=0.5)
    ema = [p.detach().clone() for p in model.generator_ema.module.parameters()]
    system.discriminator_step(real, opt_d, lambda loss: loss.backward())
    assert all(torch.equal(a, b) for a, b in zip(ema, model.generator_ema.module.parameters()))
    system.generator_step(8, opt_g, lambda loss: loss.backward())  # the first update copies the weights
    for _ in range(2):
        before = [p.detach().clone() for p in model.generator_ema.module.parameters()]
        system.generator_step(8, opt_g, lambda loss: loss.backward())
        for old, new, trained in zip(before, model.generator_ema.module.parameters(), model.generator.parameters()):
            assert torch.allclose(new, 0.5 * old + 0.5 * trained, atol=1e-6)
    # samples come from the moving average
    z = torch.randn(3, model.latent_dim)
    model.eval()
    assert torch.allclose(model(z), (model.generator_ema.module(z) + 1) / 2)
    assert not torch.allclose(model(z), (model.generator(z) + 1) / 2)


@pytest.fixture(scope="module")
def vae_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "vae"
    assert run_cli("train", "vae", "--data-dir", small_data, "--epochs", "2", "--out", out, "--no-progress") == 0
    return out


def test_vae_run_metrics_and_figures(vae_run):
    metrics = json.loads((vae_run / "metrics.json").read_text())
    for key in (
        "test_elbo",
        "test_recon_nats",
        "test_kl_nats",
        "test_iwae_k50",
        "fd_classifier",
        "fd_classifier_floor",
        "test_rmse",
        "pca_rmse",
        "bounds_seconds",
        "fd_seconds",
    ):
        assert metrics[key] is not None, key
    assert metrics["fid_inception"] is None and "skipped" in metrics["fid_note"]
    for png in ("samples.png", "manifold.png", "reconstructions.png", "curves.png"):
        assert (vae_run / png).is_file(), png


def test_sample_writes_a_new_file_unless_overwrite_replaces_the_runs_own(vae_run, capsys):
    own = (vae_run / "samples.png").read_bytes()  # the figure evaluation drew, which the report shows
    assert run_cli("sample", vae_run, "-n", "4", "--seed", "1") == 0
    assert (vae_run / "samples.png").read_bytes() == own and (vae_run / "samples-2.png").is_file()
    assert "samples-2.png" in capsys.readouterr().out
    assert run_cli("sample", vae_run, "-n", "4", "--seed", "1", "--overwrite") == 0
    assert (vae_run / "samples.png").read_bytes() != own and not (vae_run / "samples-3.png").exists()


def test_eval_says_each_stage_and_its_extras_can_be_chosen(vae_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "vae"
    shutil.copytree(vae_run, copy)
    capsys.readouterr()
    assert run_cli("eval", copy, "--no-bounds", "--no-quality", "--progress", "epoch") == 0
    out = capsys.readouterr().out
    assert "test reconstructions" in out and "PCA with 2 components" in out and "drawing 100 samples" in out
    assert "ELBO and IWAE" not in out and "bounds not measured" in out
    metrics = json.loads((copy / "metrics.json").read_text())
    assert not any(k.startswith("test_iwae") for k in metrics) and metrics["fd_classifier"] is None
    assert (
        run_cli(
            "eval",
            copy,
            "--bound-samples",
            "7",
            "--bound-images",
            "30",
            "--quality-samples",
            "500",
            "--progress",
            "epoch",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "ELBO and IWAE bound (7 samples x 30 images)" in out and "from the cache" in out
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["bound_images"] == 30 and "test_iwae_k7" in metrics and metrics["fd_samples"] == 500
    assert run_cli("eval", copy, "--bound-samples", "0") == 2  # checked like every setting
    with pytest.raises(AelabError, match="unknown evaluation setting 'iwae'"):
        evaluate(copy, iwae=False)


def test_gan_trains_end_to_end(small_data, tmp_path):
    out = tmp_path / "gan"
    assert (
        run_cli(
            "train",
            "gan",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--batch-size",
            "100",
            "--out",
            out,
            "--no-progress",
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fd_classifier"] > 0 and "test_rmse" not in metrics
    assert metrics["fd_seconds"] > 0 and metrics["fd_classifier_train_seconds"] >= 0  # the one-off cost apart
    assert (out / "samples.png").is_file()
    assert (out / "samples" / "epoch-001.png").is_file()  # the per-epoch sample grid callback
    assert run_cli("sample", out, "-n", "16", "--out", tmp_path / "s.png") == 0
    assert run_cli("interpolate", out, "--out", tmp_path / "i.png") == 0
    assert (tmp_path / "s.png").is_file() and (tmp_path / "i.png").is_file()


def test_latent_tools_on_vae_and_plain_autoencoder(vae_run, trained_run, small_data, tmp_path):
    from PIL import Image

    assert run_cli("manifold", vae_run, "--grid", "5", "--out", tmp_path / "m.png") == 0
    for run in (vae_run, trained_run):
        assert run_cli("latent", run, "--out", tmp_path / f"{run.name}-latent.png") == 0
        a, b = tmp_path / "a.png", tmp_path / "b.png"
        Image.new("L", (28, 28), 0).save(a)
        Image.new("L", (28, 28), 255).save(b)
        assert run_cli("interpolate", run, a, b, "--steps", "5", "--out", tmp_path / f"{run.name}-i.png") == 0
    assert (tmp_path / "m.png").is_file()


def test_latent_tools_refuse_what_a_model_cannot_do(trained_run, tmp_path, capsys):
    assert run_cli("sample", trained_run, "--out", tmp_path / "s.png") == 2
    assert "generative" in capsys.readouterr().err
    assert run_cli("manifold", trained_run, "--out", tmp_path / "m.png") == 2
    assert run_cli("interpolate", trained_run, "--out", tmp_path / "i.png") == 2
    assert run_cli("sample", trained_run, "--out", tmp_path / "s.txt") == 2
    assert ".png" in capsys.readouterr().err


def test_collapse_warning_names_the_seed_remedy(caplog):
    from types import SimpleNamespace

    system = GANSystem(create_model("gan"), model_settings("gan"))
    for d_loss, warned in ((0.6, False), (system.loss_floor + 0.01, True)):
        caplog.clear()
        system._trainer = SimpleNamespace(callback_metrics={"train_d_loss": torch.tensor(d_loss)}, current_epoch=0)
        with caplog.at_level("WARNING", logger="aelab"):
            system.on_train_epoch_end()
        assert bool(caplog.records) == warned
    assert "(d_lr)" in caplog.text and "dropout=0.6" in caplog.text  # the API's names (the CLI's: --d-lr)


def test_the_feature_classifier_is_trained_once_and_its_cost_reported_apart(small_data, tmp_path, monkeypatch, capsys):
    from aelab.data import resolve_data
    from aelab.frechet import classifier_for
    from aelab.progress import reporting

    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path))
    data = resolve_data(small_data)
    with reporting("epoch"):
        _, first = classifier_for(data, epochs=1)
    assert first["trained_now"] and first["train_seconds"] > 0
    said = capsys.readouterr().out
    assert "training the feature classifier" in said and "once per dataset" in said and "cached" in said
    with reporting("epoch"):
        _, again = classifier_for(data, epochs=1)
    assert not again["trained_now"] and again["test_accuracy"] == first["test_accuracy"]
    assert "from the cache" in capsys.readouterr().out


def test_a_shipped_classifier_comes_before_the_cache_and_the_metrics_name_it(small_data, tmp_path, monkeypatch, capsys):
    import hashlib

    from aelab import frechet
    from aelab.data import resolve_data
    from aelab.progress import reporting

    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(frechet, "SHIPPED", tmp_path / "shipped")
    data = resolve_data(small_data)
    _, trained = frechet.classifier_for(data, epochs=1)  # nothing shipped for these data: trained and cached
    assert trained["source"] == "trained"
    # a shipped classifier for the same data (another seed: other weights than the cached one)
    shipped_model = frechet.SmallClassifier(1, 28, 10)
    info = frechet.train_classifier(shipped_model, data, epochs=1, seed=1, precision="32")
    stem = frechet.classifier_key(data)
    frechet.store_classifier(shipped_model, info, tmp_path / "shipped", stem)
    cache = {p: p.read_bytes() for p in (tmp_path / "cache" / "classifiers").iterdir()}
    capsys.readouterr()
    with reporting("epoch"):
        loaded, found = frechet.classifier_for(data)
    assert found["source"] == "shipped" and not found["trained_now"]
    assert "the one aelab ships" in capsys.readouterr().out
    assert torch.equal(loaded.head.weight, shipped_model.head.weight)
    identity = hashlib.sha256((tmp_path / "shipped" / f"{stem}.safetensors").read_bytes()).hexdigest()[:12]
    assert found["id"] == identity != trained["id"]
    metrics = frechet.sample_quality(data.test[:64], data)
    assert metrics["fd_classifier_id"] == identity and metrics["fd_classifier_train_seconds"] == 0.0
    assert {p: p.read_bytes() for p in (tmp_path / "cache" / "classifiers").iterdir()} == cache  # the cache as it was
    for place, fix in ((tmp_path / "shipped", "reinstall aelab"), (tmp_path / "cache" / "classifiers", "remove both")):
        (place / f"{stem}.safetensors").write_bytes(b"not weights")  # damaged: one line, and no distance
        with pytest.raises(AelabError, match=f"feature classifier .*{stem}.* is damaged.*; {fix}") as error:
            frechet.classifier_for(data)
        assert "\n" not in str(error.value)
        assert frechet.sample_quality(data.test[:64], data)["fd_note"] == str(error.value)
        (place / f"{stem}.safetensors").unlink()  # the shipped one gone: the cache's turn


def test_fashion_mnist_is_measured_with_the_classifier_aelab_ships(tmp_path, monkeypatch):
    from aelab.data import DEBIAN_FASHION_MNIST, load_data
    from aelab.frechet import classifier_for

    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path))
    data = load_data("fashion-mnist")
    model, info = classifier_for(data)
    assert info["source"] == "shipped" and info["precision"] == "32" and info["epochs"] == 3
    assert not (tmp_path / "classifiers").exists()  # nothing trained, nothing cached
    with torch.no_grad():
        predicted = torch.cat([model.head(model(x)).argmax(1) for x in data.test.split(2000)])
    accuracy = (predicted == data.test_labels).float().mean().item()
    assert accuracy == pytest.approx(info["test_accuracy"], abs=1e-3) and accuracy > 0.88


def test_a_gans_curves_show_each_players_losses(tmp_path, monkeypatch):
    import warnings

    from aelab import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    history = [
        {"epoch": e, "train_d_loss": 0.6, "train_g_loss": 0.8, "val_d_loss": 0.65, "val_g_loss": 0.79, "lr": 2e-4}
        for e in (1, 2)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty legend warns
        figures.curves(history, tmp_path / "curves.png")
    labels = [line.get_label() for line in drawn[0].axes[0].get_lines()]
    assert labels == ["train d loss", "train g loss", "validation d loss", "validation g loss"]
