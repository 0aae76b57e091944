"""`load_dataset`: a dataset yaml (or dict) -> DetectionDataset, whatever the source format.

Two yaml forms are read:

YOLOv5 data yaml, unchanged (e.g. the official coco.yaml)::

    path: ../datasets/coco      # root; relative to the yaml's folder, or absolute
    train: train2017.txt        # image dir, .txt list of images, or a list of those
    val: val2017.txt            #   (relative to path)
    names: {0: person, 1: bicycle, ...}   # or a list; optional nc must match

  Labels are YOLO txt files beside the images (/images/ -> /labels/). If
  <path>/annotations/instances_val2017.json exists and nc == 80 (COCO itself), the val
  split's coco_json points to it and category_ids are COCO's 80 -> 91 ids.

COCO-json form::

    path: /data/mine
    train: images/train         # image directories (file_name in the json is relative
    val: images/val             #   to them)
    train_json: annotations/train.json
    val_json: annotations/val.json

  Classes are the json categories ordered by id; category_ids are the json ids.

The form is chosen by the presence of train_json/val_json. A relative `path` in a dict
spec resolves against the current directory.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .coco_ids import coco80_to_coco91_class
from .image_check import DEFAULT_MAX_IMAGE_PIXELS, allow_pil_pixels
from .coco_json import check_gt_json, coco_categories, load_coco_split, read_coco_json
from .records import DatasetSplit, DetectionDataset
from .yolo_txt import list_images, load_yolo_split

LOGGER = logging.getLogger(__name__)
COCO_VAL_JSON = Path("annotations") / "instances_val2017.json"
SPLITS = ("train", "val")


def load_dataset(spec: str | Path | Mapping[str, Any], *, workers: int = 8,
                 max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> DetectionDataset:
    """Parse a dataset described by a data yaml (path) or an already-loaded dict.

    Every image is checked cheaply (header + end marker + at most max_image_pixels
    pixels; None: no limit) and every label parsed, in up to `workers` processes; val
    images are decoded in full too (image_check.py). A YOLO-txt split whose files did not
    change since the last scan comes from its index cache instead (index_cache.py).
    Config errors raise (FileNotFoundError for paths that point nowhere, ValueError for
    inconsistent classes or ids, a split without labels); broken individual images are
    skipped and counted in each split's `skipped`.
    """
    allow_pil_pixels(max_image_pixels)
    data, base, source, name = _read_spec(spec)
    root = _resolve(data.get("path") or ".", base)
    if not root.is_dir():
        raise FileNotFoundError(f"{source}: path: dataset root {root} does not exist")
    for key in SPLITS:
        if not data.get(key):
            raise ValueError(f"{source}: missing required key {key!r} (the {key} images)")
    if "train_json" in data or "val_json" in data:
        ds = _load_coco_form(data, root, source, name, workers, max_image_pixels)
    else:
        ds = _load_yolo_form(data, root, source, name, workers, max_image_pixels)
    for split in (ds.train, ds.val):
        n_labels = sum(len(r.labels) for r in split.records)
        LOGGER.info("%s %s: %d images, %d labels, skipped %s", name, split.name, len(split.records),
                    n_labels, split.skipped or "nothing")
    return ds


def _read_spec(spec: str | Path | Mapping[str, Any]) -> tuple[dict, Path, str, str]:
    if isinstance(spec, Mapping):
        return dict(spec), Path.cwd(), "dataset dict", str(spec.get("name", "dataset"))
    p = Path(spec).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"dataset yaml {p.resolve()} does not exist")
    with open(p, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a dataset yaml must be a mapping (path/train/val/names)")
    return data, p.resolve().parent, str(p), p.stem


def _resolve(entry: str | Path, base: Path) -> Path:
    p = Path(os.path.expanduser(str(entry)))
    return p if p.is_absolute() else (base / p).resolve()


def parse_names(data: Mapping[str, Any], source: str) -> list[str] | None:
    """`names` as a list or {index: name} dict (indices 0..n-1), checked against `nc`."""
    names = data.get("names")
    nc = data.get("nc")
    if names is None:
        return None if nc is None else [f"class{i}" for i in range(int(nc))]
    if isinstance(names, Mapping):
        try:
            idx = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{source}: names dict keys must be class indices, got {list(names)[:5]}") from None
        if sorted(idx) != list(range(len(idx))):
            raise ValueError(f"{source}: names dict keys must be 0..{len(idx) - 1} without gaps, "
                             f"got {sorted(idx)[:10]}...")
        names = [idx[i] for i in range(len(idx))]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    else:
        raise ValueError(f"{source}: names must be a list or a {{index: name}} dict, got {type(names).__name__}")
    if not names:
        raise ValueError(f"{source}: names is empty")
    if nc is not None and int(nc) != len(names):
        raise ValueError(f"{source}: nc={nc} but names has {len(names)} entries")
    return names


def _split_entries(data: Mapping[str, Any], key: str, root: Path, source: str) -> list[Path]:
    raw = data[key]
    entries = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for e in entries:
        p = _resolve(e, root)
        if not p.exists():
            raise FileNotFoundError(f"{source}: {key}: {p} does not exist (from {e!r}, relative to path {root})")
        out.append(p)
    return out


def _load_yolo_form(data: dict, root: Path, source: str, name: str, workers: int,
                    max_pixels: int | None) -> DetectionDataset:
    names = parse_names(data, source)
    if names is None:
        raise ValueError(f"{source}: missing 'names' (a list or {{index: name}} dict of the classes)")
    coco_json = root / COCO_VAL_JSON
    is_coco = coco_json.is_file() and len(names) == 80
    if coco_json.is_file() and not is_coco:
        LOGGER.warning("%s: %s exists but the set has %d classes, not COCO's 80: not using it for val",
                       source, coco_json, len(names))
    if is_coco:  # evaluation scores against this file: refuse one pycocotools would misread
        check_gt_json(coco_json)
    category_ids = coco80_to_coco91_class() if is_coco else list(range(len(names)))
    splits: dict[str, DatasetSplit] = {}
    for key in SPLITS:
        paths = [p for e in _split_entries(data, key, root, source) for p in list_images(e, key, source)]
        if not paths:
            raise ValueError(f"{source}: split {key!r} is empty: no images in {data[key]!r} (path {root})")
        splits[key] = load_yolo_split(key, paths, names, category_ids, source=source, workers=workers,
                                      coco_json=str(coco_json) if (is_coco and key == "val") else None,
                                      max_pixels=max_pixels, decode=key == "val")
    return DetectionDataset(name=name, names=names, train=splits["train"], val=splits["val"])


def _load_coco_form(data: dict, root: Path, source: str, name: str, workers: int,
                    max_pixels: int | None) -> DetectionDataset:
    jsons, dirs, contents = {}, {}, {}
    for key in SPLITS:
        jkey = f"{key}_json"
        if not data.get(jkey):
            raise ValueError(f"{source}: COCO-json form needs both train_json and val_json; {jkey!r} is missing")
        jsons[key] = _resolve(data[jkey], root)
        if not jsons[key].is_file():
            raise FileNotFoundError(f"{source}: {jkey}: {jsons[key]} does not exist")
        dirs[key] = _resolve(data[key], root)
        if not dirs[key].is_dir():
            raise FileNotFoundError(f"{source}: {key}: image directory {dirs[key]} does not exist")
        contents[key] = read_coco_json(jsons[key])
    cats = {k: coco_categories(contents[k], jsons[k]) for k in SPLITS}
    if cats["train"] != cats["val"]:
        raise ValueError(f"{source}: train and val jsons have different categories "
                         f"({jsons['train']}: {list(zip(*cats['train']))[:5]}..., "
                         f"{jsons['val']}: {list(zip(*cats['val']))[:5]}...)")
    names = cats["train"][0]
    declared = parse_names(data, source) if "names" in data else None
    if declared is not None and declared != names:
        raise ValueError(f"{source}: names {declared} differ from the json categories {names} (ordered by id)")
    if data.get("nc") is not None and int(data["nc"]) != len(names):
        raise ValueError(f"{source}: nc={data['nc']} but the json has {len(names)} categories")
    splits = {k: load_coco_split(k, jsons[k], dirs[k], source=source, workers=workers, data=contents[k],
                                 max_pixels=max_pixels, decode=k == "val")
              for k in SPLITS}
    return DetectionDataset(name=name, names=names, train=splits["train"], val=splits["val"])
