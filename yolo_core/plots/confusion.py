"""YOLOv5 v7.0's ConfusionMatrix: detections above conf 0.25 matched to labels at IoU > 0.45,
one match per label and per detection (highest IoU first); a column per true class and one
for background (a detection of nothing), a row per predicted class and one for background
(a label nothing found). As val.py, images without labels do not enter it."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou


class ConfusionMatrix:
    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45) -> None:
        self.matrix = np.zeros((nc + 1, nc + 1))
        self.nc, self.conf, self.iou_thres = nc, conf, iou_thres

    def process_batch(self, detections: torch.Tensor | None, labels: torch.Tensor) -> None:
        """detections (n, 6) [x1, y1, x2, y2, conf, cls] or None; labels (m, 5) [cls, x1, y1, x2, y2]
        in the same pixels (with detections None, labels may be the (m,) classes alone)."""
        if detections is None:
            for gc in labels.reshape(-1, labels.shape[-1] if labels.ndim > 1 else 1)[:, 0].int().tolist():
                self.matrix[self.nc, gc] += 1
            return
        detections = detections[detections[:, 4] > self.conf]
        gt_classes = labels[:, 0].int()
        detection_classes = detections[:, 5].int()
        iou = box_iou(labels[:, 1:], detections[:, :4])
        x = torch.where(iou > self.iou_thres)
        if x[0].shape[0]:
            matches = torch.cat((torch.stack(x, 1), iou[x[0], x[1]][:, None]), 1).cpu().numpy()
            if x[0].shape[0] > 1:
                matches = matches[matches[:, 2].argsort()[::-1]]
                matches = matches[np.unique(matches[:, 1], return_index=True)[1]]
                matches = matches[matches[:, 2].argsort()[::-1]]
                matches = matches[np.unique(matches[:, 0], return_index=True)[1]]
        else:
            matches = np.zeros((0, 3))
        n = matches.shape[0] > 0
        m0, m1, _ = matches.transpose().astype(int)
        for i, gc in enumerate(gt_classes.tolist()):
            j = m0 == i
            if n and sum(j) == 1:
                self.matrix[int(detection_classes[m1[j]][0]), gc] += 1  # correct, or another class
            else:
                self.matrix[self.nc, gc] += 1  # a label nothing found
        if n:
            for i, dc in enumerate(detection_classes.tolist()):
                if not any(m1 == i):
                    self.matrix[dc, self.nc] += 1  # a detection of nothing

    def plot(self, path: str | Path, names: Sequence[str]) -> None:
        """Column-normalised (each true class sums to 1), values under 0.005 left blank."""
        from matplotlib.figure import Figure

        array = self.matrix / (self.matrix.sum(0).reshape(1, -1) + 1e-9)
        array[array < 0.005] = np.nan
        labels = [*names, "background"] if len(names) < 30 else None  # unreadable beyond that
        n = self.nc + 1
        size = min(12, max(4.5, 0.45 * n + 3))
        fig = Figure(figsize=(size, size * 0.8), tight_layout=True)
        ax = fig.subplots()
        im = ax.imshow(array, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if labels is not None:
            ax.set_xticks(range(n), labels, rotation=90 if n > 8 else 30, ha="center" if n > 8 else "right")
            ax.set_yticks(range(n), labels)
            if n < 30:
                for (r, c), v in np.ndenumerate(array):
                    if not np.isnan(v):
                        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8,
                                color="white" if v > 0.6 else "black")
        ax.set_xlabel("True")
        ax.set_ylabel("Predicted")
        ax.set_title(f"Confusion matrix\nconf > {self.conf}, IoU > {self.iou_thres}; each True column sums to 1",
                     fontsize=10)
        fig.savefig(path, dpi=150)
