"""The logger interface the trainer calls. It never imports a tracking service itself.

results.csv, summary.json and train.log are the trainer's own files (the run directory
contract); a RunLogger mirrors what happens to an external tracker. Backends live outside
yolo_core (Comet: integrations/comet.py). The trainer writes the records of the
Python logger hierarchy "yolo_core" to train.log; a backend whose warnings belong there
logs under a name in it (the Comet backend: "yolo_core.loggers.comet").
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class RunLogger:
    """No-op base: override what the backend needs."""

    def start(self, run_dir: str, config: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
        """Called once, after the model is built (and on resume, with resumed=True in facts)."""

    def log_epoch(self, epoch: int, row: Mapping[str, Any]) -> None:
        """One results.csv row (losses, lr per group, val metrics)."""

    def should_stop(self) -> str | None:
        """Asked after each epoch: a reason to stop training now (e.g. an Optuna pruner), or None.

        Training then ends as with early stopping: best.pt is evaluated and the run completes.
        """
        return None

    def log_final(self, summary: Mapping[str, Any], run_dir: str) -> None:
        """The final summary (COCO stats, P/R) and the run directory with best.pt, predictions.json."""

    def finish(self, status: str) -> None:
        """Always called last, with the run's status (completed, failed, preempted)."""


class CompositeLogger(RunLogger):
    def __init__(self, loggers: Sequence[RunLogger]):
        self.loggers = list(loggers)

    def start(self, run_dir, config, facts):
        for lg in self.loggers:
            lg.start(run_dir, config, facts)

    def log_epoch(self, epoch, row):
        for lg in self.loggers:
            lg.log_epoch(epoch, row)

    def should_stop(self):
        return next((r for r in (lg.should_stop() for lg in self.loggers) if r), None)

    def log_final(self, summary, run_dir):
        for lg in self.loggers:
            lg.log_final(summary, run_dir)

    def finish(self, status):
        for lg in self.loggers:
            lg.finish(status)
