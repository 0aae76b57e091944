"""The 4-image mosaic canvas of YOLOv5 (load_mosaic before its random_perspective).

Kept free of the dataset and of randomness: the caller draws the centre and the images,
this places them, so placement and label arithmetic can be tested against drawn pixels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .augment import PAD_VALUE, xywhn2xyxy


def mosaic_centre_range(s: int) -> tuple[int, int]:
    """Bounds of the uniform draw of the mosaic centre (xc and yc each): U(s/2, 1.5 s).

    YOLOv5 writes it as uniform(-border, 2s + border) with border = -s // 2.
    """
    b = -s // 2
    return -b, 2 * s + b


def build_mosaic(items: Sequence[tuple[np.ndarray, np.ndarray]], s: int, xc: int, yc: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Place 4 (image, labels) pairs top-left, top-right, bottom-left, bottom-right of (xc, yc).

    images: HWC uint8, already resized (long side s); labels: (n, 5) [cls, x, y, w, h]
    normalised to that image. Returns the 2s x 2s canvas (filled with 114 where no image
    lands) and (N, 5) [cls, x1, y1, x2, y2] pixel labels clipped to [0, 2s]. The clip
    matches the crop, since images are only cut at the canvas edge.
    """
    if len(items) != 4:
        raise ValueError(f"a mosaic needs 4 images, got {len(items)}")
    c = items[0][0].shape[2]
    img4 = np.full((s * 2, s * 2, c), PAD_VALUE, dtype=np.uint8)
    labels4 = []
    for i, (img, labels) in enumerate(items):
        h, w = img.shape[:2]
        if i == 0:  # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif i == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif i == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:  # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        img4[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
        padw, padh = x1a - x1b, y1a - y1b
        lab = np.asarray(labels, dtype=np.float32).reshape(-1, 5).copy()
        if lab.size:
            lab[:, 1:] = xywhn2xyxy(lab[:, 1:], w, h, padw, padh)
        labels4.append(lab)
    out = np.concatenate(labels4, 0)
    np.clip(out[:, 1:], 0, 2 * s, out=out[:, 1:])
    return img4, out
