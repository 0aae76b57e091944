"""The embedded dataset: coloured shapes on grey, generated deterministically on first use.

Why it looks the way it does (DESIGN.md, "The embedded dataset must be designed to learn
fast", measured with the official YOLOv5s on 2 CPU cores): 3 classes on a flat mid-grey
background with mild noise start learning within CPU minutes, textured backgrounds and
more classes did not. So the default is 3 shapes (circle, square, triangle) in random
saturated colours that say nothing about the class, on grey 114 (YOLOv5's letterbox
padding colour, so padding looks like background).

Sizes are absolute, in original pixels, so that all three COCO area buckets occur:
small < 32^2 <= medium < 96^2 <= large. Originals are 192 px and training runs at 96 px,
so a small object (16-30 px here) is 8-15 px when the model sees it. Dense clusters of
small objects (packed close, IoU < 0.3 with every other object) are in ~30% of images:
they are where a backbone's small-object behaviour shows. Objects never leave the image,
and each box is the tight box of the pixels actually drawn.

Area in the json is the box area w*h (not a mask area), the same as an evaluator derives
from records of any other source, so the buckets above are exact.

The set is written once into a cache directory named by a hash of its parameters, built
in a temporary directory beside it and renamed into place (atomic; a concurrent process
that loses the race uses the winner's copy). Same parameters -> byte-identical files.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

GENERATOR_VERSION = 1
NAMES = ("circle", "square", "triangle")
SIZE_RANGES = {"small": (16, 30), "medium": (34, 90), "large": (100, 150)}
COCO_SMALL, COCO_MEDIUM = 32**2, 96**2  # COCO area bucket limits (pixels^2)
GREY = 114
MAX_IOU = 0.3  # with any other object
MAX_IOA = 0.3  # share of the smaller box covered by another box (nothing is hidden)
_TRIES = 40
_SPLIT_CODES = {"train": 0, "val": 1}


def ensure_synthetic_dataset(root: str | Path | None = None, *, seed: int = 0, n_train: int = 256,
                             n_val: int = 64, image_size: int = 192, background: str = "flat",
                             objects: tuple[int, int] = (3, 8), cluster_frac: float = 0.3,
                             p_small: float = 0.06, p_large: float = 0.1, noise: float = 3.0) -> Path:
    """Return the data yaml (COCO-json form) of the synthetic set, generating it if needed.

    root: dataset directory; default $YOLO_CORE_DATA/synthetic-<hash> or
      ~/.cache/yolo_core/synthetic-<hash>, the hash covering every parameter below.
    objects: (min, max) objects per image; cluster images hold at least 5.
    cluster_frac: share of images with a dense cluster of 3-5 small objects.
    p_small / p_large: chance that an object outside a cluster is small / large
      (large only in images without a cluster); the defaults give ~30% small objects.
    background: "flat" (grey + noise, learns in CPU minutes) or "texture" (a harder
      option: smooth colour blobs and stripes).
    noise: std of the gaussian pixel noise added over the whole image.
    """
    params = _check_params(dict(seed=int(seed), n_train=int(n_train), n_val=int(n_val),
                                image_size=int(image_size), background=str(background),
                                objects=[int(objects[0]), int(objects[1])], cluster_frac=float(cluster_frac),
                                p_small=float(p_small), p_large=float(p_large), noise=float(noise)))
    root = Path(root).expanduser() if root is not None else default_root(params)
    if _is_complete(root, params):
        return root / "data.yaml"
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not a synthetic dataset with these parameters "
                              f"({params}); choose another root or remove it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        os.chmod(tmp, 0o755)
        _generate(tmp, params)
        try:
            os.replace(tmp, root)  # atomic; allowed onto an absent or empty directory
        except OSError:
            if not _is_complete(root, params):  # someone else won the race: use theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root / "data.yaml"


def default_root(params: dict[str, Any]) -> Path:
    base = os.environ.get("YOLO_CORE_DATA")
    base_dir = Path(base).expanduser() if base else Path.home() / ".cache" / "yolo_core"
    return base_dir / f"synthetic-{params_hash(params)}"


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps({"version": GENERATOR_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def synthetic_params(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ensure_synthetic_dataset with its default filled in: what a set is,
    so that {} and the same values written out name one set (a run's identity compares them)."""
    sig = inspect.signature(ensure_synthetic_dataset).parameters
    known = {k: p.default for k, p in sig.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = set(overrides) - set(known)
    if unknown:
        raise ValueError(f"unknown synthetic dataset parameters {sorted(unknown)}; known: {sorted(known)}")
    return {**known, **overrides}


def _check_params(p: dict[str, Any]) -> dict[str, Any]:
    if p["n_train"] < 1 or p["n_val"] < 1:
        raise ValueError(f"n_train and n_val must be >= 1, got {p['n_train']}, {p['n_val']}")
    if p["image_size"] < 160:
        raise ValueError(f"image_size must be >= 160 (object sizes are absolute so that COCO's area "
                         f"buckets occur; large objects are up to 150 px), got {p['image_size']}")
    if p["background"] not in ("flat", "texture"):
        raise ValueError(f"background must be 'flat' or 'texture', got {p['background']!r}")
    lo, hi = p["objects"]
    if not 1 <= lo <= hi:
        raise ValueError(f"objects must be (min, max) with 1 <= min <= max, got {p['objects']}")
    for k in ("cluster_frac", "p_small", "p_large"):
        if not 0.0 <= p[k] <= 1.0:
            raise ValueError(f"{k} must be in [0, 1], got {p[k]}")
    if p["p_small"] + p["p_large"] > 1.0:
        raise ValueError("p_small + p_large must be <= 1")
    return p


def _is_complete(root: Path, params: dict[str, Any]) -> bool:
    """The manifest is written last, and the directory appears by one rename: if the
    manifest is there with these parameters, the set is whole."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return False
    with open(manifest, encoding="utf-8") as f:
        m = json.load(f)
    if m.get("generator_version") != GENERATOR_VERSION or m.get("params") != params:
        raise FileExistsError(f"{root} holds a synthetic set with other parameters "
                              f"({m.get('params')}, version {m.get('generator_version')}); wanted {params}")
    return True


# --------------------------------------------------------------------------- generation

def _generate(out: Path, params: dict[str, Any]) -> None:
    stats = {}
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True)
        images, anns = [], []
        for i in range(params[f"n_{split}"]):
            rng = np.random.default_rng([params["seed"], _SPLIT_CODES[split], i])
            img, objs, clustered = make_image(rng, params)
            fname = f"{i + 1:06d}.png"
            if not cv2.imwrite(str(out / "images" / split / fname), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                raise OSError(f"cv2.imwrite failed for {out / 'images' / split / fname}")
            s = img.shape[0]
            images.append({"id": i + 1, "file_name": fname, "width": s, "height": s, "cluster": clustered})
            for cls, x, y, w, h in objs:
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cls + 1,
                             "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        coco = {"info": {"description": f"yolo_core synthetic shapes, {split}",
                         "version": str(GENERATOR_VERSION)},
                "images": images, "annotations": anns,
                "categories": [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(NAMES)]}
        (out / "annotations").mkdir(exist_ok=True)
        _write_json(out / "annotations" / f"instances_{split}.json", coco)
        stats[split] = _split_stats(images, anns)
    data_yaml = {"path": ".", "train": "images/train", "val": "images/val",
                 "train_json": "annotations/instances_train.json", "val_json": "annotations/instances_val.json",
                 "nc": len(NAMES), "names": list(NAMES)}
    with open(out / "data.yaml", "w", encoding="utf-8") as f:
        f.write("# yolo_core embedded synthetic set (COCO-json form); see README.txt\n")
        yaml.safe_dump(data_yaml, f, sort_keys=False)
    (out / "README.txt").write_text(_readme(params, stats), encoding="utf-8")
    _write_json(out / "manifest.json", {"generator_version": GENERATOR_VERSION, "params": params,
                                        "hash": params_hash(params), "names": list(NAMES),
                                        "area": "bbox w*h in original pixels; small < 32^2 <= medium < 96^2 "
                                                "<= large", "splits": stats}, indent=1)


def _write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, separators=(",", ": ") if indent else (",", ":"))
        f.write("\n")


def _split_stats(images: list[dict], anns: list[dict]) -> dict[str, Any]:
    areas = np.array([a["area"] for a in anns])
    return {"images": len(images), "objects": len(anns),
            "cluster_images": sum(im["cluster"] for im in images),
            "by_size": {"small": int((areas < COCO_SMALL).sum()),
                        "medium": int(((areas >= COCO_SMALL) & (areas < COCO_MEDIUM)).sum()),
                        "large": int((areas >= COCO_MEDIUM).sum())},
            "by_class": {n: sum(a["category_id"] == k + 1 for a in anns) for k, n in enumerate(NAMES)}}


def _readme(params: dict[str, Any], stats: dict[str, Any]) -> str:
    lines = ["yolo_core embedded synthetic dataset (generated by yolo_core.data.synthetic)", "",
             "Coloured shapes (circle, square, triangle; colour not tied to class) on a "
             f"{params['background']} background.",
             "COCO-json form: data.yaml -> images/{train,val}/*.png + annotations/instances_{train,val}.json.",
             "Boxes are the tight boxes of the drawn pixels; area = box w*h in original pixels.",
             "Sizes: small 16-30 px, medium 34-90 px, large 100-150 px (originals "
             f"{params['image_size']} px; train at half that size so small objects are 8-15 px).", "",
             f"parameters: {json.dumps(params, sort_keys=True)}", ""]
    for split, s in stats.items():
        lines.append(f"{split}: {s['images']} images ({s['cluster_images']} with a dense cluster), "
                     f"{s['objects']} objects; by size {s['by_size']}; by class {s['by_class']}")
    return "\n".join(lines) + "\n"


def make_image(rng: np.random.Generator, params: dict[str, Any]) -> tuple[np.ndarray, list[tuple], bool]:
    """One image: (BGR uint8, [(cls, x, y, w, h) tight pixel boxes], has_cluster)."""
    s = params["image_size"]
    img = _background(rng, s, params["background"])
    lo, hi = params["objects"]
    n = int(rng.integers(lo, hi + 1))
    clustered = bool(rng.random() < params["cluster_frac"])
    if clustered:
        n = max(n, min(5, hi))
        k = int(min(n, rng.integers(3, 6)))
        buckets = ["cluster"] * k
        buckets += ["small" if rng.random() < params["p_small"] else "medium" for _ in range(n - k)]
    else:
        buckets = []
        for _ in range(n):
            u = rng.random()
            buckets.append("large" if u < params["p_large"] else
                           "small" if u < params["p_large"] + params["p_small"] else "medium")
    # place big things first and the cluster before the loose objects, so it stays dense
    order = {"large": 0, "cluster": 1, "medium": 2, "small": 3}
    buckets.sort(key=order.__getitem__)
    placed: list[tuple[int, int, int, int]] = []  # x1, y1, w, h
    centre = rng.integers(40, s - 40, size=2) if clustered else None
    for b in buckets:
        w, h = _sample_size(rng, "small" if b == "cluster" else b, s)
        box = _place(rng, w, h, s, placed, centre if b == "cluster" else None)
        if box is not None:
            placed.append(box)
    objs = []
    for box in sorted(placed, key=lambda bx: -bx[2] * bx[3]):  # small ones drawn last, on top
        cls = int(rng.integers(len(NAMES)))
        objs.append((cls, *_draw(img, rng, cls, box)))
    if params["noise"] > 0:
        img = np.clip(img + rng.normal(0.0, params["noise"], img.shape), 0, 255)
    return img.astype(np.uint8), objs, clustered


def _background(rng: np.random.Generator, s: int, kind: str) -> np.ndarray:
    if kind == "flat":
        return np.full((s, s, 3), GREY, np.float64)
    low = rng.uniform(50, 180, (5, 5, 3))
    bg = cv2.resize(low, (s, s), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:s, 0:s]
    theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.04, 0.2), rng.uniform(0, 2 * np.pi)
    bg += 25 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)[..., None]
    return np.clip(bg, 0, 255)


def _sample_size(rng: np.random.Generator, bucket: str, s: int) -> tuple[int, int]:
    lo, hi = SIZE_RANGES[bucket]
    hi = min(hi, s - 4)
    w = int(rng.integers(lo, hi + 1))
    h = int(np.clip(round(w * rng.uniform(0.8, 1.25)), lo, hi))
    return w, h


def _place(rng: np.random.Generator, w: int, h: int, s: int, placed: list[tuple[int, int, int, int]],
           centre: np.ndarray | None) -> tuple[int, int, int, int] | None:
    """A position fully inside the image (1 px margin) that overlaps no placed box much."""
    for _ in range(_TRIES):
        if centre is None:
            x, y = int(rng.integers(1, s - w)), int(rng.integers(1, s - h))
        else:
            dx, dy = rng.normal(0.0, 14.0, 2)
            x = int(np.clip(round(centre[0] + dx - w / 2), 1, s - w - 1))
            y = int(np.clip(round(centre[1] + dy - h / 2), 1, s - h - 1))
        box = (x, y, w, h)
        if all(_overlap_ok(box, other) for other in placed):
            return box
    return None


def _overlap_ok(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return True
    inter, aa, ab = iw * ih, a[2] * a[3], b[2] * b[3]
    return inter / (aa + ab - inter) < MAX_IOU and inter / min(aa, ab) < MAX_IOA


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated, bright colour of random hue (far from grey in every case)."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(170, 256), rng.integers(170, 256)]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _draw(img: np.ndarray, rng: np.random.Generator, cls: int, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    """Draw the shape inside `box` and return the tight (x, y, w, h) of its pixels."""
    x0, y0, w, h = box
    # draw in a local mask (box-sized) with box-relative coordinates: cheap to scan
    x, y, x2, y2 = 0, 0, w - 1, h - 1
    mask = np.zeros((h, w), np.uint8)
    name = NAMES[cls]
    if name == "circle":
        # shift=1: half-pixel centre/axes, so even sizes are as tight as odd ones
        cv2.ellipse(mask, (x + x2, y + y2), (w - 1, h - 1), 0, 0, 360, 255, -1, cv2.LINE_8, 1)
    elif name == "square":
        cv2.rectangle(mask, (x, y), (x2, y2), 255, -1)
    else:
        t = rng.uniform(0.2, 0.8)
        side = int(rng.integers(4))  # which side the apex points to
        if side == 0:
            pts = [(x + t * (w - 1), y), (x, y2), (x2, y2)]
        elif side == 1:
            pts = [(x + t * (w - 1), y2), (x, y), (x2, y)]
        elif side == 2:
            pts = [(x, y + t * (h - 1)), (x2, y), (x2, y2)]
        else:
            pts = [(x2, y + t * (h - 1)), (x, y), (x, y2)]
        cv2.fillPoly(mask, [np.round(np.array(pts)).astype(np.int32)], 255, cv2.LINE_8)
    img[y0:y0 + h, x0:x0 + w][mask > 0] = _colour(rng)
    ys, xs = np.nonzero(mask)
    return (x0 + int(xs.min()), y0 + int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
