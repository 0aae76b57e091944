"""What an evaluation hands to its plots: evaluate() calls `batch` for each batch (the first
is kept for the mosaics) and `image` for each image (the confusion matrix);
write_eval_plots then draws them with the evaluation's per-class curves."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..eval.metrics import APResult
from .batches import plot_batch, targets_as_boxes
from .confusion import ConfusionMatrix
from .curves import plot_curves

LOG = logging.getLogger("yolo_core.plots")


class EvalPlots:
    def __init__(self, nc: int) -> None:
        self.confusion = ConfusionMatrix(nc)
        self.first: tuple[torch.Tensor, torch.Tensor, list[np.ndarray]] | None = None

    def batch(self, imgs: torch.Tensor, targets: torch.Tensor, dets: Sequence[torch.Tensor]) -> None:
        """imgs uint8 (B, 3, H, W); targets the loader's; dets per image in the input's pixels."""
        if self.first is None:
            self.first = (imgs.cpu(), targets.cpu(), [d.detach().cpu().numpy() for d in dets])

    def image(self, detections: torch.Tensor, labels: torch.Tensor) -> None:
        """One image's detections and labels [cls, x1, y1, x2, y2], both in original pixels."""
        if len(labels):  # val.py: images without labels do not enter the matrix
            self.confusion.process_batch(detections if len(detections) else None, labels)


def draw_safely(what: str, draw: Callable[[], list[Path]]) -> list[Path]:
    """draw() -> the files it wrote; a failure is a warning: a picture must never cost a run its numbers."""
    try:
        return draw()
    except Exception as e:  # noqa: BLE001
        LOG.warning("could not draw %s: %s: %s", what, type(e).__name__, e)
        return []


def write_eval_plots(plots: EvalPlots, per_class: APResult | None, names: Sequence[str],
                     out_dir: str | Path) -> list[Path]:
    """confusion_matrix.png, PR/F1/P/R_curve.png, val_batch0_labels.jpg, val_batch0_pred.jpg
    (the mosaics when a batch was seen). Returns the files written."""
    out = Path(out_dir)

    def confusion() -> list[Path]:
        plots.confusion.plot(out / "confusion_matrix.png", names)
        return [out / "confusion_matrix.png"]

    def mosaics() -> list[Path]:
        if plots.first is None:
            return []
        imgs, targets, dets = plots.first
        files = [out / "val_batch0_labels.jpg", out / "val_batch0_pred.jpg"]
        plot_batch(imgs, targets_as_boxes(targets, len(imgs), *imgs.shape[2:]), names, files[0])
        plot_batch(imgs, dets, names, files[1])
        return files

    return (draw_safely("the confusion matrix", confusion)
            + draw_safely("the PR/F1/P/R curves", lambda: plot_curves(per_class, names, out))
            + draw_safely("the val_batch0 mosaics", mosaics))
