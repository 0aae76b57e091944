"""One training epoch as a plain function, as in torchvision's detection engine.py.

Everything the epoch uses comes in as arguments, and what it changes between epochs is the
TrainState it is given (what last.pt holds), so it can be read, tested and timed without a
Trainer. The recipe is YOLOv5 v7.0 train.py's: warmup-aware lr/momentum per iteration, AMP
forward + loss, backward, accumulation to the nominal batch, unscale -> clip -> step -> EMA.
Validation is yolo_core.eval.evaluate, another plain function.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from ..loss import YOLOv5Loss
from . import distributed as ddp
from .config import TrainConfig
from .ema import ModelEMA
from .schedule import schedule_epoch, warmup_value
from .state import TrainState

STOP_SYNC_EVERY = 10  # with DDP: iterations between the collectives that agree on a stop signal


@dataclass
class TrainStep:
    """What an optimisation step uses; the Trainer builds it once per run."""
    model: torch.nn.Module                     # the plain module: clipping, EMA and freezing act on it
    forward: Callable[[torch.Tensor], Any]     # the model, or its DDP / torch.compile wrapper
    loss_fn: YOLOv5Loss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    lf: Callable[[float], float]               # the schedule's lr factor of an epoch
    device: torch.device
    amp: bool
    amp_dtype: torch.dtype
    dist: ddp.DistContext


@dataclass
class EpochStats:
    mloss: torch.Tensor       # running mean of (box, obj, cls) over the epoch's finite batches
    seconds: float            # time in training batches
    images: int               # over all processes
    nonfinite: int            # optimizer steps skipped for a non-finite gradient

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def set_lr(optimizer: torch.optim.Optimizer, lf: Callable[[float], float], hyp: dict[str, float],
           ni: int, nw: int, epoch: int, nb: int) -> None:
    """The official lr/momentum at iteration ni: warmup towards lf(epoch), then the
    once-per-epoch LambdaLR value (see schedule.py)."""
    factor = lf(epoch if ni <= nw else schedule_epoch(epoch, nb, nw))
    for g in optimizer.param_groups:
        target = g["initial_lr"] * factor
        if ni <= nw:
            start = hyp["warmup_bias_lr"] * g.get("lr_scale", 1.0) if g.get("bias_warmup") else 0.0
            g["lr"] = warmup_value(ni, nw, start, target)
            if "momentum" in g:
                g["momentum"] = warmup_value(ni, nw, hyp["warmup_momentum"], hyp["momentum"])
        else:
            g["lr"] = target


def set_loader_epoch(loader: torch.utils.data.DataLoader, epoch: int) -> None:
    """Make shuffling and augmentation a function of (seed, epoch) where the data supports it."""
    for obj in (loader.sampler, loader.batch_sampler, loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def train_one_epoch(step: TrainStep, loader: torch.utils.data.DataLoader, cfg: TrainConfig, state: TrainState,
                    epoch: int, nw: int, check_stop: Callable[[], None]) -> EpochStats:
    """Train `epoch` (0-based; nw warmup iterations in all); check_stop raises Preempted at a
    safe point (with DDP a collective, so every rank calls it at the same iterations)."""
    model, optimizer, scaler, device = step.model, step.optimizer, step.scaler, step.device
    model.train()
    frozen = epoch < cfg.freeze_backbone_epochs
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)
    set_loader_epoch(loader, epoch)
    nb = len(loader)
    mloss = torch.zeros(3, device=device)
    n_finite = torch.zeros((), device=device)  # batches in mloss: a non-finite loss is left out
    nonfinite_before = state.nonfinite.total
    optimizer.zero_grad(set_to_none=True)
    accumulate = state.accumulate
    t0 = time.perf_counter()
    n_images = 0
    bar = tqdm(loader, total=nb, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not sys.stderr.isatty(), file=sys.stderr)
    for i, (imgs, targets, _, _) in enumerate(bar):
        if not step.dist.enabled or i % STOP_SYNC_EVERY == 0:  # a collective syncs with the GPU
            check_stop()
        ni = i + nb * epoch
        imgs = imgs.to(device, non_blocking=True).float() / 255
        if cfg.channels_last:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        if ni <= nw:
            accumulate = max(1, int(np.interp(ni, [0, nw], [1, cfg.nbs / cfg.batch_size]).round()))
        set_lr(optimizer, step.lf, cfg.hyp, ni, nw, epoch, nb)
        with torch.autocast(device.type, dtype=step.amp_dtype, enabled=step.amp):
            preds = step.forward(imgs)
            loss, items = step.loss_fn(preds, targets.to(device))
            loss = ddp.loss_for_backward(loss, step.dist)
        # a non-finite loss is backpropagated too: its NaN gradient makes the step below skip,
        # on every DDP process alike (they all see the averaged gradient)
        scaler.scale(loss).backward()
        if ni - state.last_opt_step >= accumulate:
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.clip_grad)
            finite = bool(torch.isfinite(norm))  # GradScaler.step syncs here as well
            state.nonfinite.record(finite, f"epoch {epoch}, iteration {i}")
            if finite:
                scaler.step(optimizer)
            scaler.update()  # after a skip: a smaller fp16 loss scale
            optimizer.zero_grad(set_to_none=True)
            if step.ema and finite:
                step.ema.update(model)
            state.last_opt_step = ni
        ok = torch.isfinite(items).all()  # the official running mean, over finite batches only
        mloss = torch.where(ok, (mloss * n_finite + items) / (n_finite + 1), mloss)
        n_finite += ok
        n_images += imgs.shape[0] * step.dist.world_size
        if not bar.disable:  # formatting reads the values: a device sync per step on a GPU
            bar.set_postfix(box=f"{mloss[0]:.4f}", obj=f"{mloss[1]:.4f}", cls=f"{mloss[2]:.4f}")
    stats = EpochStats(mloss, time.perf_counter() - t0, n_images, state.nonfinite.total - nonfinite_before)
    state.train_seconds += stats.seconds
    state.train_images += stats.images
    state.accumulate = accumulate
    return stats
