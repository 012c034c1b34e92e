"""DistributedDataParallel helpers: torchrun env init, model wrapping, metric reduction.

Launch with ``torchrun --nproc_per_node=N ...``: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT come from the environment. The backend is nccl on CUDA and gloo on CPU. Only rank 0
writes checkpoints, logs and plots; losses and accuracies are summed over ranks.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def env_requests_ddp() -> bool:
    """True when torchrun-style variables ask for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device | str | None = None, timeout_s: float = 1800) -> DistInfo:
    """Join the process group described by torchrun's env vars (no-op for a single process).

    Returns the :class:`DistInfo`; on CUDA the process is pinned to ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    info = DistInfo(rank=rank, world_size=world, local_rank=local)
    if world <= 1:
        return info
    if dist.is_initialized():
        return info
    dev = torch.device(device) if device is not None else default_device()
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(local)
    from datetime import timedelta

    dist.init_process_group(
        backend=backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
    )
    return info


def current_info() -> DistInfo:
    """DistInfo of an already-initialised process group (or a single process)."""
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return DistInfo(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))
    return DistInfo()


def default_device() -> torch.device:
    """CUDA (this process's local rank) when available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def training_device(name: str | None) -> torch.device:
    """The device a rank trains on: ``name`` (None: :func:`default_device`), a bare ``cuda``
    becoming this rank's GPU under DDP."""
    device = torch.device(name) if name else default_device()
    if device.type == "cuda" and device.index is None and current_info().enabled:
        device = torch.device("cuda", current_info().local_rank)  # one GPU per rank
    return device


def setup_torch(num_threads: int, device: str, ddp_ok: bool = False) -> str:
    """CLI set-up shared by the network commands: denormal floats flushed to zero, torch CPU
    threads (0 = torch's default) and the device name, ``auto`` becoming ``cuda`` when
    available, else ``cpu``.

    Flushing denormals: after a few hundred Adam steps ~23% of the teacher's optimiser state
    (squared-gradient averages of near-dead units) is denormal, and x86 arithmetic on denormals
    is slow: a teacher step took 2.3x as long (81 vs 36 ms, 2 threads) without the flush. The
    flag is per thread and the intra-op pool's threads copy it when they are created, so this
    must run before the first parallel torch operation.

    Commands that run in one process (``ddp_ok=False``) refuse a torchrun launch, in which every
    rank would train alone and write the same files.
    """
    if env_requests_ddp() and not ddp_ok:
        raise RuntimeError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']}: this command runs in a single process; "
            "launch it without torchrun (only pykd train-nnet trains with DDP)"
        )
    torch.set_flush_denormal(True)  # False (a no-op) on CPUs without the flush-to-zero mode
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when a process group is up; else return it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return model
    if device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a list of numbers over all ranks (identity for a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_have_batch(has_batch: bool, device: torch.device) -> bool:
    """True only if every rank still has a batch (keeps ranks in lock-step, avoiding DDP hangs)."""
    if not (dist.is_available() and dist.is_initialized()):
        return has_batch
    t = torch.tensor([1 if has_batch else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def barrier() -> None:
    """Synchronise ranks (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group once every rank has got here.

    The barrier keeps a rank from tearing its gloo pairs down (or, under ``mp.spawn``, the TCP
    store rank 0 hosts) while another rank still talks to it. Drop your DDP wrappers first
    (:meth:`Trainer.fit` drops its own when it finishes): a live one keeps the group's threads
    running until the interpreter exits, where gloo's teardown can abort the process (seen as
    SIGABRT, "terminate called without an active exception", after all the work was done).
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # free unreachable DDP wrappers: they keep the group alive past destroy
        dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(device: torch.device | str | None = None) -> Iterator[DistInfo]:
    """``with process_group(dev) as info:`` joins the torchrun job (if any) and leaves it after.

    A single process (no WORLD_SIZE > 1 in the environment) gets ``DistInfo()`` and no group.
    On an exception the group is destroyed without the closing barrier, which the other ranks
    may never reach.
    """
    info = init_from_env(device)
    if not info.enabled:
        yield info
        return
    try:
        yield info
    except BaseException:
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    cleanup()
