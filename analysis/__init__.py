"""Analysis of sweep outputs: reads run directories only (summary.json, results.csv, .hydra/).

No import of yolo_core, torch or Hydra here, so a report can be rebuilt from any copy of
an output tree without the training code. collect_runs() gives pandas frames;
analysis.report builds the tables, notes and plots (`python analysis/report.py DIR`).
"""
from analysis.collect import Runs, collect_runs

__all__ = ["Runs", "collect_runs"]
