"""Learning-rate schedules and warmup, as pure functions of (epoch, iteration).

The official loop steps a LambdaLR once per epoch and overwrites lr/momentum during
warmup every iteration. Both are functions of the epoch and the global iteration only,
so computing them directly gives the same numbers and leaves nothing to save on resume.
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
    on a tiny dataset 100 iterations are many epochs."""
    if warmup_epochs <= 0:
        return 0
    return max(round(warmup_epochs * batches_per_epoch), min_iters)


def warmup_value(ni: int, nw: int, start: float, end: float) -> float:
    """Linear interpolation over [0, nw] as np.interp does (clamped at both ends)."""
    return float(np.interp(ni, [0, nw], [start, end]))
