"""TrainState: where a run stands between epochs, in one object.

Everything last.pt holds besides state_dicts, the RNG and the run's identity lives here,
so the checkpoint writes and a resume restores the same fields and nothing else can be
forgotten: a resumed run continues with the counters an uninterrupted one would have
(early stopping counts from best_epoch; the non-finite total and the gradient
accumulation carry over). The checkpoint keys are those of earlier versions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .nonfinite import NonFiniteSteps


@dataclass
class TrainState:
    nonfinite: NonFiniteSteps                 # skipped optimizer steps (total kept; the run of them is not)
    start_epoch: int = 0                      # the next epoch to train
    best_fitness: float = 0.0                 # as the official: an epoch of fitness 0 still writes best.pt
    best_epoch: int = -1
    rows: list[dict[str, Any]] = field(default_factory=list)  # results.csv so far
    train_seconds: float = 0.0                # time in training batches (for images/s)
    train_images: int = 0
    last_opt_step: int = -1                   # iteration of the last optimizer step (gradient accumulation)
    accumulate: int = 1                       # batches per optimizer step (warmup ramps it to nbs / batch)
    wall_before: float = 0.0                  # wall time of earlier attempts of this run
    autoanchor: dict[str, Any] | None = None  # AutoAnchor's report of the fresh run

    def to_checkpoint(self, epoch: int, wall_time_s: float) -> dict[str, Any]:
        """The fields as last.pt stores them, after `epoch` (0-based) completed."""
        return {"epoch": epoch, "best_fitness": self.best_fitness, "best_epoch": self.best_epoch, "rows": self.rows,
                "train_seconds": self.train_seconds, "train_images": self.train_images,
                "last_opt_step": self.last_opt_step, "nonfinite_steps": self.nonfinite.total,
                "autoanchor": self.autoanchor, "accumulate": self.accumulate, "wall_time_s": wall_time_s}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], max_nonfinite_steps: int) -> "TrainState":
        return cls(nonfinite=NonFiniteSteps(max_nonfinite_steps, total=ckpt.get("nonfinite_steps", 0)),
                   start_epoch=ckpt["epoch"] + 1, best_fitness=ckpt["best_fitness"], best_epoch=ckpt["best_epoch"],
                   rows=ckpt["rows"], train_seconds=ckpt["train_seconds"], train_images=ckpt["train_images"],
                   last_opt_step=ckpt["last_opt_step"], accumulate=ckpt["accumulate"],
                   wall_before=ckpt["wall_time_s"], autoanchor=ckpt.get("autoanchor"))
