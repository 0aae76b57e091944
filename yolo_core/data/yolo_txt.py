"""YOLO-txt labels (YOLOv5's format): one `cls x y w h` row per object, normalised.

The label of `.../images/<rest>.jpg` is `.../labels/<rest>.txt` (the last `/images/` is
replaced, as YOLOv5's img2label_paths does). Rows with more than 5 columns are polygons
(segments) and become their bounding box. What YOLOv5 rejects (wrong column count,
negative values, coordinates > 1) skips the image here too, plus w/h <= 0. A class
>= nc is not data noise but a config error (wrong names list): it raises.
"""
from __future__ import annotations

import logging
import math
import os
from functools import partial
from pathlib import Path

import numpy as np

from .image_check import DEFAULT_MAX_IMAGE_PIXELS, CorruptImage, check_image, is_image_file, scan_map, verify_pixels
from .index_cache import index_key, load_index, save_index
from .records import DatasetSplit, ImageRecord, no_labels_error
from .skips import SkipLog

LOGGER = logging.getLogger(__name__)
_EMPTY = np.zeros((0, 5), np.float32)


class BadLabel(Exception):
    """A label row the image must be skipped for; str() names the line and the fault."""


def image_to_label_path(image_path: str) -> str:
    """YOLOv5's img2label_paths for one path: /images/ -> /labels/ (last one), suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image_path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def dedupe_rows(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop rows identical to an earlier row, keeping the first-seen order.

    (A set of tuples, not np.unique(axis=0): for the few rows of one image it is several
    times faster, which matters over 118k label files.)"""
    if len(labels) < 2:
        return labels, 0
    seen: set[tuple[float, ...]] = set()
    keep = []
    for i, row in enumerate(map(tuple, labels.tolist())):
        if row not in seen:
            seen.add(row)
            keep.append(i)
    if len(keep) == len(labels):
        return labels, 0
    return labels[keep], len(labels) - len(keep)


def parse_label_file(path: str, nc: int) -> tuple[np.ndarray, int]:
    """Parse one label file -> ((n, 5) float32 [cls, x, y, w, h], duplicate rows removed).

    Raises BadLabel for a row that makes the image unusable, ValueError (naming the
    file, the line and nc) for a class index >= nc.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    return dedupe_rows(_parse_rows(path, lines, nc))


def _parse_rows(path: str, lines: list[str], nc: int) -> np.ndarray:
    """Row by row, with a BadLabel/ValueError naming the line for what cannot be used."""
    rows = []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise BadLabel(f"line {lineno}: not a number in {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise BadLabel(f"line {lineno}: nan or inf in {line.strip()!r}")
        cls = vals[0]
        if cls < 0 or cls != int(cls):
            raise BadLabel(f"line {lineno}: class {parts[0]!r} is not a non-negative integer")
        if cls >= nc:
            raise ValueError(f"{path}, line {lineno}: class {int(cls)} >= nc={nc}; the dataset yaml's "
                             f"names/nc do not cover the labels (classes must be 0..{nc - 1})")
        if len(vals) == 5:
            box = vals[1:]
        elif len(vals) >= 7 and len(vals) % 2 == 1:
            box = _polygon_to_xywh(np.asarray(vals[1:], np.float64).reshape(-1, 2))
        else:
            raise BadLabel(f"line {lineno}: {len(vals)} columns; expected 5 (cls x y w h) "
                           f"or 1 + an even number >= 6 (cls and polygon x y pairs)")
        x, y, w, h = box
        if min(box) < 0 or max(box) > 1:
            raise BadLabel(f"line {lineno}: coordinates {box} outside [0, 1] (labels must be normalised)")
        if w <= 0 or h <= 0:
            raise BadLabel(f"line {lineno}: width/height {w}, {h} not positive")
        rows.append([cls, x, y, w, h])
    return np.asarray(rows, np.float32).reshape(-1, 5)


def _polygon_to_xywh(points: np.ndarray) -> list[float]:
    """Bounding box of a polygon as normalised centre xywh (YOLOv5's segments2boxes)."""
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    return [float((x1 + x2) / 2), float((y1 + y2) / 2), float(x2 - x1), float(y2 - y1)]


def list_images(entry: str | Path, key: str, source: str) -> list[str]:
    """Image paths of one `train`/`val` entry: an image directory (searched recursively)
    or a .txt file listing images. `entry` is already resolved against the dataset root.

    In a list file, lines starting with ./ (and other relative lines) are relative to the
    list file's folder, as in YOLOv5 (COCO's train2017.txt sits in the dataset root).
    """
    p = Path(entry)
    if p.is_dir():
        files = []  # (string joins: os.path.join costs ~1 s over COCO's 118k files)
        for d, _, fs in os.walk(p):
            prefix = d if d.endswith(os.sep) else d + os.sep
            files += [prefix + f for f in fs if is_image_file(f)]
        return sorted(files)
    if p.is_file():
        if p.suffix.lower() != ".txt":
            raise ValueError(f"{source}: {key}: {p} is neither an image directory nor a .txt list of images")
        parent = os.fspath(p.parent)
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and is_image_file(line):
                out.append(line if os.path.isabs(line) else os.path.normpath(os.path.join(parent, line)))
        return out
    raise FileNotFoundError(f"{source}: {key}: {p} does not exist")


def _scan_one(image_path: str, nc: int, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
              decode: bool = False) -> tuple:
    """Check one image (and decode it with decode=True) and read its labels. Returns
    ('ok', labels, w, h, n_dup, has_label) or ('skip', reason, detail). Runs in a scan
    worker process."""
    try:
        w, h = check_image(image_path, max_pixels)
        if decode:
            verify_pixels(image_path)
    except FileNotFoundError:
        return ("skip", "missing_image", "file not found")
    except CorruptImage as e:
        return ("skip", "corrupt_image", str(e))
    label_path = image_to_label_path(image_path)
    try:
        labels, n_dup = parse_label_file(label_path, nc)
    except FileNotFoundError:
        return ("ok", _EMPTY, w, h, 0, False)
    except BadLabel as e:
        return ("skip", "bad_label", f"{label_path}, {e}")
    return ("ok", labels, w, h, n_dup, True)


def _no_labels(split: str, source: str, image_paths: list[str], n_missing: int) -> ValueError:
    """Say where the labels were looked for: a misnamed labels folder makes every image a
    background image, which would otherwise train and score on nothing."""
    folders = sorted({os.path.dirname(image_to_label_path(p)) for p in image_paths})
    shown = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
    n = len(image_paths)
    if n_missing == n:
        where = f"none of its {n} images has a label file (looked in {shown})"
    else:
        where = f"the {n - n_missing} label files found for its {n} images (in {shown}) hold no boxes"
    sep = f"{os.sep}images{os.sep}"
    layout = ("the label of .../images/x.jpg is .../labels/x.txt (the last 'images' folder replaced by "
              "'labels', as in YOLOv5)" if any(sep in p for p in image_paths) else
              f"no image path has an '{sep}' folder, so labels are looked for beside the images as .txt")
    return no_labels_error(source, split, where, f"{layout}; check the labels folder's name and place")


def assign_image_ids(paths: list[str]) -> list[int]:
    """int(stem) for numeric stems (COCO's file names are their ids), else a running index.

    The running index skips ids already taken by numeric stems, and a numeric stem seen
    twice (same name in two folders) gets a fresh id the second time, so ids stay unique.
    """
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]  # Path.stem, 10x cheaper
    ids: list[int | None] = [None] * len(paths)
    taken: set[int] = set()
    for i, s in enumerate(stems):
        if s.isascii() and s.isdigit() and int(s) not in taken:
            ids[i] = int(s)
            taken.add(int(s))
    nxt = 0
    for i in range(len(ids)):
        if ids[i] is None:
            while nxt in taken:
                nxt += 1
            ids[i] = nxt
            taken.add(nxt)
    return ids  # type: ignore[return-value]


