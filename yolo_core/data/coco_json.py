"""COCO-json sources: an image directory plus an instances-style annotation file.

The json is the authority: its categories (ordered by id) are the classes, its image ids
and sizes are the records' ids and sizes, its pixel boxes become normalised labels.
Structural faults (duplicate ids, annotations that point nowhere) mean the file is not
what the user thinks it is, so they raise; a file on disk that is missing or broken only
skips that image. Crowd annotations (iscrowd=1) are not training labels (YOLOv5's COCO
labels leave them out too); COCOeval still uses them from the json as ignore regions.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from .image_check import CorruptImage, check_image, scan_map
from .records import DatasetSplit, ImageRecord
from .skips import SkipLog
from .yolo_txt import dedupe_rows

LOGGER = logging.getLogger(__name__)


def read_coco_json(path: str | Path) -> dict:
    """Load and structurally check an instances json (images, annotations, categories)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid json ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a COCO json must be an object with images/annotations/categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing or non-list {key!r} (not a COCO instances json?)")
    if not isinstance(data.get("annotations", []), list):
        raise ValueError(f"{path}: 'annotations' must be a list")
    return data


def coco_categories(data: dict, path: str | Path) -> tuple[list[str], list[int]]:
    """(names, category ids) ordered by id; the contiguous class is the position."""
    cats: dict[int, str] = {}
    for c in data["categories"]:
        cid = int(c["id"])
        if cid in cats:
            raise ValueError(f"{path}: duplicate category id {cid}")
        cats[cid] = str(c["name"])
    if not cats:
        raise ValueError(f"{path}: no categories")
    ids = sorted(cats)
    return [cats[i] for i in ids], ids


def load_coco_split(name: str, json_path: str | Path, image_dir: str | Path, *, source: str,
                    workers: int = 8, data: dict | None = None) -> DatasetSplit:
    """Parse one split: check each listed image on disk, convert its annotations to labels.

    data: the already-read json (read_coco_json(json_path)), to avoid reading it twice.
    """
    json_path = Path(json_path)
    data = read_coco_json(json_path) if data is None else data
    names, cat_ids = coco_categories(data, json_path)
    cls_of = {cid: i for i, cid in enumerate(cat_ids)}

    images: dict[int, dict] = {}
    for im in data["images"]:
        iid = int(im["id"])
        if iid in images:
            raise ValueError(f"{json_path}: duplicate image id {iid}")
        images[iid] = im

    boxes: dict[int, list[list[float]]] = {iid: [] for iid in images}
    skips = SkipLog(name, source)
    for ann in data.get("annotations", []):
        iid, cid = int(ann["image_id"]), int(ann["category_id"])
        if iid not in images:
            raise ValueError(f"{json_path}: annotation {ann.get('id')} refers to unknown image_id {iid}")
        if cid not in cls_of:
            raise ValueError(f"{json_path}: annotation {ann.get('id')} refers to unknown category_id {cid}")
        if ann.get("iscrowd", 0):
            skips.add("crowd_annotation", f"{json_path}", f"annotation {ann.get('id')}")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
            raise ValueError(f"{json_path}: annotation {ann.get('id')} has bbox {bbox!r}; expected [x, y, w, h]")
        boxes[iid].append([cls_of[cid], *map(float, bbox)])

    image_dir = Path(image_dir)
    order = list(images)
    paths = [_image_path(image_dir, images[i]) for i in order]
    records = []
    for iid, path, res in zip(order, paths, scan_map(_check, paths, workers)):
        im = images[iid]
        if isinstance(res, tuple) and res[0] == "skip":
            skips.add(res[1], path, res[2])
            continue
        fw, fh = res
        w, h = int(im.get("width") or fw), int(im.get("height") or fh)
        if (w, h) not in ((fw, fh), (fh, fw)):
            skips.add("size_mismatch", path, f"json says {w}x{h}, file is {fw}x{fh}")
            continue
        labels = _normalise(boxes[iid], w, h, skips, json_path, iid)
        labels, n_dup = dedupe_rows(labels)
        if n_dup:
            skips.add("duplicate_label", path, f"{n_dup} duplicate annotations removed", n=n_dup)
        records.append(ImageRecord(path=path, image_id=iid, labels=labels, width=w, height=h))
    skips.emit(LOGGER)
    if not records:
        why = f" (all {len(order)} skipped: {skips.counts})" if order else " (the json lists no images)"
        raise ValueError(f"{source}: split {name!r} ({json_path}) has no usable images{why}")
    return DatasetSplit(name=name, records=records, names=names, category_ids=cat_ids,
                        coco_json=str(json_path), skipped=dict(skips.counts))


def _image_path(image_dir: Path, im: dict) -> str:
    fn = str(im.get("file_name", ""))
    return fn if os.path.isabs(fn) else str(image_dir / fn)


def _check(path: str) -> tuple:
    try:
        return check_image(path)
    except FileNotFoundError:
        return ("skip", "missing_image", "listed in the json but not on disk")
    except CorruptImage as e:
        return ("skip", "corrupt_image", str(e))


def _normalise(rows: list[list[float]], w: int, h: int, skips: SkipLog, json_path: Path, iid: int) -> np.ndarray:
    """Pixel [x, y, w, h] (top-left) -> normalised centre xywh, clipped to the image."""
    if not rows:
        return np.zeros((0, 5), np.float32)
    a = np.asarray(rows, np.float64)
    x1 = np.clip(a[:, 1], 0, w)
    y1 = np.clip(a[:, 2], 0, h)
    x2 = np.clip(a[:, 1] + a[:, 3], 0, w)
    y2 = np.clip(a[:, 2] + a[:, 4], 0, h)
    ok = (x2 > x1) & (y2 > y1)
    if not ok.all():
        skips.add("bad_box", str(json_path), f"image {iid}: {int((~ok).sum())} boxes of zero size",
                  n=int((~ok).sum()))
    out = np.stack([a[:, 0], (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], 1)
    return out[ok].astype(np.float32)
