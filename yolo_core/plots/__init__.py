"""The pictures of a run and of a val, as YOLOv5 draws them: results.png, confusion_matrix.png,
PR/F1/P/R curves, labels.jpg and the val_batch0 mosaics. matplotlib figures are built without
pyplot (no GUI backend, no global state); boxes are drawn by supervision (infer/draw.py).
Plotting never fails a run: write_* functions log a warning and go on."""
from .collector import EvalPlots, draw_safely, write_eval_plots
from .confusion import ConfusionMatrix
from .curves import plot_curves, plot_results
from .labels import plot_labels

__all__ = ["EvalPlots", "draw_safely", "write_eval_plots", "ConfusionMatrix", "plot_curves", "plot_results", "plot_labels"]