def load_yolo_split(name: str, image_paths: list[str], names: list[str], category_ids: list[int], *,
                    source: str, coco_json: str | None = None, workers: int = 8,
                    cache: bool = True, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                    decode: bool = False) -> DatasetSplit:
    """Check every image and parse its labels, or take both from the split's index cache
    (index_cache.py) when no file changed since it was written. The scan runs in
    processes (scan_map); what it skipped is reported the same way either way.
    max_pixels and decode: see image_check.py (decode=True for the val split)."""
    nc = len(names)
    skips = SkipLog(name, source)
    label_paths = [image_to_label_path(p) for p in image_paths]
    results = None
    if cache and image_paths:
        key, decoded = (index_key(image_paths, label_paths, nc, f"max_pixels={max_pixels} decode={d}")
                        for d in (int(decode), 1))
        # a split scanned as val (decoded) serves as train too: train and val often share a list
        results = load_index(label_paths, key, decoded)
        if results is not None:
            LOGGER.info("%s %s: %d images from the index cache", source, name, len(results))
    if results is None:
        # map yields in input order, so the first config error raised is deterministic
        scan = partial(_scan_one, nc=nc, max_pixels=max_pixels, decode=decode)
        results = list(scan_map(scan, image_paths, workers, desc=f"indexing {name}"))
        if cache and image_paths:
            save_index(label_paths, key, results)
    kept: list[tuple[str, np.ndarray, int, int]] = []
    for path, label_path, res in zip(image_paths, label_paths, results):
        if res[0] == "skip":
            skips.add(res[1], path, res[2])
            continue
        _, labels, w, h, n_dup, has_label = res
        if n_dup:
            skips.add("duplicate_label", label_path, f"{n_dup} duplicate rows removed", n=n_dup)
        if not has_label:
            skips.add("missing_label", path, "no label file, kept as background")
        kept.append((path, labels, w, h))
    skips.emit(LOGGER)
    if not kept:
        why = f" (all {len(image_paths)} skipped: {skips.counts})" if image_paths else " (no image files found)"
        raise ValueError(f"{source}: split {name!r} has no usable images{why}")
    if not any(len(k[1]) for k in kept):
        raise _no_labels(name, source, [k[0] for k in kept], skips.counts.get("missing_label", 0))
    ids = assign_image_ids([k[0] for k in kept])
    records = [ImageRecord(path=p, image_id=i, labels=lb, width=w, height=h)
               for (p, lb, w, h), i in zip(kept, ids)]
    return DatasetSplit(name=name, records=records, names=list(names), category_ids=list(category_ids),
                        coco_json=coco_json, skipped=dict(skips.counts))
