"""Scene density and crowding: the two views of "densely packed objects" the report gives.

Density is a property of an image: how many objects it holds. AP within a density bin is
COCO's AP over the images of that bin only (0/1 image weights, analysis/image_eval.py).

Crowding is a property of an object: its largest IoU with another ground-truth box of the
same image (any category; crowd regions aside). AP within a crowding bin is evaluated as
COCO evaluates an area range: the objects outside the bin are ignored, and so is an
unmatched detection whose own value is outside it. A detection's value is the crowding
of the object it overlaps most (any category); a detection that overlaps no object by
IoU 0.1 or more (TIDE's background threshold) is a false positive of every bin, as
background errors are not the property of any crowding level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from analysis.image_eval import ImageEval, coco_eval, from_cocoeval

#: Lower edges of the density bins (objects per image): 1, 2-5, 6-10, 11-20, >20.
DENSITY_EDGES: tuple[int, ...] = (1, 2, 6, 11, 21)
#: Lower edges of the crowding bins (largest IoU with another object): 0-0.1, 0.1-0.3, >0.3.
CROWDING_EDGES: tuple[float, ...] = (0.0, 0.1, 0.3)
#: A detection overlapping no object by this IoU is background (TIDE's t_b).
BACKGROUND_IOU = 0.1


@dataclass
class Bin:
    """One bin: its label, the images (density) it holds, and its object count."""

    label: str
    mask: np.ndarray | None  # (I,) 0/1 over ImageEval.img_ids; None for a crowding bin (an area range)
    n_images: int
    n_objects: int


def density_labels(edges: Sequence[int] = DENSITY_EDGES) -> list[str]:
    """'1', '2-5', '6-10', '11-20', '>20' for the default edges."""
    out = [f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]
    return [*out, f">{edges[-1] - 1}"]


def crowding_labels(edges: Sequence[float] = CROWDING_EDGES) -> list[str]:
    """'0-0.1', '0.1-0.3', '>0.3' for the default edges (each bin is [lo, hi))."""
    return [*(f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:])), f">={edges[-1]:g}"]


def objects_per_image(gt: dict, img_ids: np.ndarray) -> np.ndarray:
    """Non-crowd ground-truth boxes of each image, in img_ids order."""
    pos = {int(i): k for k, i in enumerate(img_ids)}
    counts = np.zeros(len(img_ids), dtype=np.int64)
    for a in gt.get("annotations", []):
        k = pos.get(int(a["image_id"]))
        if k is not None and not a.get("iscrowd", 0) and not a.get("ignore", 0):
            counts[k] += 1
    return counts


def density_bins(gt: dict, img_ids: np.ndarray, edges: Sequence[int] = DENSITY_EDGES) -> list[Bin]:
    """Images binned by their object count; images without objects are in no bin (AP is
    undefined there; their false positives still count in the overall AP)."""
    if list(edges) != sorted(edges) or not edges or edges[0] < 1:
        raise ValueError(f"density bin edges must be increasing and start at 1 or more, got {list(edges)}")
    counts = objects_per_image(gt, img_ids)
    bins = []
    for label, lo, hi in zip(density_labels(edges), edges, [*edges[1:], np.inf]):
        mask = ((counts >= lo) & (counts < hi)).astype(np.int64)
        bins.append(Bin(label, mask, int(mask.sum()), int(counts[mask > 0].sum())))
    return bins


def _by_image(items: Sequence[dict]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, a in enumerate(items):
        out.setdefault(int(a["image_id"]), []).append(k)
    return out


def crowding_values(gt: dict, detections: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per annotation: largest IoU with another non-crowd box of its image; per detection:
    the value of the object it overlaps most; per detection: True when it overlaps no
    object by BACKGROUND_IOU)."""
    from pycocotools import mask as mask_utils

    anns = gt.get("annotations", [])
    solid = [not a.get("iscrowd", 0) for a in anns]
    gt_value = np.zeros(len(anns))
    by_img = _by_image(anns)
    for idx in by_img.values():
        real = [k for k in idx if solid[k]]
        if len(real) < 2:
            continue
        boxes = [anns[k]["bbox"] for k in real]
        iou = np.asarray(mask_utils.iou(boxes, boxes, [0] * len(boxes)))
        np.fill_diagonal(iou, 0.0)
        gt_value[real] = iou.max(1)
    dt_value = np.zeros(len(detections))
    background = np.ones(len(detections), dtype=bool)
    for img, idx in _by_image(detections).items():
        real = [k for k in by_img.get(img, []) if solid[k]]
        if not real:
            continue
        iou = np.asarray(mask_utils.iou([detections[k]["bbox"] for k in idx], [anns[k]["bbox"] for k in real],
                                        [0] * len(real)))
        best = iou.argmax(1)
        dt_value[idx] = gt_value[np.asarray(real)[best]]
        background[idx] = iou.max(1) < BACKGROUND_IOU
    return gt_value, dt_value, background


def crowding_eval(gt: dict, detections: Sequence[dict], img_ids: Sequence[int],
                  edges: Sequence[float] = CROWDING_EDGES) -> tuple[ImageEval, list[Bin]]:
    """The per-image evaluation with the crowding bins as COCO area ranges ('all' first)."""
    if list(edges) != sorted(edges) or not edges or edges[0] != 0:
        raise ValueError(f"crowding bin edges must be increasing and start at 0, got {list(edges)}")
    gt_value, dt_value, background = crowding_values(gt, detections)
    crowd_gt = {**gt, "annotations": [{**a, "area": float(v)} for a, v in zip(gt.get("annotations", []), gt_value)]}
    dets = [{**d, "area": float(v)} for d, v in zip(detections, dt_value)]
    his = [np.nextafter(e, -np.inf) for e in edges[1:]] + [1.0]
    labels = crowding_labels(edges)
    ev = coco_eval(crowd_gt, dets, img_ids, area_rng=[[0.0, 1.0], *zip(edges, his)], area_labels=["all", *labels])
    bg_ids = {k + 1 for k in np.flatnonzero(background)}  # loadRes numbers detections from 1 in order
    image_eval = from_cocoeval(ev, background=bg_ids)
    solid = np.array([not a.get("iscrowd", 0) for a in gt.get("annotations", [])], dtype=bool)
    keep = {int(i) for i in img_ids}
    in_set = np.array([int(a["image_id"]) in keep for a in gt.get("annotations", [])], dtype=bool)
    bins = []
    for label, lo, hi in zip(labels, edges, his):
        sel = solid & in_set & (gt_value >= lo) & (gt_value <= hi)
        bins.append(Bin(label, None, len(keep), int(sel.sum())))
    return image_eval, bins
