"""The official YOLOv5 family (v6/v7 architecture): n, s, m, l, x."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbone import STRIDES
from .cspdarknet import CSPDarknet
from .detector import YOLODetector
from .head import Detect
from .neck import YOLOv5PAN
from .registry import register_model
from .variants import YOLOV5_ANCHORS, YOLOv5Size, yolov5_size


@torch.no_grad()
def mimic_stride_probe(module: nn.Module) -> None:
    """Leave BatchNorm buffers as the official constructor does.

    The official Model runs one train-mode forward of a zero image (to find the strides)
    while BN momentum is still 0.1. All activations are zero, so every BN ends with
    running_mean 0, running_var 0.9, num_batches_tracked 1. Fresh models here start the
    same, without paying for (or depending on) that forward.
    """
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(0.9)
            m.num_batches_tracked.fill_(1)


def yolov5_neck_and_head(size: YOLOv5Size, nc: int,
                         anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> tuple[YOLOv5PAN, Detect]:
    """The official neck (layers 10-23) and Detect head (24) of a YOLOv5 size."""
    neck = YOLOv5PAN(size)
    head = Detect(nc, anchors, neck.out_channels, STRIDES)
    mimic_stride_probe(neck)
    return neck, head


def _yolov5(size_name: str, nc: int, anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> YOLODetector:
    size = yolov5_size(size_name)
    backbone = CSPDarknet(size)
    mimic_stride_probe(backbone)
    neck, head = yolov5_neck_and_head(size, nc, anchors)
    return YOLODetector(backbone, neck, head)


@register_model
def yolov5n(nc: int = 80, anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> YOLODetector:
    return _yolov5("n", nc, anchors)


@register_model
def yolov5s(nc: int = 80, anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> YOLODetector:
    return _yolov5("s", nc, anchors)


@register_model
def yolov5m(nc: int = 80, anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> YOLODetector:
    return _yolov5("m", nc, anchors)


@register_model
def yolov5l(nc: int = 80, anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> YOLODetector:
    return _yolov5("l", nc, anchors)


@register_model
def yolov5x(nc: int = 80, anchors: Sequence[Sequence[float]] = YOLOV5_ANCHORS) -> YOLODetector:
    return _yolov5("x", nc, anchors)
