"""CIoU against the official bbox_iou (YOLOv5 v7.0), including collapsed predicted boxes.

OFFICIAL holds 1 - bbox_iou(pred, target, xywh=True, CIoU=True) and the gradient of it with
respect to pred (x, y, w, h), computed in float32 by the official utils/metrics.py (commit
915bbf2) on this machine; None marks a NaN the official returns.
"""
from __future__ import annotations

import math

import pytest
import torch

from yolo_core import build_model
from yolo_core.loss import YOLOv5Loss, ciou

TARGET = (5.2, 4.9, 2.0, 3.0)
OFFICIAL = [  # pred, target, loss, (dx, dy, dw, dh)
    ((5, 5, 3.5e-8, 1.7e-17), TARGET, 1.11397469, (-0.0307692029, 0.0153846014, 0.00311014289, -6403235.5)),
    ((5, 5, 0.0, 0.0), TARGET, None, (-0.0307692029, 0.0153846014, None, None)),
    ((5, 5, 1e-30, 1e-30), TARGET, 1.00409162, (-0.0307692029, 0.0153846014, 1.24373497e27, -1.24373497e27)),
    ((5, 5, 2.0, 1e-20), TARGET, 1.11374128, (-0.0277531575, 0.0144508537, -0.00057427492, None)),
    ((5, 5, 2, 3), (5.5, 4.5, 2.5, 2.0), 0.566108942, (-0.44146359, 0.226020351, -0.0177771747, 0.0332705602)),
    ((1, 1, 0.5, 4), (1.2, 1.1, 0.6, 3.5), 0.576933265, (-1.75998294, -0.0120754605, -0.275386214, 0.0726455227)),
    ((3, 3, 8, 1), (2, 3, 1, 8), 1.24681842, (0.015625, 0.0, 0.0105818743, -0.0924674943)),
]


def _loss_and_grad(pred, target):
    p = torch.tensor([pred], dtype=torch.float32, requires_grad=True)
    loss = 1 - ciou(p, torch.tensor([target], dtype=torch.float32))
    loss.sum().backward()
    return loss.item(), p.grad[0].tolist()


@pytest.mark.parametrize("pred,target,want,want_grad", OFFICIAL)
def test_value_equals_the_official_wherever_it_is_finite(pred, target, want, want_grad) -> None:
    got, grad = _loss_and_grad(pred, target)
    assert math.isfinite(got) and all(math.isfinite(g) for g in grad)
    if want is not None:
        assert got == pytest.approx(want, abs=1e-6)
    # x, y gradients (IoU and centre distance) are the official's in every case
    assert grad[:2] == pytest.approx(want_grad[:2], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("pred,target,want,want_grad", [c for c in OFFICIAL if min(c[0][2:]) >= 0.5])
def test_gradient_equals_the_official_for_ordinary_boxes(pred, target, want, want_grad) -> None:
    assert _loss_and_grad(pred, target)[1] == pytest.approx(want_grad, rel=1e-5, abs=1e-7)


def test_an_empty_box_takes_the_limit_of_the_aspect_term() -> None:
    """w = h = 0 (official: NaN): the aspect angle is 0, so v = 4/pi^2 * atan(w2/h2)^2."""
    got, _ = _loss_and_grad((5, 5, 0.0, 0.0), TARGET)
    inter = 0.0
    union = 2.0 * 3.0 + 1e-7
    rho2 = (0.2 ** 2 + 0.1 ** 2)
    c2 = 2.0 ** 2 + 3.0 ** 2 + 1e-7  # the enclosing box is the target itself
    v = 4 / math.pi ** 2 * math.atan(2 / 3) ** 2
    alpha = v / (v - inter / union + 1 + 1e-7)
    assert got == pytest.approx(1 - (inter / union - (rho2 / c2 + v * alpha)), abs=1e-6)


def test_loss_with_underflowed_box_sizes_is_finite_and_trains() -> None:
    """Matched predictions whose w/h logits are so negative that (2 sigmoid)^2 * anchor is 0:
    the official loss is NaN there; ours is finite, and so is its gradient."""
    head = build_model("yolov5n", nc=3).head
    preds = [torch.zeros(1, 3, 8 // 2 ** i * 2, 8 // 2 ** i * 2, 8) for i in range(3)]
    for p in preds:
        p[..., 2:4] = -120.0  # sigmoid underflows to 0 in float32
    preds = [p.requires_grad_() for p in preds]
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.3], [0, 2, 0.3, 0.6, 0.05, 0.08]])
    loss, items = YOLOv5Loss(head.anchors, 3)(preds, targets)
    assert torch.isfinite(loss) and torch.isfinite(items).all() and items[0] > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in preds)
