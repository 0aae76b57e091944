"""Validation of a detector on a split: YOLOv5's own metrics, COCO stats and predictions.json.

Follows the official val.py: multi-label NMS at conf 0.001 / IoU 0.6 / 300 boxes, boxes
scaled back to the original image, YOLOv5 matching and ap_per_class for P, R, mAP50 and
mAP50-95, COCO-format detections, then COCOeval restricted to the evaluated images. Labels
come from the records themselves (original pixels, no normalise-and-rescale round trip).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data.records import DatasetSplit, ImageRecord
from ..data.augment import xywhn2xyxy
from .boxes import clip_boxes, scale_boxes
from .coco import coco_evaluate, records_to_coco_gt
from .metrics import IOU_THRESHOLDS, APResult, ap_per_class, match_predictions, yolo_metrics
from .nms import non_max_suppression

if TYPE_CHECKING:
    from ..plots import EvalPlots

Batch = tuple[torch.Tensor, torch.Tensor, Sequence[int], Sequence]


@dataclass
class EvalResult:
    """metrics: precision, recall, map50_yolo, map_yolo (YOLOv5's numbers) and the 12 COCO
    stats by name (-1 where COCO has no object of a size); predictions: COCO-format
    detections; losses: mean val loss items [box, obj, cls] if a loss_fn was given;
    per_class: ap_per_class's per-class AP, P, R and PR curves (with coco=True and labels)."""

    metrics: dict[str, float]
    predictions: list[dict]
    losses: torch.Tensor | None
    seconds: float
    per_class: APResult | None = None
    speed_ms: dict[str, float] | None = None  # per image: preprocess, inference, nms (val.py's three)
    n_images: int = 0
    image_ids: list[int] | None = None  # the images evaluated, in loader order


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _labels_xyxy(rec: ImageRecord, h0: int, w0: int) -> torch.Tensor:
    """The record's labels as (m, 5) [cls, x1, y1, x2, y2] in original pixels, clipped as
    the official scale_boxes clips its labels."""
    lab = np.asarray(rec.labels, dtype=np.float64).reshape(-1, 5)
    w, h = (rec.width or w0), (rec.height or h0)
    xyxy = clip_boxes(xywhn2xyxy(lab[:, 1:5], w, h), (h, w))
    return torch.from_numpy(np.concatenate((lab[:, :1], xyxy), 1)).float()


def _coco_json(det: torch.Tensor, image_id: int, category_ids: Sequence[int]) -> list[dict]:
    """Official save_one_json: top-left xywh rounded to 3 decimals, score to 5."""
    box = det[:, :4].clone()
    box[:, 2:] -= box[:, :2]
    return [{"image_id": image_id, "category_id": int(category_ids[int(c)]),
             "bbox": [round(x, 3) for x in b], "score": round(s, 5)}
            for b, s, c in zip(box.tolist(), det[:, 4].tolist(), det[:, 5].tolist())]


@torch.no_grad()
def evaluate(model: nn.Module | Callable, loader: Iterable[Batch], split: DatasetSplit, *,
             conf_thres: float = 0.001, iou_thres: float = 0.6, max_det: int = 300,
             device: str | torch.device | None = None, half: bool = False,
             loss_fn: Callable | None = None, coco_backend: str = "pycocotools",
             gt: str | dict | None = None, coco: bool = True, plots: "EvalPlots | None" = None,
             progress: str | None = None) -> EvalResult:
    """Evaluate `model` on the batches of `loader` over `split`.

    Batches are (imgs uint8 (B,3,H,W), targets (N,6) [img, cls, x, y, w, h] normalised to the
    input, record indices into split.records, shapes [((h0, w0), ((gain_h, gain_w),
    (padw, padh)))]). The model in eval mode must return (decoded (B, N, 5+nc), raw maps);
    loss_fn(raw maps, targets) -> (loss, items) gives the val losses. half runs an fp16
    copy of the model (never on the CPU, as the official). gt defaults to split.coco_json,
    else a COCO dict built from the records. The model's training mode is restored.
    coco=False skips the COCO-format predictions, COCOeval and per_class (metrics then hold
    only YOLOv5's four, predictions is empty): per-epoch validation needs only those, and
    on COCO val the COCO part costs as much as the forward passes. plots (yolo_core.plots.EvalPlots)
    is handed each batch and each image's detections and labels, for the pictures. progress:
    the name of a tqdm bar over the batches, shown on a terminal only.
    """
    t0 = time.perf_counter()
    device = torch.device(device) if device is not None else _model_device(model)
    half = half and device.type != "cpu"
    was_training = getattr(model, "training", False)
    net = model
    if isinstance(model, nn.Module):
        net = model.to(device)
        if half and next(model.parameters()).dtype != torch.float16:
            net = copy.deepcopy(model).half()  # never round the caller's (EMA) weights
        net.eval()
    clock = _Clock(device)
    try:
        stats, predictions, image_ids, losses, n_batches = [], [], [], None, 0
        total = len(loader) if hasattr(loader, "__len__") else None
        bar = tqdm(loader, desc=progress, total=total, unit="batch", disable=None if progress else True, leave=False)
        for imgs, targets, indices, shapes in bar:
            t = clock()
            imgs_u8 = imgs
            imgs = imgs.to(device, non_blocking=True)
            imgs = (imgs.half() if half else imgs.float()) / 255
            height, width = imgs.shape[2:]
            t = clock.lap("preprocess", t)
            preds, raw = net(imgs)
            t = clock.lap("inference", t)
            n_batches += 1
            if loss_fn is not None:
                items = loss_fn(raw, targets.to(device))[1].detach().float()
                losses = items if losses is None else losses + items
            t = clock()
            dets = non_max_suppression(preds, conf_thres, iou_thres, multi_label=True, max_det=max_det)
            clock.lap("nms", t)
            if plots is not None:
                plots.batch(imgs_u8[:len(indices)], targets, dets[:len(indices)])
            for det, index, shape in zip(dets, indices, shapes):
                rec = split.records[int(index)]
                (h0, w0), ratio_pad = shape
                labels = _labels_xyxy(rec, h0, w0).to(det.device)
                predn = det.clone()
                scale_boxes((height, width), predn[:, :4], (h0, w0), ratio_pad)
                correct = match_predictions(predn, labels, IOU_THRESHOLDS.to(det.device))
                if plots is not None:
                    plots.image(predn, labels)
                stats.append((correct.cpu(), det[:, 4].cpu(), det[:, 5].cpu(), labels[:, 0].cpu()))
                if coco:
                    predictions += _coco_json(predn.cpu(), int(rec.image_id), split.category_ids)
                image_ids.append(int(rec.image_id))
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)

    tp, conf, pred_cls, target_cls = (torch.cat(x).numpy() for x in zip(*stats)) if stats else \
        (np.zeros((0, 10), bool), np.zeros(0), np.zeros(0), np.zeros(0))
    per_class = ap_per_class(tp, conf, pred_cls, target_cls) if coco and len(target_cls) else None
    y = yolo_metrics(tp, conf, pred_cls, target_cls, per_class)
    metrics = {"precision": y["precision"], "recall": y["recall"], "map50_yolo": y["map50"], "map_yolo": y["map"]}
    if coco:
        own_gt = gt is None and not split.coco_json  # built here: no one else holds it, no copy needed
        if gt is None:
            gt = split.coco_json if split.coco_json else records_to_coco_gt(split)
        metrics.update(coco_evaluate(gt, predictions, img_ids=image_ids, backend=coco_backend, copy_gt=not own_gt))
    return EvalResult(metrics=metrics, predictions=predictions,
                      losses=None if losses is None else (losses / max(n_batches, 1)).cpu(),
                      seconds=time.perf_counter() - t0, per_class=per_class,
                      speed_ms={k: 1e3 * v / max(len(image_ids), 1) for k, v in clock.totals.items()},
                      n_images=len(image_ids), image_ids=image_ids)


class _Clock:
    """Seconds per phase, as val.py's dt: on CUDA synchronised first, so a phase's kernels
    are counted in it and not in the next."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals = {"preprocess": 0.0, "inference": 0.0, "nms": 0.0}

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, phase: str, since: float) -> float:
        now = self()
        self.totals[phase] += now - since
        return now
