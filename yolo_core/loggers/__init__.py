"""Run loggers: the trainer reports to a RunLogger; backends implement it.

yolo_core holds only the interface (and CompositeLogger); tracking backends such as Comet
live outside yolo_core (integrations/comet.py, built by experiments/loggers.py),
so yolo_core never imports a tracking service.
"""
from .base import CompositeLogger, RunLogger

__all__ = ["RunLogger", "CompositeLogger"]
