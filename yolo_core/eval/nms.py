"""YOLOv5 v7.0 non-maximum suppression, batched and without the time limit.

Same results as the official `non_max_suppression` (candidates need obj > conf, score =
obj * cls, multi-label gives one box per class above conf, class-aware NMS through the
official class offset of 7680 px, at most `max_nms` boxes per image into NMS by score, at
most `max_det` out), but:

- no time limit: the official loop silently stops after 0.5 + 0.05 * bs seconds, which on
  a slow CPU drops whole images from validation and biases the metrics;
- the candidate selection runs on the whole batch at once, and NMS runs on small buckets
  of whole classes. torchvision's CPU NMS costs (kept x boxes), so one call over 30,000
  boxes of 80 classes does ~80x the IoU work of NMS per class; packing classes into
  buckets of a few hundred boxes keeps that work small without one Python call per class.
  Each bucket holds boxes of one image and is offset exactly as the official code offsets
  them, so every IoU the kernel computes is bit-identical to the official one.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision

MAX_WH = 7680  # official class offset (px): boxes of different classes never overlap
# Candidate scores materialised at once (elements); bounds memory when an untrained
# model puts every anchor of a batch above conf_thres.
_CHUNK_ELEMENTS = 1 << 22
# Boxes per NMS call on the CPU; on accelerators one call per image (their kernel is
# parallel, and each call synchronises).
_CPU_BUCKET = 512


def non_max_suppression(prediction: torch.Tensor | Sequence[torch.Tensor], conf_thres: float = 0.25,
                        iou_thres: float = 0.45, classes: Sequence[int] | None = None,
                        agnostic: bool = False, multi_label: bool = False, max_det: int = 300,
                        max_nms: int = 30000) -> list[torch.Tensor]:
    """Filter decoded predictions (B, N, 5+nc) [x, y, w, h, obj, cls...] to per-image
    detections: a list of B float32 tensors (n, 6) [x1, y1, x2, y2, conf, cls], sorted by
    conf descending, n <= max_det.

    `prediction` may also be the eval-mode model output (decoded, raw); its first item is used.
    """
    assert 0 <= conf_thres <= 1, f"invalid conf_thres {conf_thres}"
    assert 0 <= iou_thres <= 1, f"invalid iou_thres {iou_thres}"
    if isinstance(prediction, (list, tuple)):
        prediction = prediction[0]
    bs, _, no = prediction.shape
    nc = no - 5
    multi_label = multi_label and nc > 1
    device = prediction.device
    cls_filter = None if classes is None else torch.as_tensor(list(classes), device=device)
    xc = prediction[..., 4] > conf_thres  # candidates need obj > conf
    if not bool(xc.any()):
        return [torch.zeros((0, 6), device=device) for _ in range(bs)]

    parts = [_candidates(prediction[a:b], xc[a:b], a, conf_thres, multi_label, cls_filter, max_nms)
             for a, b in _image_chunks(xc, nc)]
    img, box, conf, cls = (torch.cat(t) for t in zip(*parts))

    keep = _bucketed_nms(img, box, conf, cls, nc, iou_thres, agnostic)
    img, box, conf, cls = img[keep], box[keep], conf[keep], cls[keep]

    # Per image: by score descending, at most max_det (the official keeps NMS's order).
    order = conf.argsort(descending=True, stable=True)
    order = order[img[order].argsort(stable=True)]
    img = img[order]
    counts = torch.bincount(img, minlength=bs)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(len(img), device=device) - starts[img]
    order = order[rank < max_det]
    out = torch.cat((box[order], conf[order, None], cls[order, None].float()), 1)
    return list(out.split(counts.clamp(max=max_det).tolist()))


def _image_chunks(xc: torch.Tensor, nc: int) -> list[tuple[int, int]]:
    """Split the batch into runs of images whose candidate score matrices fit in memory."""
    bs, n = xc.shape
    if bs * n * nc <= _CHUNK_ELEMENTS:
        return [(0, bs)]
    sizes = (xc.sum(1) * nc).tolist()
    chunks, start, total = [], 0, 0
    for i, s in enumerate(sizes):
        if total and total + s > _CHUNK_ELEMENTS:
            chunks.append((start, i))
            start, total = i, 0
        total += s
    chunks.append((start, bs))
    return chunks


def _candidates(pred: torch.Tensor, xc: torch.Tensor, img0: int, conf_thres: float, multi_label: bool,
                cls_filter: torch.Tensor | None, max_nms: int):
    """(image index, xyxy box, score, class) of every candidate of a run of images, with at
    most max_nms per image (the highest scores, as the official sort-and-truncate).

    Anchors are first screened by obj, then (when most pass, as with an untrained model) by
    obj * max(cls), the anchor's largest score exactly (rounding is monotone): the full
    (anchor, class) product is only formed for anchors that have a candidate.
    When an untrained model makes all ~2M (anchor, class) scores of an image candidates,
    the cap is a top-k over that image's dense score rows, never a list of all of them.
    """
    nc = pred.shape[2] - 5
    row = xc
    if int(row.sum()) * 4 > row.numel():  # most anchors pass obj: screen by their best score
        row = row & (pred[..., 4] * pred[..., 5:].amax(2) > conf_thres)
    bi, ai = row.nonzero(as_tuple=True)
    x = pred[bi, ai]
    scores = x[:, 5:] * x[:, 4:5]  # in the prediction's dtype, as the official in-place product
    if multi_label:
        mask = scores > conf_thres
        if cls_filter is not None:
            allowed = torch.zeros(nc, dtype=torch.bool, device=pred.device)
            allowed[cls_filter[(cls_filter >= 0) & (cls_filter < nc)]] = True
            mask &= allowed
    else:
        scores, best = scores.max(1, keepdim=True)
        mask = scores > conf_thres
        if cls_filter is not None:
            mask &= (best == cls_filter).any(1, keepdim=True)

    per_image = torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
    per_image.index_add_(0, bi, mask.sum(1))
    over = (per_image > max_nms).nonzero(as_tuple=True)[0].tolist()
    if over:
        rows_per_image = torch.bincount(bi, minlength=pred.shape[0])
        ends = rows_per_image.cumsum(0).tolist()
        starts = [e - n for e, n in zip(ends, rows_per_image.tolist())]
        width = scores.shape[1]
        tops = []
        for k in over:
            s, e = starts[k], ends[k]
            top = scores[s:e].masked_fill(~mask[s:e], -1).flatten().topk(max_nms, sorted=False).indices
            tops.append(top + s * width)
            mask[s:e] = False
        r, c = mask.nonzero(as_tuple=True)
        flat = torch.cat([r * width + c] + tops)
        r, c = flat // width, flat % width
    else:
        r, c = mask.nonzero(as_tuple=True)
    conf = scores[r, c]
    cls = c if multi_label else best[r, 0]
    xywh = x[r, :4]
    box = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
    return bi[r] + img0, box.float(), conf.float(), cls


def _bucketed_nms(img: torch.Tensor, box: torch.Tensor, conf: torch.Tensor, cls: torch.Tensor,
                  nc: int, iou_thres: float, agnostic: bool) -> torch.Tensor:
    """Indices kept by class-aware NMS within each image (class-agnostic if `agnostic`)."""
    if len(img) == 0:
        return torch.zeros(0, dtype=torch.long, device=img.device)
    offset = torch.zeros_like(conf) if agnostic else cls.float() * MAX_WH
    boxes = box + offset[:, None]  # the official offset, bit for bit
    key = img if agnostic else img * nc + cls
    order = key.argsort()
    key, boxes, conf = key[order], boxes[order], conf[order]
    _, sizes = torch.unique_consecutive(key, return_counts=True)
    group_img = (img[order][sizes.cumsum(0) - 1]).tolist()
    cap = _CPU_BUCKET if img.device.type == "cpu" else 1 << 62

    bounds, start, end, prev = [], 0, 0, None
    for s, g in zip(sizes.tolist(), group_img):
        if end > start and (g != prev or end - start + s > cap):
            bounds.append((start, end))
            start = end
        end += s
        prev = g
    bounds.append((start, end))

    keep = [torchvision.ops.nms(boxes[a:b], conf[a:b], iou_thres) + a for a, b in bounds]
    return order[torch.cat(keep)]
