"""Several training processes, on one machine or many, through Lightning's DDP.

``aelab train --devices N [--num-nodes M] [--strategy ddp]`` (or the same settings in
``aelab.train``) trains with PyTorch's DistributedDataParallel, which Lightning drives: each
process holds the model, takes its share of every batch and the gradients are averaged across
processes after each backward pass, so one step with ``--batch-size B`` on N processes is one
step on a combined batch of N x B images. The batch size is per process.

Who launches the processes: on one machine, Lightning re-runs the same command for processes 1
to N-1 (its "subprocess script" launcher); ``torchrun`` or SLURM's ``srun`` may start them all
instead, and Lightning then joins the group they form. Either way every process runs
:func:`aelab.train`; only the main process (global rank 0) checks and writes the run folder,
draws figures and evaluates, while the others train and leave without writing anything.

The data stay where they are: each process slices its own share of the in-memory tensors
(:func:`shard`), the same shuffled order on every process (one seed) split by rank, so no data
are sent between processes. Validation is not split: every process validates on the whole
validation split and gets the same loss, so checkpoint and early-stopping decisions agree.
"""

from __future__ import annotations

import os

from .errors import AelabError, opt

__all__ = ["is_main_process", "process_rank", "local_rank", "rank_and_world"]  # the public names of aelab.distributed


def process_rank() -> int:
    """0 for the main process of a multi-process launch (and for a process launched alone), a
    positive number for every other, read from the launcher's environment before any process group
    exists: torchrun's ``RANK``, SLURM's ``SLURM_PROCID`` (tasks of a multi-task step), or the
    ``NODE_RANK`` and ``LOCAL_RANK`` that Lightning gives the processes it starts itself."""
    env = os.environ
    try:
        if "RANK" in env:
            return int(env["RANK"])
        if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
            return int(env["SLURM_PROCID"])
        return int(env.get("NODE_RANK", "0")) + int(env.get("LOCAL_RANK", "0"))  # 0 only for the main process
    except ValueError:
        raise AelabError("the launcher's RANK / LOCAL_RANK / NODE_RANK / SLURM_PROCID is not an integer") from None


def local_rank() -> int:
    """This process's rank on its machine (which GPU it uses), from the launcher's environment."""
    env = os.environ
    value = env.get("LOCAL_RANK") or (env.get("SLURM_LOCALID") if int(env.get("SLURM_NTASKS", "1")) > 1 else None)
    return int(value or 0)


def is_main_process() -> bool:
    """True in the process that writes the run folder (the only process of a one-process run).

    In a multi-process run every process runs the training script; code after
    :func:`aelab.train` that writes files or prints should run only where this is True.
    """
    return process_rank() == 0


def rank_and_world() -> tuple[int, int]:
    """(rank, number of processes) of the process group training now; (0, 1) outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(n: int) -> tuple[int, int, int]:
    """This process's share of ``n`` items in the group training now, as (first, step, count):
    items ``order[first::step][:count]`` of a shared order. Every process gets the same count
    (n // processes: the few left over sit out the epoch), so all take the same number of steps,
    as DDP requires."""
    rank, world = rank_and_world()
    return rank, world, n // world if world > 1 else n


def end_process_group() -> None:
    """Leave the process group once training is over: evaluation and figures are the main
    process's alone, and a metric there must not wait for processes that have left."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def lightning_strategy(strategy: str, processes: int, manual_optimization: bool):
    """Lightning's strategy for ``strategy`` (a TrainSettings value) and ``processes`` in all.

    Systems that step their optimisers by hand (the GANs: each player's step leaves the other's
    parameters without gradients) need DDP to look for unused parameters.
    """
    if processes == 1 and strategy == "auto":
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(find_unused_parameters=manual_optimization, process_group_backend=None)


def cpu_cores() -> int:
    """The cores this process may run on (its affinity: a container's or ``taskset``'s share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def share_cpu_threads(devices: int, device: str) -> int:
    """Give this process its share of the CPU's cores when ``devices`` training processes share
    one machine's CPU: torch's threads (and ``OMP_NUM_THREADS``, which the processes Lightning
    starts inherit) become cores // devices, since processes that each take every core run
    slower together than one (each thread then waits for a core). A GPU run, or one process,
    keeps torch's threads. Returns the process's thread count."""
    import torch

    if device == "cpu" and devices > 1:
        threads = max(1, cpu_cores() // devices)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


# the launchers' variables aelab and Lightning read as numbers
LAUNCHER_NUMBERS = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "WORLD_SIZE",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
)


def check_launch(devices: int, num_nodes: int, device: str) -> None:
    """One line where the launch cannot work: more GPUs (or, on a CPU, more processes than cores)
    asked for than this machine has, several machines without a launcher, or a launcher's process
    count that disagrees with ``--devices`` x ``--num-nodes``."""
    if device == "cuda":
        import torch

        have = torch.cuda.device_count()
        if devices > have:
            raise AelabError(f"{opt('devices', devices)}: this machine has {have} GPU(s)")
    else:  # each CPU process needs a core of its own; more only share them (and multiply the memory)
        cores = cpu_cores()
        if devices > cores:
            raise AelabError(
                f"{opt('devices', devices)}: this machine has {cores} CPU core(s), and each training "
                f"process needs one; ask for at most {cores}"
            )
    env = os.environ
    for name in LAUNCHER_NUMBERS:
        if name in env and not (env[name].strip().isdigit() and (name.endswith(("RANK", "ID")) or int(env[name]) >= 1)):
            raise AelabError(
                f"the launcher's {name}={env[name]!r} is not a whole number"
                + ("" if name.endswith(("RANK", "ID")) else " >= 1")
            )
    processes = devices * num_nodes
    tasks = int(env.get("SLURM_NTASKS", "1"))
    if tasks > 1 and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):  # Lightning's SLURM detection
        if "SLURM_NTASKS_PER_NODE" not in env:
            raise AelabError(
                f"SLURM_NTASKS={tasks} without SLURM_NTASKS_PER_NODE: Lightning's SLURM support needs "
                "the tasks given per node (srun's ntasks-per-node option)"
            )
        if tasks != processes:
            raise AelabError(
                f"SLURM started {tasks} tasks, and {opt('devices', devices)} x "
                f"{opt('num_nodes', num_nodes)} = {processes}; make them agree"
            )
    rank = process_rank()
    if rank >= processes:
        raise AelabError(
            f"the launcher's variables make this process {rank} of a launch (RANK, LOCAL_RANK, NODE_RANK "
            f"or SLURM_PROCID), and the run has {processes} process{'es' if processes > 1 else ''} "
            f"({opt('devices', devices)} x {opt('num_nodes', num_nodes)}): unset them or ask for "
            "that many processes"
        )
    world = env.get("WORLD_SIZE")
    launched = "RANK" in env or tasks > 1
    if num_nodes > 1 and not launched:
        raise AelabError(
            f"{opt('num_nodes', num_nodes)} needs a launcher that starts the command on every machine "
            "(torchrun or SLURM's srun; see Scaling out in the README)"
        )
    if launched and world is not None and world.isdigit() and int(world) != devices * num_nodes:
        raise AelabError(
            f"the launcher started {world} processes, and {opt('devices', devices)} x "
            f"{opt('num_nodes', num_nodes)} = {devices * num_nodes}; make them agree"
        )
