"""Box conversions between the network input and the original image, as YOLOv5 v7.0 does.

Validation compares predictions with labels in the ORIGINAL image's pixels, so the
letterbox (resize gain + padding) applied by the loader must be undone exactly the way
the official `scale_boxes` undoes it: subtract the padding, divide by the gain, clip.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Shape = Sequence[int]  # (height, width)
RatioPad = tuple[tuple[float, float], tuple[float, float]]  # ((gain_h, gain_w), (padw, padh))


def clip_boxes(boxes: torch.Tensor | np.ndarray, shape: Shape) -> torch.Tensor | np.ndarray:
    """Clip xyxy boxes IN PLACE to an image of shape (height, width); returns `boxes`.

    In place because the official code is, and callers clone when they need the input.
    """
    if isinstance(boxes, torch.Tensor):
        boxes[:, 0].clamp_(0, shape[1])
        boxes[:, 1].clamp_(0, shape[0])
        boxes[:, 2].clamp_(0, shape[1])
        boxes[:, 3].clamp_(0, shape[0])
    else:
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, shape[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, shape[0])
    return boxes


def scale_boxes(img1_shape: Shape, boxes: torch.Tensor | np.ndarray, img0_shape: Shape,
                ratio_pad: RatioPad | None = None) -> torch.Tensor | np.ndarray:
    """Rescale xyxy `boxes` IN PLACE from the network input (img1_shape, (h, w)) to the
    original image (img0_shape, (h0, w0)), then clip; returns `boxes`.

    ratio_pad is the loader's ((gain_h, gain_w), (padw, padh)); without it the gain and the
    centred padding of a plain letterbox are recomputed from the two shapes. As in the
    official code only gain_h is used (rect letterboxing keeps the aspect ratio, so the two
    gains agree up to rounding of the resized size).
    """
    if ratio_pad is None:
        gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
        pad = (img1_shape[1] - img0_shape[1] * gain) / 2, (img1_shape[0] - img0_shape[0] * gain) / 2
    else:
        gain = ratio_pad[0][0]
        pad = ratio_pad[1]
    boxes[:, [0, 2]] -= pad[0]
    boxes[:, [1, 3]] -= pad[1]
    boxes[:, :4] /= gain
    clip_boxes(boxes, img0_shape)
    return boxes
