"""Boxes with class names and confidences on an image, through supervision's annotators."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def draw_detections(image: np.ndarray, xyxy: np.ndarray, class_ids: np.ndarray, names: Sequence[str],
                    confidences: np.ndarray | None = None) -> np.ndarray:
    """A copy of `image` (BGR) with each box in its class's colour and a label
    "<name> <conf>" (the name alone without confidences: ground truth)."""
    import supervision as sv  # lazy: only detect and the plots draw

    out = image.copy()
    if not len(xyxy):
        return out
    det = sv.Detections(xyxy=np.asarray(xyxy, dtype=np.float32), class_id=np.asarray(class_ids, dtype=int),
                        confidence=None if confidences is None else np.asarray(confidences, dtype=np.float32))
    scale = min(image.shape[:2]) / 640  # labels readable on a 256 px tile and a 4k frame alike
    thickness = max(int(round(2 * scale)), 1)
    labels = [names[int(c)] if confidences is None else f"{names[int(c)]} {s:.2f}"
              for c, s in zip(det.class_id, confidences if confidences is not None else det.class_id)]
    out = sv.BoxAnnotator(thickness=thickness).annotate(out, det)
    return sv.LabelAnnotator(text_scale=max(0.4, 0.5 * scale), text_thickness=thickness,
                             text_padding=max(int(round(4 * scale)), 2),
                             text_position=sv.Position.TOP_LEFT).annotate(out, det, labels=labels)
