"""COCO-json sources: an image directory plus an instances-style annotation file.

The json is the authority: its categories (ordered by id) are the classes, its image ids
and sizes are the records' ids and sizes, its pixel boxes become normalised labels.
Structural faults (duplicate image or annotation ids, annotations that point nowhere, a
bbox that is not four finite numbers, no annotations at all) mean the file is not what
the user thinks it is, so they raise, naming the file; a file on disk that is missing or
broken only skips that image. Crowd annotations (iscrowd=1) are not training labels
(YOLOv5's COCO labels leave them out too); COCOeval still uses them from the json as
ignore regions.

Duplicate annotation ids (what concatenating two jsons gives) are refused rather than
renumbered: pycocotools indexes annotations by id, so COCOeval reading the user's file
scores against the wrong boxes (mAP50 0.033 -> 0.003 in a user's run with the same
detections). Renumbering a private copy would make this project's number disagree with
every other tool reading the same file, and would hide a merge that may also have
duplicated the annotations themselves; the fix belongs in the file (the error says how).
"""
from __future__ import annotations

import json
import logging
import math
import os
from functools import partial
from pathlib import Path

import numpy as np

from .image_check import DEFAULT_MAX_IMAGE_PIXELS, CorruptImage, check_image, scan_map, verify_pixels
from .records import DatasetSplit, ImageRecord, no_labels_error
from .skips import SkipLog
from .yolo_txt import dedupe_rows

LOGGER = logging.getLogger(__name__)
CLIP_TOLERANCE_PX = 1e-3  # overshoot below this is float noise of the json, not a fix worth counting


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


def check_annotation_ids(data: dict, path: str | Path) -> None:
    """Every annotation has an integer id, and no id occurs twice (see the module docstring)."""
    seen: set[int] = set()
    dups: list[int] = []
    n_dup = 0
    for k, ann in enumerate(data.get("annotations") or []):
        aid = ann.get("id") if isinstance(ann, dict) else None
        if isinstance(aid, bool) or not isinstance(aid, int):
            raise ValueError(f"{path}: annotation #{k} (0-based) has id {aid!r}; pycocotools needs a unique "
                             f"integer 'id' in every annotation")
        if aid in seen:
            n_dup += 1
            if len(dups) < 10:
                dups.append(aid)
        seen.add(aid)
    if n_dup:
        raise ValueError(
            f"{path}: {n_dup} annotations reuse an id already taken (e.g. ids {dups}); pycocotools indexes "
            f"annotations by id, so COCOeval would score against the wrong boxes (a merge of two jsons does "
            f"this). Renumber them, e.g.: python -c \"import json,sys; d=json.load(open(sys.argv[1])); "
            f"[a.update(id=i) for i, a in enumerate(d['annotations'], 1)]; json.dump(d, open(sys.argv[2], 'w'))\" "
            f"{path} fixed.json, and point the dataset at fixed.json")


def check_image_ids(data: dict, path: str | Path) -> dict[int, dict]:
    """{image id: image entry}; an entry without an integer id, or an id seen twice, raises."""
    images: dict[int, dict] = {}
    for k, im in enumerate(data["images"]):
        iid = im.get("id") if isinstance(im, dict) else None
        if isinstance(iid, bool) or not isinstance(iid, int):
            raise ValueError(f"{path}: image #{k} (0-based) has id {iid!r}; expected an integer 'id'")
        if iid in images:
            raise ValueError(f"{path}: duplicate image id {iid}")
        images[iid] = im
    return images


