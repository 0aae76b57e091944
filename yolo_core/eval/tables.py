"""val.py's console tables: per-class P, R, mAP (YOLOv5's) and the COCO stats by name."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.records import DatasetSplit
from .coco import COCO_STAT_NAMES
from .evaluator import EvalResult


def per_class_rows(result: EvalResult, split: DatasetSplit, names: list[str]) -> list[dict[str, Any]]:
    """val.py's table: all, then one row per class with labels. images counts the images
    holding that class (val.py v7.0 repeats the total in every row)."""
    images = np.zeros(len(names), dtype=int)
    instances = np.zeros(len(names), dtype=int)
    for rec in split.records:
        cls = np.asarray(rec.labels, dtype=np.float64).reshape(-1, 5)[:, 0].astype(int)
        instances += np.bincount(cls, minlength=len(names))[:len(names)]
        images[np.unique(cls)] += 1
    m = result.metrics
    rows = [{"class": "all", "images": len(split.records), "instances": int(instances.sum()),
             "precision": m["precision"], "recall": m["recall"], "map50_yolo": m["map50_yolo"],
             "map_yolo": m["map_yolo"]}]
    pc = result.per_class
    if pc is not None:
        for i, c in enumerate(pc.classes):
            rows.append({"class": names[int(c)], "images": int(images[c]), "instances": int(instances[c]),
                         "precision": float(pc.p[i]), "recall": float(pc.r[i]),
                         "map50_yolo": float(pc.ap50[i]), "map_yolo": float(pc.ap[i].mean())})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'Class':>22}{'Images':>11}{'Instances':>11}{'P':>11}{'R':>11}{'mAP50':>11}{'mAP50-95':>11}"
    lines = [head + "   (YOLOv5's metrics)"]
    for r in rows:
        lines.append(f"{r['class']:>22}{r['images']:>11}{r['instances']:>11}{r['precision']:>11.3g}"
                     f"{r['recall']:>11.3g}{r['map50_yolo']:>11.3g}{r['map_yolo']:>11.3g}")
    return "\n".join(lines)


def format_coco(metrics: dict[str, Any], backend: str) -> str:
    """The 12 COCO stats by name, saying which COCOeval computed them (-1 of COCOeval: n/a)."""
    def f(k: str) -> str:
        v = metrics.get(k)
        return "n/a" if v is None or v < 0 else f"{v:.3f}"
    head = f"COCO ({backend}): "
    return (head + ", ".join(f"{k} {f(k)}" for k in COCO_STAT_NAMES[:6]) + "\n"
            + " " * len(head) + ", ".join(f"{k} {f(k)}" for k in COCO_STAT_NAMES[6:]))
