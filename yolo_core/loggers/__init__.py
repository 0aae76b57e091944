"""Run loggers: the trainer reports to a RunLogger; backends (local files, Comet) implement it."""
from .base import CompositeLogger, RunLogger

__all__ = ["RunLogger", "CompositeLogger"]
