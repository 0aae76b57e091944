"""Data-parallel training across processes (torch.distributed), as YOLOv5 does it with DDP.

The processes come from a launcher that sets RANK, LOCAL_RANK and WORLD_SIZE (and
MASTER_ADDR/MASTER_PORT): `torchrun --nproc_per_node=N ...` on one machine. The trainer
reads them; with WORLD_SIZE unset or 1 nothing here does anything.

What the ranks share and what only rank 0 does (the official split): every rank loads the
data, builds the same model, resumes from the same last.pt and steps its own optimizer on
the averaged gradients; rank 0 alone keeps the EMA, validates, writes checkpoints,
results.csv, summary.json and the log, and talks to the experiment logger. Decisions that
change the control flow (a stop signal that reached any rank, early stopping decided by
rank 0) are agreed on with one all-reduce, so no rank waits forever in a collective the
others have left.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .preemption import Preempted, StopRequest

# how long a rank waits in a collective: rank 0's validation (COCO val: about a minute) and
# checkpoint writes happen while the others wait at the next one
TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistContext:
    """The launcher's RANK / LOCAL_RANK / WORLD_SIZE (torchrun); a single process without them."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK/LOCAL_RANK/WORLD_SIZE must be integers: {e}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
    return DistContext(rank=rank, local_rank=local, world_size=world)


def device_for(ctx: DistContext, requested: torch.device) -> torch.device:
    """One GPU per process: cuda:LOCAL_RANK when the run is on CUDA."""
    if ctx.enabled and requested.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={ctx.local_rank} but only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device("cuda", ctx.local_rank)
    return requested


def init_process_group(ctx: DistContext, device: torch.device) -> bool:
    """NCCL between GPUs, gloo on the CPU. Returns True when this call created the group."""
    if not ctx.enabled or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank,
                            world_size=ctx.world_size, timeout=TIMEOUT)
    return True


def agree_max(ctx: DistContext, value: int, device: torch.device) -> int:
    """The largest of every rank's value (each rank must call it at the same point)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


# stop signals in increasing precedence: SIGUSR2 is submitit's "requeue me", so when any rank
# got it, every rank (rank 0 above all, which hands the run back to submitit) must say so
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR2")


def agree_stop(ctx: DistContext, signal_name: str | None, device: torch.device) -> str | None:
    """The stop signal any rank has received (SIGUSR2 before SIGTERM before SIGINT), None when none has."""
    code = 0 if signal_name is None else 1 + STOP_SIGNALS.index(signal_name)
    agreed = agree_max(ctx, code, device)
    return STOP_SIGNALS[agreed - 1] if agreed else None


def raise_if_stopped(ctx: DistContext, stop: StopRequest, device: torch.device) -> None:
    """Raise Preempted when a stop signal reached this process or, with DDP, any process of
    the run (a collective: every rank calls it at the same points)."""
    if not ctx.enabled:
        stop.check()
        return
    name = agree_stop(ctx, stop.signal_name, device)
    if name is not None:
        if stop.signal_name == name:
            stop.check()  # this rank's own signal
        raise Preempted(f"another process of this run received signal {name}", signal.Signals[name])


def broadcast_from_main(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's obj on every rank (picklable objects)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def loss_for_backward(loss: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """YOLOv5's loss is a sum over the batch (mean x batch size) and DDP averages gradients
    over ranks: x world size gives every rank the gradient of the whole batch's loss, as
    the official train.py does."""
    return loss * ctx.world_size if ctx.enabled else loss
