"""The one limits check: sizes and counts that would reach the allocator (or draw nothing) are
refused in one line before any work, each against a bound said here, and a request whose memory
is known in advance is held against what the machine has free.

Torch-free: the checks run before a model, a batch or a figure exists.
"""

from __future__ import annotations

import math
import os

from .errors import AelabError

MAX_SIDE = 2048  # the largest image side a model takes (in_size)
MAX_SAMPLES = 10_000  # images one `sample` call or figure draws
MAX_GRID = 100  # points per side of a manifold
MAX_STEPS = 1_000  # points on an interpolation path
INFERENCE_BATCH = 1000  # images (or windows) a pass without gradients takes at once: evaluation, scoring, validation
STYLE_SIDES = (
    16,
    4096,
)  # style transfer's output sides: VGG19 pools 4 times before its last layers; above, minutes a step
MEMORY_SHARE = 0.8  # the share of the available memory one request may take
MAX_SEED = 2**32 - 1  # seeds numpy and torch both take (numpy's generators stop at 2**32 - 1)
MAX_LENGTH = 100_000  # characters one `generate` call draws (one step each: ~a minute at this bound on a CPU)


def check_count(name: str, value: int, low: int = 1, high: int | None = None) -> int:
    """``value`` as a whole number in [low, high], or one line naming ``name`` and the bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AelabError(f"{name} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"from {low:,} to {high:,}" if high is not None else f"at least {low:,}"
        raise AelabError(f"{name} must be {bounds}, got {value:,}")
    return value


def check_seed(name: str, value: int) -> int:
    """A seed: a whole number from 0 to :data:`MAX_SEED`."""
    return check_count(name, value, 0, MAX_SEED)


def check_number(name: str, value: float, low: float = 0.0) -> float:
    """``value`` as a finite real number >= ``low``, or one line naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise AelabError(f"{name} must be a finite number >= {low:g}, got {value!r}")
    return float(value)


def available_memory() -> int:
    """Bytes this process can still get: the least of the machine's available memory
    (MemAvailable, else the physical memory), its control group's limit less its use (a
    container's, a batch job's), and its address-space limit (``ulimit -v``) less its size."""
    bounds = [_machine_memory(), _cgroup_memory(), _address_space()]
    return min(b for b in bounds if b is not None)


def _machine_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: no bound


def _read_number(path: str) -> int | None:
    try:
        with open(path) as file:
            text = file.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_memory() -> int | None:
    """The control group's memory limit less its use (cgroup v2, else v1), or None without a limit."""
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        most, used = _read_number(limit), _read_number(usage)
        if most is not None and most < 1 << 60:  # v1 writes a huge number for "no limit"
            return max(0, most - (used or 0))
    return None


def _address_space() -> int | None:
    """``ulimit -v`` less the process's virtual size, or None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        size = 0
    return max(0, soft - size)


def check_memory(what: str, nbytes: float) -> None:
    """Refuse ``what`` where it needs more than a share of the memory available now."""
    have = available_memory()
    if nbytes > MEMORY_SHARE * have:
        raise AelabError(
            f"{what} would need about {nbytes / 2**30:,.1f} GiB of memory; this process can have "
            f"{have / 2**30:,.1f} GiB more"
        )


def check_images(what: str, n: int, shape: tuple[int, ...], copies: int = 3) -> None:
    """``n`` float32 images of ``shape`` (with ``copies`` alive at once) against the free memory."""
    check_memory(f"{what} ({n:,} images of {'x'.join(map(str, shape))})", 4 * copies * n * math.prod(shape))
