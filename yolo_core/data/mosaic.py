"""The 4-image mosaic canvas of YOLOv5 (load_mosaic before its random_perspective).

Kept free of the dataset and of randomness: the caller draws the centre and the images,
this places them, so placement and label arithmetic can be tested against drawn pixels.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .augment import PAD_VALUE, xywhn2xyxy


def mosaic_centre_range(s: int) -> tuple[int, int]:
    """Bounds of the uniform draw of the mosaic centre (xc and yc each): U(s/2, 1.5 s).

    YOLOv5 writes it as uniform(-border, 2s + border) with border = -s // 2.
    """
    b = -s // 2
    return -b, 2 * s + b


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2


def tile_placements(shapes: Sequence[tuple[int, int]], s: int, xc: int, yc: int) -> list[tuple[Rect, Rect]]:
    """For each of 4 image shapes (h, w): (rect on the 2s canvas, rect of the image), as
    YOLOv5 places them top-left, top-right, bottom-left, bottom-right of (xc, yc)."""
    out = []
    for i, (h, w) in enumerate(shapes):
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
        out.append(((x1a, y1a, x2a, y2a), (x1b, y1b, x2b, y2b)))
    return out


def _labels_on_canvas(labels: np.ndarray, w: int, h: int, a: Rect, b: Rect) -> np.ndarray:
    lab = np.asarray(labels, dtype=np.float32).reshape(-1, 5).copy()
    if lab.size:
        lab[:, 1:] = xywhn2xyxy(lab[:, 1:], w, h, a[0] - b[0], a[1] - b[1])
    return lab


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
    for (img, labels), (a, b) in zip(items, tile_placements([im.shape[:2] for im, _ in items], s, xc, yc)):
        img4[a[1]:a[3], a[0]:a[2]] = img[b[1]:b[3], b[0]:b[2]]
        labels4.append(_labels_on_canvas(labels, img.shape[1], img.shape[0], a, b))
    out = np.concatenate(labels4, 0)
    np.clip(out[:, 1:], 0, 2 * s, out=out[:, 1:])
    return img4, out


LoadRows = Callable[[int, "tuple[int, int] | None"], "tuple[np.ndarray, int, tuple[int, int]]"]


def build_mosaic_window(shapes: Sequence[tuple[int, int]], labels: Sequence[np.ndarray], load: LoadRows,
                        s: int, xc: int, yc: int, window: Rect,
                        canvas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """build_mosaic for a warp that reads only `window` of the canvas (augment.source_window).

    Only the window is painted (114, then the parts of the images inside it), and an image
    wholly outside it is never loaded. load(k, (r1, r2)) is called only for the tiles k
    that show, with the image rows the window needs; it returns (pixels holding at least
    those rows, the image row its first row is, the image's full (h, w)), and may return
    the whole image (row 0); load(k, None) must. What the warp then produces is
    bit-identical to warping the full canvas; labels are those of build_mosaic (they need
    only the image shapes). `canvas`, a (2s, 2s, 3) uint8 buffer, is reused when given
    (its pixels outside the window stay as they were). shapes are the (h, w) the loaded
    images will have; an image of another shape is placed by its real shape.
    """
    if canvas is None or canvas.shape[:2] != (2 * s, 2 * s):
        canvas = np.empty((2 * s, 2 * s, 3), np.uint8)
    wx1, wy1, wx2, wy2 = window
    if wx2 > wx1 and wy2 > wy1:
        canvas[wy1:wy2, wx1:wx2] = PAD_VALUE
    shapes = list(shapes)
    placements = tile_placements(shapes, s, xc, yc)
    labels4 = []
    for k, (a, b) in enumerate(placements):
        x1, y1, x2, y2 = max(a[0], wx1), max(a[1], wy1), min(a[2], wx2), min(a[3], wy2)
        if x2 > x1 and y2 > y1:
            oy = b[1] - a[1]
            img, row0, hw = load(k, (y1 + oy, y2 + oy))
            if tuple(hw) != tuple(shapes[k]):  # the record's size was wrong: trust the pixels
                img, row0, hw = load(k, None)
                shapes[k] = tuple(hw)
                a, b = tile_placements(shapes, s, xc, yc)[k]
                x1, y1, x2, y2 = max(a[0], wx1), max(a[1], wy1), min(a[2], wx2), min(a[3], wy2)
            if x2 > x1 and y2 > y1:
                ox, oy = b[0] - a[0], b[1] - a[1] - row0
                canvas[y1:y2, x1:x2] = img[y1 + oy:y2 + oy, x1 + ox:x2 + ox]
        h, w = shapes[k]
        labels4.append(_labels_on_canvas(labels[k], w, h, a, b))
    out = np.concatenate(labels4, 0)
    np.clip(out[:, 1:], 0, 2 * s, out=out[:, 1:])
    return canvas, out
