"""The zoo's families (beta-vae, vqvae, wae, rae, aae) and the mixture sampler for any autoencoder:
each trained and sampled from the CLI at tiny sizes; their losses' parts; bad settings refused
in one line with nothing written. (Shapes, gradients, save/load and a short fit: the registry sweep.)"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from aelab import create_model, model_settings
from aelab.cli import main
from aelab.families import family_of
from aelab.nets.base import Generative
from aelab.samplers import Mixture

ZOO = ["beta-vae", "vqvae", "wae", "rae", "aae"]


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def zoo_runs(small_data, tmp_path_factory):
    """Each family trained for one epoch on 400 digits (sample quality on 500 samples)."""
    root = tmp_path_factory.mktemp("zoo")
    for name in ZOO:
        args = ["train", name, "--data-dir", small_data, "--epochs", "1", "--out", root / name, "--no-progress"]
        assert run_cli(*args, "--quality-samples", "500", "--no-bounds") == 0, name
    return root


@pytest.mark.parametrize("name", ZOO)
def test_each_family_trains_logs_its_terms_and_samples(zoo_runs, name, tmp_path):
    run = zoo_runs / name
    history = json.loads((run / "history.json").read_text())
    epoch = history[0] if isinstance(history, list) else history["epochs"][0]
    for metric in family_of(name).val_metrics:  # the terms the family says it logs
        assert math.isfinite(epoch[metric]), metric
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["fd_classifier"] > 0 and metrics["test_rmse"] > 0
    for png in ("samples.png", "curves.png", "reconstructions.png"):
        assert (run / png).is_file()
    assert run_cli("sample", run, "-n", "16", "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").is_file()
    if name == "vqvae":
        assert 1 <= metrics["test_perplexity"] <= 128 and 0 < metrics["codebook_used"] <= 128
        assert metrics["test_prior_nats"] > 0 and math.isfinite(epoch["val_perplexity"])
    if name == "rae":  # no prior: evaluation fitted the mixture and keeps it; sample uses it
        assert metrics["sampler"] == "gmm (10)" and (run / "sampler-gmm-10.safetensors").is_file()


@pytest.fixture
def own_run(trained_run, tmp_path):
    """A copy of the shared conv-resize run: the mixture sampler keeps its file in the run."""
    shutil.copytree(trained_run, tmp_path / "run")
    return tmp_path / "run"


def test_the_mixture_sampler_makes_any_autoencoder_generative(own_run, tmp_path, capsys):
    trained_run = own_run
    kept = trained_run / "sampler-gmm-3.safetensors"
    assert run_cli("sample", trained_run, "--out", tmp_path / "none.png") == 2  # no prior: says how
    assert "--sampler gmm" in capsys.readouterr().err and not kept.exists()
    assert run_cli("sample", trained_run, "--sampler", "prior", "--out", tmp_path / "p.png") == 2
    assert "no prior" in capsys.readouterr().err
    assert run_cli("sample", trained_run, "--sampler", "gmm", "--components", "0", "--out", tmp_path / "z.png") == 2
    assert "--components" in capsys.readouterr().err and not kept.exists()
    assert run_cli("sample", trained_run, "--sampler", "gmm", "--components", "3", "--out", tmp_path / "a.png") == 0
    assert kept.is_file() and (tmp_path / "a.png").is_file()
    written = kept.read_bytes()
    assert run_cli("sample", trained_run, "--sampler", "gmm", "--components", "3", "--out", tmp_path / "b.png") == 0
    assert kept.read_bytes() == written  # reused, not fitted again
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()  # the same seed, the same draws
    assert "sampler-gmm-3.safetensors" in (trained_run / ".aelab-files.json").read_text()  # the run's own file


def test_a_sampler_the_run_lacks_is_one_line_and_writes_nothing(tmp_path, capsys):
    gan = tmp_path / "gan"
    model = create_model("gan", latent_dim=8)
    from aelab.runs import Run, write_json

    run = Run(gan)
    write_json(run.config_path, {"model": "gan", "params": model.params, "train": {}, "input_shape": [1, 28, 28]})
    run.save_weights(model)
    before = sorted(p.name for p in gan.iterdir())
    assert run_cli("sample", gan, "--sampler", "gmm", "--out", tmp_path / "g.png") == 2
    err = capsys.readouterr().err
    assert "no encoder" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in gan.iterdir()) == before and not (tmp_path / "g.png").exists()


def test_a_damaged_mixture_file_is_one_line(own_run, tmp_path, capsys):
    bad = own_run / "sampler-gmm-4.safetensors"
    bad.write_bytes(b"not a mixture")
    assert run_cli("sample", own_run, "--sampler", "gmm", "--components", "4", "--out", tmp_path / "x.png") == 2
    assert "not a fitted mixture" in capsys.readouterr().err and bad.read_bytes() == b"not a mixture"


def test_a_mixture_kept_for_other_weights_is_fitted_again(own_run, tmp_path):
    """After --resume changes the weights, the kept mixture no longer fits them: fitted again."""
    from aelab.runs import Run

    assert run_cli("sample", own_run, "--sampler", "gmm", "--components", "3", "--out", tmp_path / "a.png") == 0
    kept = own_run / "sampler-gmm-3.safetensors"
    first = kept.read_bytes()
    run = Run(own_run)
    model = run.load_model()
    with torch.no_grad():
        next(model.parameters()).add_(0.05)
    run.save_weights(model)
    assert (
        run_cli("sample", Run(own_run).path, "--sampler", "gmm", "--components", "3", "--out", tmp_path / "b.png") == 0
    )
    assert kept.read_bytes() != first


def test_mixture_draws_follow_the_fitted_components():
    model = create_model("rae").eval()
    torch.manual_seed(0)
    images = torch.rand(300, 1, 28, 28)
    mixture = Mixture.fit(model, images, components=2)
    codes = mixture.draw(4000, torch.Generator().manual_seed(0)).flatten(1)
    expected = (mixture.weights[:, None] * mixture.means).sum(0)
    assert torch.allclose(codes.mean(0), expected, atol=0.05 * float(mixture.means.abs().max()) + 1e-3)
    assert mixture.sample(model, 5).shape == (5, 1, 28, 28)


@pytest.mark.parametrize(
    "args, says",
    [
        (["beta-vae", "--beta", "-1"], "beta must be at least 0"),
        (["wae", "--mmd-weight", "-0.5"], "mmd_weight must be at least 0"),
        (["vqvae", "--param", "codes=0"], "codes"),
        (["vqvae", "--commitment", "-1"], "commitment must be at least 0"),
        (["beta-vae", "--decomposition", "xyz"], "decomposition"),
        (["rae", "--beta", "2"], "beta"),  # another family's setting
    ],
)
def test_bad_settings_are_one_line_and_write_nothing(args, says, small_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", *args, "--data-dir", small_data, "--epochs", "1", "--out", out, "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and not out.exists()


def test_vqvae_codebook_moves_by_moving_averages_and_restarts_dead_entries():
    torch.manual_seed(0)
    model = create_model("vqvae", codes=8, code_dim=4).train()
    book = model.codebook
    z = torch.randn(2, 4, 7, 7) * 0.1 + 3.0  # far from every initial entry
    chosen, index, perplexity = book(z)
    vectors = z.permute(0, 2, 3, 1).reshape(-1, 4)
    unchosen = [k for k in range(8) if k not in index.unique().tolist()]
    assert unchosen  # one entry was nearest for all of them: the rest restarted at the batch's vectors
    for k in unchosen:
        assert (book.entries[k] - vectors).abs().sum(1).min() < 1e-5
    assert 1 <= float(perplexity) <= 8 and chosen.shape == z.shape


def test_vqvae_prior_reads_only_the_positions_before():
    """The masked convolutions: a change at one grid position changes no logits before it, and
    the rows so far give the same logits as the whole grid (what sampling relies on)."""
    model = create_model("vqvae").eval()
    grid = torch.randint(0, 128, (3, 7, 7))
    logits = model.prior(grid)
    changed = grid.clone()
    changed[:, 3, 4] = (changed[:, 3, 4] + 1) % 128
    moved = (model.prior(changed) - logits).abs().sum(1)[0] > 1e-6
    order = torch.arange(49).view(7, 7)
    assert not moved[order <= 3 * 7 + 4].any() and moved.any()
    for row in range(7):
        assert torch.allclose(model.prior(grid[:, : row + 1])[:, :, row], logits[:, :, row], atol=1e-5)


def test_beta_tc_weights_only_the_total_correlation():
    from aelab.families.betavae import total_correlation
    from aelab.losses import kl_to_standard_normal

    torch.manual_seed(0)
    mean, logvar = torch.randn(64, 4), torch.randn(64, 4) * 0.1
    z = mean + torch.exp(0.5 * logvar) * torch.randn(64, 4)
    mutual, tc, dims = total_correlation(z, mean, logvar, images=64)
    assert math.isfinite(float(mutual + tc + dims)) and float(tc) >= -1e-3  # the estimate: near or above 0
    settings = model_settings("beta-vae", decomposition="tc", beta=1.0)
    assert settings.decomposition == "tc"
    kl = kl_to_standard_normal(mean, logvar).sum(1).mean()
    assert float(kl) > 0


def test_new_families_reach_the_settings_namespace_and_the_catalog():
    import aelab.settings
    from aelab.registry import catalog

    assert aelab.settings.WAESettings is family_of("wae").settings
    assert set(ZOO) <= set(catalog()[0])
    assert all(isinstance(create_model(n), Generative) for n in ("beta-vae", "vqvae", "wae", "aae"))
