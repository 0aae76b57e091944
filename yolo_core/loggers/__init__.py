"""Run loggers: the trainer reports to a RunLogger; backends (local files, Comet) implement it."""
from .base import CompositeLogger, RunLogger
from .comet import CometLogger  # comet_ml itself is imported only when a CometLogger starts

__all__ = ["RunLogger", "CompositeLogger", "CometLogger"]
