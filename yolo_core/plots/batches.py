"""val_batch0_labels.jpg / val_batch0_pred.jpg: a mosaic of a validation batch as the network
saw it (letterboxed), with the ground truth or the predictions (confidence > 0.25) drawn."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.augment import xywhn2xyxy
from .draw import draw_detections

MAX_TILES, MAX_SIZE, MIN_SIZE = 16, 1920, 1024  # the mosaic's longer side, px


def plot_batch(imgs: torch.Tensor, boxes: Sequence[np.ndarray], names: Sequence[str], path: str | Path) -> None:
    """imgs uint8 (B, 3, H, W) RGB; boxes per image: (n, 5) [cls, x1, y1, x2, y2] or (n, 6)
    [x1, y1, x2, y2, conf, cls] in the images' pixels."""
    n = min(len(imgs), MAX_TILES)
    h, w = imgs.shape[2:]
    cols = math.ceil(n ** 0.5)
    rows = math.ceil(n / cols)
    side = max(rows * h, cols * w)
    scale = min(MAX_SIZE / side, max(1.0, MIN_SIZE / side))  # small inputs (96 px) enlarged to read labels
    th, tw = max(int(h * scale), 1), max(int(w * scale), 1)
    mosaic = np.full((rows * th, cols * tw, 3), 255, dtype=np.uint8)
    for i in range(n):
        tile = np.ascontiguousarray(imgs[i].permute(1, 2, 0).cpu().numpy()[..., ::-1])  # RGB -> BGR
        if scale != 1:
            tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        b = np.asarray(boxes[i], dtype=np.float64).copy()
        if b.shape[1] == 5:  # ground truth
            b[:, 1:5] *= scale
            tile = draw_detections(tile, b[:, 1:5], b[:, 0], names)
        else:
            b = b[b[:, 4] > 0.25]
            b[:, :4] *= scale
            tile = draw_detections(tile, b[:, :4], b[:, 5], names, b[:, 4])
        r, c = divmod(i, cols)
        mosaic[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tile
        cv2.rectangle(mosaic, (c * tw, r * th), ((c + 1) * tw - 1, (r + 1) * th - 1), (255, 255, 255), 1)
    if not cv2.imwrite(str(path), mosaic):
        raise OSError(f"could not write {path}")


def targets_as_boxes(targets: torch.Tensor, n: int, h: int, w: int) -> list[np.ndarray]:
    """The loader's targets (N, 6) [img, cls, x, y, w, h] normalised -> per image [cls, x1, y1, x2, y2] px."""
    t = targets.cpu().numpy().astype(np.float64)
    out = []
    for i in range(n):
        ti = t[t[:, 0] == i]
        out.append(np.concatenate((ti[:, 1:2], xywhn2xyxy(ti[:, 2:6], w, h)), 1) if len(ti) else np.zeros((0, 5)))
    return out
