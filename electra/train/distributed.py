"""torch.distributed behind a few helpers so the training loop reads the same on 1 CPU and 8 GPUs.

Launch several processes with `torchrun --nproc_per_node N -m electra.cli pretrain ...`; the
environment variables torchrun sets select DDP (NCCL on GPUs, gloo on CPUs)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from electra.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """`auto` (CUDA if visible, else CPU), `cpu`, `cuda` (this process's local GPU) or `cuda:N`."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={requested} but no CUDA device is visible; use train.device=cpu")
        if requested == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(requested)


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among the processes and its device."""

    info: DistInfo
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.info.is_main


def init_distributed(device_request: str) -> Context:
    """Once per process: read torchrun's environment, pick the device, join the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(rank=int(os.environ.get("RANK", "0")),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")), world_size=world)
    device = resolve_device(device_request, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(info, device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_to_main(obj: object) -> list[object]:
    """Every rank's `obj` on the main process (in rank order); `[obj]` without DDP."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out or []


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device, *,
               some_parameters_idle: bool = False) -> nn.Module:
    """DDP around the whole pre-training model (generator + discriminator in one module).
    `some_parameters_idle`: an objective phase leaves parameters without gradients (a
    warm-start phase, MLM alone), which DDP must be told about."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                               find_unused_parameters=some_parameters_idle)


def no_sync_unless(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulation."""
    if sync or not isinstance(model, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()
