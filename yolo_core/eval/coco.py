"""COCO bbox evaluation (pycocotools or faster-coco-eval) and ground truth from records.

The COCO numbers are the ones the study reports (summary.json): the official YOLOv5 also
replaces its own mAP with pycocotools' stats[0]/stats[1] when a COCO json is available.
faster-coco-eval gives the same 12 numbers several times faster on large sets.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..data.records import DatasetSplit

log = logging.getLogger(__name__)

COCO_STAT_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
                   "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")
BACKENDS = ("pycocotools", "faster_coco_eval")


def _image_size(record) -> tuple[int, int]:
    """(width, height) from the record, or from the image header when the source lacked it."""
    if record.width and record.height:
        return int(record.width), int(record.height)
    from PIL import Image

    with Image.open(record.path) as im:
        return im.size


def records_to_coco_gt(split: DatasetSplit) -> dict[str, Any]:
    """A COCO ground-truth dict for a split whose source has no json (YOLO-txt, synthetic).

    Boxes are the labels in original pixels [x_min, y_min, w, h]; area = w * h (COCO's
    small/medium/large split uses it), iscrowd 0; category ids are split.category_ids.
    """
    images, annotations = [], []
    for rec in split.records:
        w, h = _image_size(rec)
        images.append({"id": int(rec.image_id), "file_name": Path(rec.path).name, "width": w, "height": h})
        for cls, xc, yc, bw, bh in np.asarray(rec.labels, dtype=np.float64).reshape(-1, 5):
            box = [(xc - bw / 2) * w, (yc - bh / 2) * h, bw * w, bh * h]
            annotations.append({"id": len(annotations) + 1, "image_id": int(rec.image_id),
                                "category_id": int(split.category_ids[int(cls)]),
                                "bbox": [float(v) for v in box], "area": float(box[2] * box[3]),
                                "iscrowd": 0})
    categories = [{"id": int(cid), "name": str(name)} for cid, name in zip(split.category_ids, split.names)]
    return {"images": images, "annotations": annotations, "categories": categories}


#: What an annotation keeps in a run's eval_gt.json.gz: all COCOeval('bbox') reads.
_GT_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "ignore")


def evaluated_ground_truth(gt: str | Path | dict, img_ids: list[int]) -> dict[str, Any]:
    """The part of a COCO ground truth an evaluation used: its images (img_ids), their
    annotations with the keys COCOeval('bbox') reads, and every category. A run keeps it
    beside predictions.json, so its COCO numbers can be recomputed per image from the
    run directory alone (analysis/image_eval.py)."""
    gt = _load_gt(gt, copy_gt=False)
    keep = {int(i) for i in img_ids}
    images = [{k: im[k] for k in ("id", "width", "height", "file_name") if k in im}
              for im in gt.get("images", []) if int(im["id"]) in keep]
    anns = [{k: a[k] for k in _GT_KEYS if k in a} for a in gt.get("annotations", []) if int(a["image_id"]) in keep]
    cats = [{k: c[k] for k in ("id", "name") if k in c} for c in gt.get("categories", [])]
    return {"images": images, "annotations": anns, "categories": cats}


def _load_gt(gt: str | Path | dict, copy_gt: bool = True) -> dict:
    """The gt as a dict the evaluation may modify (COCOeval adds keys to the annotations);
    copy_gt=False hands over a dict nobody else holds (0.5 s saved per 100k boxes)."""
    if not isinstance(gt, dict):
        with open(gt) as f:
            return json.load(f)
    if not copy_gt:
        return gt
    return {**gt, "annotations": [dict(a) for a in gt.get("annotations", [])]}


def _empty_result(coco_cls, gt_api):
    """A result set with no detections (pycocotools' loadRes cannot take an empty list)."""
    res = coco_cls()
    res.dataset = {"images": list(gt_api.dataset["images"]), "categories": copy.deepcopy(gt_api.dataset["categories"]),
                   "annotations": []}
    res.createIndex()
    return res


def coco_evaluate(gt: str | Path | dict, detections: list[dict], img_ids: list[int] | None = None,
                  backend: str = "pycocotools", copy_gt: bool = True) -> dict[str, float]:
    """COCOeval('bbox') of `detections` (COCO result dicts) against `gt` (json path or dict).

    img_ids restricts the evaluation (e.g. to the images actually evaluated); None means
    every image of the ground truth. Returns the 12 summary stats by COCO_STAT_NAMES; a
    stat is -1 when the ground truth has no object in its size range (callers write null).
    No detections evaluate to 0 rather than failing. The libraries' printing goes to the
    logger at debug level. The caller's gt dict and detections are left as they were
    (copy_gt=False: the gt dict is the evaluator's own and may be changed).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown COCO backend {backend!r}; choose one of {BACKENDS}")
    gt_dict = _load_gt(gt, copy_gt)
    dets = [dict(d) for d in detections]  # loadRes adds keys in place
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            gt_api = COCO()
            gt_api.dataset = gt_dict
            gt_api.createIndex()
            dt_api = gt_api.loadRes(dets) if dets else _empty_result(COCO, gt_api)
            ev = COCOeval(gt_api, dt_api, "bbox")
        else:
            from faster_coco_eval import COCO, COCOeval_faster

            quiet = log.debug
            gt_api = COCO(gt_dict, print_function=quiet)
            dt_api = gt_api.loadRes(dets)  # takes an empty list
            ev = COCOeval_faster(gt_api, dt_api, "bbox", print_function=quiet)
        if img_ids is not None:
            ev.params.imgIds = sorted({int(i) for i in img_ids})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if buf.getvalue():
        log.debug("%s output:\n%s", backend, buf.getvalue())
    stats = [float(s) for s in ev.stats[:len(COCO_STAT_NAMES)]]
    return dict(zip(COCO_STAT_NAMES, stats))
