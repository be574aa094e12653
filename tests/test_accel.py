"""The fast-path choices: precision by hardware, memory format restored, same numbers."""

from __future__ import annotations

import pytest
import torch

from aelab import create_model
from aelab.accel import channels_last, choose_precision, cpu_bf16_pays
from aelab.errors import AelabError
from aelab.metrics import reconstruct


def test_auto_precision_on_cpu_follows_the_hardware():
    # bf16 pays with AMX and on an AMD Zen 5; on Intel with AVX512-BF16 alone it lost (precision_speed.py)
    assert choose_precision("auto", "cpu") == ("bf16-mixed" if cpu_bf16_pays() else "32")
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


def test_written_out_bce_matches_torch():
    """The fast BCE must be the same loss and gradient as PyTorch's, saturated logits included."""
    from aelab.losses import bce_with_logits

    torch.manual_seed(0)
    logits = (torch.randn(64, 1, 28, 28) * 8).requires_grad_()
    target = torch.rand(64, 1, 28, 28)
    ours = bce_with_logits(logits, target)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.allclose(ours, theirs, rtol=1e-6)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-10)
    bf16 = logits.detach().bfloat16().requires_grad_()  # autocast's logits: the loss is still fp32
    assert bce_with_logits(bf16, target).dtype == torch.float32
    colour = torch.randn(8, 3, 28, 28).contiguous(memory_format=torch.channels_last)  # layouts differ
    colour_target = torch.rand(8, 3, 28, 28)
    assert torch.allclose(
        bce_with_logits(colour, colour_target),
        torch.nn.functional.binary_cross_entropy_with_logits(colour, colour_target),
        rtol=1e-6,
    )


def test_keep_freed_memory_is_set_once_and_can_be_declined(monkeypatch):
    import platform

    from aelab import accel

    monkeypatch.setattr(accel, "_malloc_tuned", None)
    monkeypatch.setenv("AELAB_KEEP_FREED_MEMORY", "0")
    assert accel.keep_freed_memory() is False
    monkeypatch.setattr(accel, "_malloc_tuned", None)
    monkeypatch.delenv("AELAB_KEEP_FREED_MEMORY")
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert accel.keep_freed_memory() is expected
    assert accel.keep_freed_memory() is expected  # the answer is remembered, mallopt runs once


def test_failing_nvml_check_is_skipped_only_where_nvml_cannot_load(monkeypatch):
    import ctypes
    import os

    from aelab import accel

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        loadable = True
    except OSError:
        loadable = False
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # what importing Lightning does
    available = torch.cuda.is_available()
    assert accel.skip_failing_nvml_check() is not loadable
    assert ("PYTORCH_NVML_BASED_CUDA_CHECK" in os.environ) is loadable
    assert torch.cuda.is_available() == available  # the same answer either way


@pytest.mark.parametrize(
    ("cap", "bf16", "amx"),
    [
        (None, True, True),
        ("AVX512_CORE_AMX", True, True),
        ("AVX512_CORE_BF16", True, False),  # an AMX machine measured as the class most users have
        ("avx512_core_bf16", True, False),
        ("AVX2", False, False),
        ("ALL", True, True),
    ],
)
def test_onednns_instruction_cap_caps_aelabs_precision_choice_too(monkeypatch, cap, bf16, amx):
    from aelab import accel

    monkeypatch.setattr(accel, "_cpu_flags", lambda: "flags : avx2 avx512f avx512_bf16 amx_bf16 amx_tile")
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert (accel.cpu_supports_bf16(), accel.cpu_has_amx()) == (bf16, amx)
    assert accel.choose_precision("auto", "cpu") == ("bf16-mixed" if amx else "32")
    assert accel.cpu_class().startswith("AMX" if amx else "AVX512-BF16, no AMX" if bf16 else "no AVX512-BF16")
    assert (cap is None) or f"ONEDNN_MAX_CPU_ISA={cap}" in accel.cpu_class()


@pytest.mark.parametrize(
    "vendor, family, cap, expected",
    [
        ("AuthenticAMD", 26, None, "bf16-mixed"),  # Zen 5: bf16 measured 1.19-1.51x float32
        ("AuthenticAMD", 27, None, "bf16-mixed"),
        ("AuthenticAMD", 26, "AVX512_CORE", "32"),  # capped below AVX512-BF16
        ("AuthenticAMD", 25, None, "32"),  # Zen 4: not measured
        ("GenuineIntel", 6, None, "32"),  # AVX512-BF16 without AMX: bf16 measured slower
    ],
)
def test_bf16_is_chosen_on_the_cpus_where_it_was_measured_to_pay(monkeypatch, vendor, family, cap, expected):
    from aelab import accel

    info = f"vendor_id : {vendor}\ncpu family : {family}\nmodel : 2\nflags : avx2 avx512f avx512_bf16\n"
    monkeypatch.setattr(accel, "_cpu_flags", lambda: info)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert accel.choose_precision("auto", "cpu") == expected
    assert accel.cpu_bf16_pays() == (expected == "bf16-mixed")
    assert ("trains in bf16" in accel.cpu_class()) == (expected == "bf16-mixed")
