"""YOLOv5 v7.0 detection metrics: matching, AP per class, P/R at the best mean F1, fitness.

These are YOLOv5's own numbers (the P, R, mAP50 and mAP50-95 printed during training and
written to results.csv); COCO's numbers come from pycocotools in `coco.py`. The two
differ: YOLOv5 matches greedily by IoU (not by confidence), interpolates AP with the
trapezoid rule, and counts only classes present in the labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)  # mAP@0.5:0.95


def match_predictions(detections: torch.Tensor, labels: torch.Tensor,
                      iouv: torch.Tensor = IOU_THRESHOLDS) -> torch.Tensor:
    """Official `process_batch`: which detections are true positives at each IoU threshold.

    detections (n, 6) [x1, y1, x2, y2, conf, cls]; labels (m, 5) [cls, x1, y1, x2, y2], both in
    the same pixels. For each threshold, the (label, detection) pairs with IoU >= threshold
    and the same class are sorted by IoU descending; each detection keeps its first pair,
    then each label its first pair. Returns bool (n, len(iouv)).
    """
    correct = np.zeros((detections.shape[0], iouv.shape[0]), dtype=bool)
    if detections.shape[0] and labels.shape[0]:
        iou = box_iou(labels[:, 1:].float(), detections[:, :4].float())
        correct_class = labels[:, 0:1] == detections[:, 5]
        for i in range(len(iouv)):
            x = torch.where((iou >= iouv[i]) & correct_class)
            if x[0].shape[0]:
                matches = torch.cat((torch.stack(x, 1), iou[x[0], x[1]][:, None]), 1).cpu().numpy()
                if x[0].shape[0] > 1:
                    matches = matches[matches[:, 2].argsort()[::-1]]
                    matches = matches[np.unique(matches[:, 1], return_index=True)[1]]
                    matches = matches[np.unique(matches[:, 0], return_index=True)[1]]
                correct[matches[:, 1].astype(int), i] = True
    return torch.tensor(correct, dtype=torch.bool, device=detections.device)


@dataclass
class APResult:
    """Output of `ap_per_class`; per-class arrays are over `classes` (the label classes).

    p, r, f1: per-class precision/recall/F1 at the confidence of the best smoothed mean F1;
    ap: (nc, 10) AP per class at IoU 0.50:0.05:0.95; tp, fp: counts implied at that point.
    pr_curve: (nc, 101) the precision envelope at IoU 0.5 on the recall grid PR_RECALL, the
    curve whose trapezoid integral is ap50 (what YOLOv5 plots as PR_curve.png).
    """

    classes: np.ndarray
    p: np.ndarray
    r: np.ndarray
    f1: np.ndarray
    ap: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    conf: float  # the confidence at which p, r and f1 are read
    pr_curve: np.ndarray | None = None
    # (nc, 1000) P, R and F1 at each confidence of CONF_GRID (the official F1/P/R_curve.png)
    p_curve: np.ndarray | None = None
    r_curve: np.ndarray | None = None
    f1_curve: np.ndarray | None = None

    @property
    def ap50(self) -> np.ndarray:
        return self.ap[:, 0]

    @property
    def mp(self) -> float:
        return float(self.p.mean()) if len(self.p) else 0.0

    @property
    def mr(self) -> float:
        return float(self.r.mean()) if len(self.r) else 0.0

    @property
    def map50(self) -> float:
        return float(self.ap[:, 0].mean()) if len(self.ap) else 0.0

    @property
    def map(self) -> float:
        return float(self.ap.mean(1).mean()) if len(self.ap) else 0.0


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Official box filter of fraction f (odd width, edge-padded), used on the F1 curve."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


PR_RECALL = np.linspace(0, 1, 101)  # COCO's recall grid; AP is the trapezoid integral over it
CONF_GRID = np.linspace(0, 1, 1000)  # the official px: confidences at which P, R and F1 are read


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AP of one curve: sentinels, monotone precision envelope, 101-point trapezoid integral.

    Returns (ap, mpre, mrec) like the official function.
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    ap = np.trapezoid(np.interp(PR_RECALL, mrec, mpre), PR_RECALL)
    return float(ap), mpre, mrec


def ap_per_class(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray,
                 eps: float = 1e-16) -> APResult:
    """Official `ap_per_class`. tp (n, k) bool per detection and IoU threshold, conf (n,),
    pred_cls (n,), target_cls (m,) the class of every label. Only label classes count.
    """
    tp, conf = np.asarray(tp), np.asarray(conf)
    pred_cls, target_cls = np.asarray(pred_cls), np.asarray(target_cls)
    if tp.ndim == 1:
        tp = tp[:, None]
    i = np.argsort(-conf)
    tp, conf, pred_cls = tp[i], conf[i], pred_cls[i]

    unique_classes, nt = np.unique(target_cls, return_counts=True)
    nc = unique_classes.shape[0]
    px = CONF_GRID
    ap, p, r = np.zeros((nc, tp.shape[1])), np.zeros((nc, 1000)), np.zeros((nc, 1000))
    pr_curve = np.zeros((nc, len(PR_RECALL)))
    for ci, c in enumerate(unique_classes):
        i = pred_cls == c
        n_l = nt[ci]
        n_p = i.sum()
        if n_p == 0 or n_l == 0:
            continue
        fpc = (1 - tp[i]).cumsum(0)
        tpc = tp[i].cumsum(0)
        recall = tpc / (n_l + eps)
        r[ci] = np.interp(-px, -conf[i], recall[:, 0], left=0)  # xp must increase: negate
        precision = tpc / (tpc + fpc)
        p[ci] = np.interp(-px, -conf[i], precision[:, 0], left=1)
        for j in range(tp.shape[1]):
            ap[ci, j], mpre, mrec = compute_ap(recall[:, j], precision[:, j])
            if j == 0:
                pr_curve[ci] = np.interp(PR_RECALL, mrec, mpre)

    f1 = 2 * p * r / (p + r + eps)
    i = int(smooth(f1.mean(0), 0.1).argmax()) if nc else 0
    curves = dict(p_curve=p, r_curve=r, f1_curve=f1)
    p, r, f1 = p[:, i], r[:, i], f1[:, i]
    tp_n = (r * nt).round()
    fp_n = (tp_n / (p + eps) - tp_n).round()
    return APResult(classes=unique_classes.astype(int), p=p, r=r, f1=f1, ap=ap, tp=tp_n, fp=fp_n,
                    conf=float(px[i]), pr_curve=pr_curve, **curves)


def yolo_metrics(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray,
                 target_cls: np.ndarray, result: APResult | None = None) -> dict[str, float]:
    """val.py's summary: precision, recall, map50, map (all 0 when no detection is a TP).

    result: ap_per_class of the same arrays when the caller already has it.
    """
    tp = np.asarray(tp)
    if not (len(tp) and tp.any()):
        return {"precision": 0.0, "recall": 0.0, "map50": 0.0, "map": 0.0}
    res = result if result is not None else ap_per_class(tp, conf, pred_cls, target_cls)
    return {"precision": res.mp, "recall": res.mr, "map50": res.map50, "map": res.map}


def fitness(map50: float, map: float) -> float:  # noqa: A002 (official names)
    """Model selection score (best.pt, early stopping): 0.1 * mAP50 + 0.9 * mAP50-95."""
    return 0.1 * map50 + 0.9 * map
