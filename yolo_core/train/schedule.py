"""Learning-rate schedules and warmup, as pure functions of (epoch, iteration).

The official loop builds a LambdaLR, sets `scheduler.last_epoch = start_epoch - 1`, steps
it once after each epoch and overwrites lr/momentum every iteration during warmup. So an
epoch e trains at lr0 * lf(e - 1) (epoch 0 at lf(0), the value LambdaLR starts with),
while warmup ramps towards lr0 * lf(e) and, in the epoch where warmup ends, leaves that
value in place until the epoch's end. Computing this directly gives the same numbers and
leaves nothing to save on resume.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

SCHEDULES = ("linear", "cosine", "constant")


def lr_lambda(schedule: str, epochs: int, lrf: float) -> Callable[[float], float]:
    """Multiplier of lr0 at an epoch: official linear, one_cycle (--cos-lr) or constant."""
    if schedule == "linear":
        return lambda e: (1 - e / epochs) * (1.0 - lrf) + lrf
    if schedule == "cosine":
        return lambda e: ((1 - math.cos(e * math.pi / epochs)) / 2) * (lrf - 1) + 1
    if schedule == "constant":
        return lambda e: 1.0
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def warmup_iterations(warmup_epochs: float, batches_per_epoch: int, min_iters: int = 100) -> int:
    """Official nw = max(round(warmup_epochs * nb), 100); min_iters is configurable because
    on a tiny dataset 100 iterations are many epochs. warmup_epochs <= 0 means no warmup
    (the official would still warm up for 100 iterations)."""
    if warmup_epochs <= 0:
        return 0
    return max(round(warmup_epochs * batches_per_epoch), min_iters)


def warmup_value(ni: int, nw: int, start: float, end: float) -> float:
    """Linear interpolation over [0, nw] as np.interp does (clamped at both ends)."""
    return float(np.interp(ni, [0, nw], [start, end]))


def schedule_epoch(epoch: int, batches_per_epoch: int, nw: int) -> int:
    """The epoch whose lf() value is in effect after warmup, during `epoch`.

    lf(epoch) when warmup ends during this epoch (its last iteration set that value), else
    lf(epoch - 1): the LambdaLR value after `epoch` steps (never below lf(0)).
    """
    if epoch == 0 or epoch * batches_per_epoch <= nw:
        return epoch
    return epoch - 1
