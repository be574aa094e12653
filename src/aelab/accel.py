"""The fast path, chosen at run time from what the hardware supports: device, precision, memory format.

bf16 autocast on a CPU is chosen where its bf16 arithmetic was measured to beat float32
(benchmarks/precision_speed.py, in benchmarks/results/speed.md): a CPU with AMX (bf16 matrix
tiles), and an AMD CPU of family 26 (Zen 5) or later, whose AVX512-BF16 trained seed 1's model
1.44x, the VAE 1.51x and the char-LSTM 1.19x faster than float32 (the GAN at the same speed). Style
transfer keeps float32 there (aelab.vgg.vgg_precision: bf16 ended at a higher loss). On an Intel CPU with
AVX512-BF16 and no AMX, bf16 was slower than float32 for every model measured (0.93x seed 1's
model, 0.72x the VAE, 0.81x the char-LSTM) and for style transfer's VGG19 (0.81x,
benchmarks/results/style.md); other CPUs with AVX512-BF16 (AMD's Zen 4) were not measured and
train in float32.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AelabError, opt

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it: the CLI sets malloc up (keep_freed_memory)
# before every command, and `aelab datasets` needs no torch at all

# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned: bool | None = None


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Have glibc's malloc keep the memory of freed tensors for reuse instead of giving it back to
    the operating system; True where that is now in force.

    A training step frees and allocates the same multi-megabyte activations every time. glibc
    serves blocks that large with ``mmap`` and unmaps them when freed, so every step faults the
    pages in anew: over 10,000 page faults a step in the speed benchmark's plain fp32 loop, which
    ran 1.3-1.5x faster with this setting (benchmarks/results/speed.md, the two reference rows:
    glibc raises its threshold as it goes, so without the setting the loop's speed varies from
    run to run). Raising the mmap and trim thresholds makes those blocks come from the heap,
    which keeps them (the process keeps its peak memory until it exits). The effect is
    process-wide: aelab sets it when a CLI command or :func:`aelab.training.train` starts;
    ``AELAB_KEEP_FREED_MEMORY=0`` leaves malloc as it is. Does nothing (False) off glibc.
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    if os.environ.get("AELAB_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # older glibc caps the mmap threshold at 32 MiB: fall back to the cap
    mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    _malloc_tuned = bool(mmap_ok and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _malloc_tuned


def _cpu_flags() -> str:
    if platform.system() != "Linux":
        return ""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def onednn_allows(feature: str) -> bool:
    """Whether ``ONEDNN_MAX_CPU_ISA`` (oneDNN's cap on the instructions it uses; unset: all of
    them) lets oneDNN use ``feature``: "bf16" (AVX512-BF16 or above) or "amx". aelab's own
    precision choice follows the same switch, so that ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``
    makes an AMX machine behave as one without AMX, for measuring where most users are
    (benchmarks/README.md)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap in ("", "ALL", "DEFAULT"):
        return True
    if feature == "amx":
        return "AMX" in cap
    return any(word in cap for word in ("BF16", "FP16", "AMX", "AVX10"))


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX) that oneDNN may use,
    so autocast pays off."""
    flags = _cpu_flags()
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and onednn_allows("bf16")


def cpu_has_amx() -> bool:
    """True where the CPU has AMX tiles for bf16 (Sapphire Rapids and later) that oneDNN may use:
    large convolutions (VGG19's) then run several times faster in bf16; with AVX512-BF16 alone
    they ran slower than in fp32 (benchmarks/results/style.md)."""
    return "amx_bf16" in _cpu_flags() and onednn_allows("amx")


def _amd_family() -> int:
    """The CPU family of an AMD CPU (26 for Zen 5), 0 for any other vendor or where unknown."""
    info = _cpu_flags()
    if "AuthenticAMD" not in info:
        return 0
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu family" and value.strip().isdigit():
            return int(value)
    return 0


def cpu_bf16_pays() -> bool:
    """True where training in bf16 autocast was measured faster than float32 on this class of CPU
    (the module's note): one with AMX, or an AMD CPU of family 26 (Zen 5) or later, where AVX512-BF16
    runs bf16 products at full width. ``ONEDNN_MAX_CPU_ISA`` caps it as it caps oneDNN."""
    return cpu_has_amx() or (cpu_supports_bf16() and _amd_family() >= 26)


def cpu_class() -> str:
    """The class of CPU aelab runs as, for results files: "AMX", "AVX512-BF16, no AMX" (naming an
    AMD family where bf16 pays there, :func:`cpu_bf16_pays`) or "no AVX512-BF16, no AMX" (capped by
    ``ONEDNN_MAX_CPU_ISA`` where set, which it names)."""
    if cpu_has_amx():
        name = "AMX"
    elif cpu_bf16_pays():
        name = f"AVX512-BF16, no AMX, AMD family {_amd_family()}: trains in bf16"
    else:
        name = "AVX512-BF16, no AMX" if cpu_supports_bf16() else "no AVX512-BF16, no AMX"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{name} (ONEDNN_MAX_CPU_ISA={cap})" if cap else name


def skip_failing_nvml_check() -> bool:
    """Stop each ``torch.cuda.is_available()`` from trying to load NVML where it cannot load;
    True where this changed anything.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` when imported, so every CUDA check asks
    NVML first. Without an NVIDIA driver (a CPU machine with PyTorch's CUDA build) that means a
    failed ``dlopen`` and then the usual CUDA runtime check anyway, and torch's optimisers check
    CUDA on every step, so every training step paid for the failed load. Where NVML cannot load,
    dropping the variable gives the same answer without it.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        return False
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        return True


def device_for(accelerator: str) -> str:
    import torch

    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise AelabError(f"{opt('accelerator', 'gpu')} was asked for but no CUDA device is available")
        return "cuda"
    if accelerator == "cpu":
        return "cpu"
    raise AelabError(f"unknown accelerator {accelerator!r}; choose auto, cpu or gpu")


def choose_precision(requested: str, device: str) -> str:
    """The fastest precision that keeps quality on this machine, unless the user chose one."""
    import torch

    if requested == "auto":
        if device == "cuda":
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "bf16-mixed" if cpu_bf16_pays() else "32"  # see the module's note
    if requested not in ("32", "bf16-mixed", "16-mixed"):
        raise AelabError(f"unknown precision {requested!r}; choose auto, 32, bf16-mixed or 16-mixed")
    if requested == "bf16-mixed" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise AelabError(f"this GPU does not support bf16; use {opt('precision', '16-mixed')} or 32")
    if requested == "16-mixed" and device != "cuda":
        raise AelabError(f"{opt('precision', '16-mixed')} needs a GPU; use bf16-mixed or 32 on a CPU")
    return requested


def autocast(precision: str, device: str):
    """The autocast context for a Lightning-style precision name (a no-op for "32")."""
    import torch

    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device, dtype=dtype)


@contextlib.contextmanager
def channels_last(model: torch.nn.Module):
    """Run ``model`` in channels-last memory format for the block, then put it back as it was."""
    import torch

    # a weight with one input channel is both formats at once, so ask the unambiguous ones
    was_channels_last = any(
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in model.parameters()
    )
    # the weights' copies are made outside inference mode: weights made inside it could not be
    # trained or traced (exported) later, and the model outlives the block (a Run caches it)
    with torch.inference_mode(False):
        model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        if not was_channels_last:
            with torch.inference_mode(False):
                model.to(memory_format=torch.contiguous_format)
