"""The YOLOv5 loss with the official semantics (utils/loss.py, v7.0).

Target assignment: each target is paired with every anchor whose wh ratio is within
anchor_t, and placed in its own grid cell plus the two nearest neighbours (offset 0.5).
Box loss is 1 - CIoU, objectness is BCE against the detached, clamped CIoU at matched
cells (level balance 4.0 / 1.0 / 0.4), class loss is BCE with optional label smoothing;
fl_gamma > 0 wraps both BCEs in the focal modulation. CIoU is the official bbox_iou on
centre-size boxes (see ciou); torchvision's complete_box_iou_loss works on corners, whose
difference loses a collapsed box's size and returns NaN where the official stays finite.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F
from torch import nn

# hyp.scratch-low loss keys, label smoothing 0 (train.py's CLI default).
DEFAULT_LOSS_HYP: dict[str, float] = {
    "box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0,
    "anchor_t": 4.0, "fl_gamma": 0.0, "label_smoothing": 0.0,
}


def scale_loss_gains(hyp: Mapping[str, float], nc: int, imgsz: int, nl: int = 3) -> dict[str, float]:
    """Rescale the gains as the official train.py does before training.

    box *= 3/nl, cls *= nc/80 * 3/nl, obj *= (imgsz/640)^2 * 3/nl.
    """
    out = dict(hyp)
    out["box"] = hyp["box"] * 3 / nl
    out["cls"] = hyp["cls"] * nc / 80 * 3 / nl
    out["obj"] = hyp["obj"] * (imgsz / 640) ** 2 * 3 / nl
    return out


_MIN_SIDE = 1e-6  # grid cells: below it a box's aspect angle carries no gradient (see _aspect_angle)


def _aspect_angle(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """atan(w / h), the official CIoU's aspect term, defined for every w, h >= 0.

    Where both sides are at least _MIN_SIDE it is the official expression, gradient
    included. A collapsed side (a width or height that underflowed) makes w / h inf or
    0/0 and its gradient inf or NaN; there the angle takes its limit, atan2(w, h)
    (pi/2 for h = 0, 0 for an empty box), without a gradient: the IoU and centre-distance
    terms still pull such a box back.
    """
    live = (w >= _MIN_SIDE) & (h >= _MIN_SIDE)
    with torch.no_grad():
        limit = torch.atan2(w, h)
    ratio = torch.where(live, w, 0.0) / torch.where(live, h, 1.0)  # no inf/NaN even in the unused branch
    return torch.where(live, torch.atan(ratio), limit)


def ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of (n, 4) xywh box pairs, the official bbox_iou(xywh=True, CIoU=True).

    Finite for any non-negative sizes (see _aspect_angle); elsewhere equal to the official
    to float32 rounding.
    """
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
    w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
    b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
    b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    inter = ((torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0)
             * (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)
    ch = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    v = (4 / math.pi ** 2) * torch.pow(_aspect_angle(w2, h2) - _aspect_angle(w1, h1), 2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class _BCE(nn.Module):
    """BCE-with-logits with pos_weight, optionally focal-modulated (official FocalLoss)."""

    def __init__(self, pos_weight: float, gamma: float = 0.0, alpha: float = 0.25):
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pw = self.pos_weight.to(device=logits.device, dtype=logits.dtype)
        if self.gamma <= 0:
            return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
        p = logits.sigmoid()
        p_t = target * p + (1 - target) * (1 - p)
        alpha_t = target * self.alpha + (1 - target) * (1 - self.alpha)
        return (loss * alpha_t * (1.0 - p_t) ** self.gamma).mean()


@dataclass
class Assignment:
    """Matches of one level: image, anchor, cell (gj, gi), class, box target (cell units), anchor wh."""
    b: torch.Tensor
    a: torch.Tensor
    gj: torch.Tensor
    gi: torch.Tensor
    cls: torch.Tensor
    box: torch.Tensor
    anchor_wh: torch.Tensor


class YOLOv5Loss:
    """The official ComputeLoss, built from a head's anchors (stride units) and nc."""

    def __init__(self, anchors: torch.Tensor, nc: int, hyp: Mapping[str, float] | None = None):
        h = dict(DEFAULT_LOSS_HYP)
        if hyp:
            unknown = set(hyp) - set(DEFAULT_LOSS_HYP)
            if unknown:
                raise KeyError(f"unknown loss hyperparameters {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_HYP)}")
            h.update(hyp)
        self.hyp = h
        self.anchors = anchors.detach()
        self.nl, self.na = anchors.shape[:2]
        self.nc = nc
        self.balance = {3: [4.0, 1.0, 0.4]}.get(self.nl, [4.0, 1.0, 0.25, 0.06, 0.02])
        eps = h["label_smoothing"]
        self.cp, self.cn = 1.0 - 0.5 * eps, 0.5 * eps
        self.bce_cls = _BCE(h["cls_pw"], h["fl_gamma"])
        self.bce_obj = _BCE(h["obj_pw"], h["fl_gamma"])

    def __call__(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """preds: raw maps (B, na, ny, nx, 5+nc); targets: (n, 6) [img, cls, x, y, w, h] normalised.

        Returns (loss * batch size, detached [box, obj, cls]).
        """
        device = preds[0].device
        lbox = torch.zeros(1, device=device)
        lobj = torch.zeros(1, device=device)
        lcls = torch.zeros(1, device=device)
        for i, (p, m) in enumerate(zip(preds, self.assign(preds, targets))):
            tobj = torch.zeros(p.shape[:4], dtype=p.dtype, device=device)
            n = m.b.shape[0]
            if n:
                pxy, pwh, _, pcls = p[m.b, m.a, m.gj, m.gi].split((2, 2, 1, self.nc), 1)
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * m.anchor_wh
                iou = ciou(torch.cat((pxy, pwh), 1), m.box)
                lbox += (1.0 - iou).mean()
                tobj[m.b, m.a, m.gj, m.gi] = iou.detach().clamp(0).to(tobj.dtype)
                if self.nc > 1:
                    t = torch.full_like(pcls, self.cn)
                    t[range(n), m.cls] = self.cp
                    lcls += self.bce_cls(pcls, t)
            lobj += self.bce_obj(p[..., 4], tobj) * self.balance[i]
        lbox *= self.hyp["box"]
        lobj *= self.hyp["obj"]
        lcls *= self.hyp["cls"]
        bs = preds[0].shape[0]
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()

    @torch.no_grad()
    def assign(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> list[Assignment]:
        """Official build_targets: anchor-ratio filter, then own cell + 2 neighbour cells."""
        device = preds[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        na, nt = self.na, targets.shape[0]
        gain = torch.ones(7, device=device)
        ai = torch.arange(na, device=device).float().view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)  # (na, nt, 7)
        g = 0.5
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=device).float() * g
        out = []
        for i in range(self.nl):
            anchors = self.anchors[i].to(device)
            shape = preds[i].shape
            gain[2:6] = torch.tensor(shape, device=device)[[3, 2, 3, 2]].float()
            t = targets * gain
            if nt:
                r = t[..., 4:6] / anchors[:, None]
                keep = torch.max(r, 1 / r).max(2)[0] < self.hyp["anchor_t"]
                t = t[keep]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                j, k = ((gxy % 1 < g) & (gxy > 1)).T
                l, m = ((gxi % 1 < g) & (gxi > 1)).T
                sel = torch.stack((torch.ones_like(j), j, k, l, m))
                t = t.repeat((5, 1, 1))[sel]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[sel]
            else:
                t = targets[0]
                offsets = 0
            bc, gxy, gwh, a = t.chunk(4, 1)
            a, (b, c) = a.long().view(-1), bc.long().T
            gij = (gxy - offsets).long()
            # Clamp in place: the official code then uses the clamped cell for the box target.
            gij[:, 0].clamp_(0, shape[3] - 1)
            gij[:, 1].clamp_(0, shape[2] - 1)
            out.append(Assignment(b=b, a=a, gj=gij[:, 1], gi=gij[:, 0], cls=c,
                                  box=torch.cat((gxy - gij, gwh), 1), anchor_wh=anchors[a]))
        return out


def compute_loss(model: nn.Module, preds: Sequence[torch.Tensor], targets: torch.Tensor,
                 hyp: Mapping[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of raw train-mode predictions; gains are applied as given (see scale_loss_gains).

    For a training loop build a YOLOv5Loss once instead (same numbers, no per-call setup).
    """
    head = model.head
    return YOLOv5Loss(head.anchors, head.nc, hyp)(preds, targets)