def check_gt_json(path: str | Path) -> None:
    """Structural checks of a ground-truth json that only evaluation reads (YOLOv5's COCO
    layout: annotations/instances_val2017.json beside YOLO-txt labels)."""
    data = read_coco_json(path)
    check_image_ids(data, path)
    check_annotation_ids(data, path)


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
                    workers: int = 8, data: dict | None = None,
                    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, decode: bool = False) -> DatasetSplit:
    """Parse one split: check each listed image on disk, convert its annotations to labels.

    data: the already-read json (read_coco_json(json_path)), to avoid reading it twice.
    max_pixels and decode: see image_check.py (decode=True for the val split).
    """
    json_path = Path(json_path)
    data = read_coco_json(json_path) if data is None else data
    names, cat_ids = coco_categories(data, json_path)
    cls_of = {cid: i for i, cid in enumerate(cat_ids)}

    images = check_image_ids(data, json_path)
    check_annotation_ids(data, json_path)

    boxes: dict[int, list[list[float]]] = {iid: [] for iid in images}
    skips = SkipLog(name, source)
    annotations = data.get("annotations")
    for ann in annotations or []:
        parsed = _parse_annotation(ann, json_path, images, cls_of)
        if parsed is None:
            skips.add("crowd_annotation", f"{json_path}", f"annotation {ann.get('id')}")
            continue
        iid, row = parsed
        boxes[iid].append(row)

    image_dir = Path(image_dir)
    order = list(images)
    paths = [_image_path(image_dir, images[i]) for i in order]
    records = []
    for iid, path, res in zip(order, paths, scan_map(partial(_check, max_pixels=max_pixels, decode=decode), paths, workers,
                                                   desc=f"checking {name} images")):
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
    if not any(len(r.labels) for r in records):
        if annotations is None:
            why = "has no 'annotations' list"
        elif not annotations:
            why = "has an empty 'annotations' list"
        else:
            why = (f"has {len(annotations)} annotations but none is a usable box of a kept image "
                   f"(skipped: {skips.counts})")
        raise no_labels_error(source, name, f"{json_path} {why}",
                              f"point {name}_json at an instances json with box annotations")
    return DatasetSplit(name=name, records=records, names=names, category_ids=cat_ids,
                        coco_json=str(json_path), skipped=dict(skips.counts))


def _parse_annotation(ann: dict, json_path: Path, images: dict[int, dict],
                      cls_of: dict[int, int]) -> tuple[int, list[float]] | None:
    """(image id, [cls, x, y, w, h] in pixels) of one annotation; None for a crowd one.
    Anything that is not a valid reference or four finite numbers raises naming the file."""
    aid = ann.get("id")
    iid, cid = ann.get("image_id"), ann.get("category_id")
    if iid not in images or isinstance(iid, bool):
        raise ValueError(f"{json_path}: annotation {aid} refers to unknown image_id {iid!r}")
    if cid not in cls_of or isinstance(cid, bool):
        raise ValueError(f"{json_path}: annotation {aid} refers to unknown category_id {cid!r}")
    if ann.get("iscrowd", 0):
        return None
    bbox = ann.get("bbox")
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_finite_number(v) for v in bbox)):
        raise ValueError(f"{json_path}: annotation {aid} (image {iid}) has bbox {bbox!r}; expected four finite "
                         f"numbers [x, y, w, h] in pixels (fix or remove that annotation)")
    return iid, [cls_of[cid], *map(float, bbox)]


def _is_finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _image_path(image_dir: Path, im: dict) -> str:
    fn = str(im.get("file_name", ""))
    return fn if os.path.isabs(fn) else str(image_dir / fn)


def _check(path: str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, decode: bool = False) -> tuple:
    try:
        size = check_image(path, max_pixels)
        if decode:
            verify_pixels(path)
        return size
    except FileNotFoundError:
        return ("skip", "missing_image", "listed in the json but not on disk")
    except CorruptImage as e:
        return ("skip", "corrupt_image", str(e))


def _normalise(rows: list[list[float]], w: int, h: int, skips: SkipLog, json_path: Path, iid: int) -> np.ndarray:
    """Pixel [x, y, w, h] (top-left) -> normalised centre xywh, clipped to the image.

    A box reaching more than CLIP_TOLERANCE_PX past an edge is counted as clipped_box (a
    label fix, like duplicate_label); one left with no area is dropped as bad_box."""
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
    tol = CLIP_TOLERANCE_PX
    clipped = ok & ((a[:, 1] < -tol) | (a[:, 2] < -tol) | (a[:, 1] + a[:, 3] > w + tol)
                    | (a[:, 2] + a[:, 4] > h + tol))
    if clipped.any():
        skips.add("clipped_box", str(json_path), f"image {iid}: {int(clipped.sum())} boxes reach outside the "
                  f"{w}x{h} image, clipped to it", n=int(clipped.sum()))
    out = np.stack([a[:, 0], (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], 1)
    return out[ok].astype(np.float32)
