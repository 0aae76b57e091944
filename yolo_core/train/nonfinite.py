"""Optimizer steps with a non-finite gradient: skipped and counted instead of ending a run.

A NaN or inf loss or gradient (a collapsed box, an fp16 overflow) would put NaN into every
weight at the next optimizer step. The official gets a skip on GPUs from AMP's GradScaler
and nothing on the CPU; here every optimizer step whose gradient norm is not finite is
skipped (no weight, optimizer-state or EMA update) and counted, and the run fails only
after `limit` such steps in a row: the sign of a diverged run, not of one bad batch.
The decision uses the gradient norm, which DDP has already averaged, so every process
skips the same steps.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

LOG = logging.getLogger("yolo_core.train")


@dataclass
class NonFiniteSteps:
    limit: int
    total: int = 0        # in the whole run (kept in last.pt)
    consecutive: int = 0

    def record(self, finite: bool, where: str) -> None:
        """Note one optimizer step; raise FloatingPointError after `limit` non-finite ones in a row."""
        if finite:
            self.consecutive = 0
            return
        self.total += 1
        self.consecutive += 1
        LOG.warning("non-finite loss or gradient at %s: optimizer step skipped (%d in a row, %d in this run)",
                    where, self.consecutive, self.total)
        if self.consecutive >= self.limit:
            raise FloatingPointError(
                f"{self.consecutive} optimizer steps in a row had a non-finite loss or gradient (the last at "
                f"{where}; {self.total} skipped in this run, max_nonfinite_steps={self.limit}); lower lr0, check "
                f"the data, or disable AMP")
