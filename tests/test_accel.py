"""The fast-path choices: precision by hardware, memory format restored, same numbers."""

from __future__ import annotations

import pytest
import torch

from aelab import create_model
from aelab.accel import channels_last, choose_precision, cpu_supports_bf16
from aelab.errors import AelabError
from aelab.metrics import reconstruct


def test_auto_precision_on_cpu_follows_the_hardware():
    assert choose_precision("auto", "cpu") == ("bf16-mixed" if cpu_supports_bf16() else "32")
    assert choose_precision("32", "cpu") == "32"
    with pytest.raises(AelabError, match="unknown precision"):
        choose_precision("64", "cpu")


def test_channels_last_is_undone_after_inference():
    model = create_model("conv-resize")
    with channels_last(model):
        assert model.decoder[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous() for p in model.parameters())


def test_fast_inference_matches_fp32():
    torch.manual_seed(0)
    model = create_model("conv-resize")
    x = torch.rand(50, 1, 28, 28)
    exact, _ = reconstruct(model, x)
    with torch.no_grad():
        eager = model.eval()(x).recon
    assert torch.allclose(exact, eager, atol=1e-5)
    fast, _ = reconstruct(model, x, precision="bf16-mixed")
    assert (fast - exact).abs().max() < 0.02  # bf16 keeps 8-bit image precision
