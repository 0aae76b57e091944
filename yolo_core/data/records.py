"""The in-memory form of a detection dataset, shared by loaders, evaluation and trainer.

Every source format (YOLOv5 data yaml with YOLO-txt labels, COCO json, the embedded
synthetic set) is parsed into these records once; everything downstream sees only them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageRecord:
    """One image and its labels.

    labels: (n, 5) float32 rows [cls, x_center, y_center, w, h], normalised to the
    original image (YOLO convention), cls 0-based and contiguous (< nc).
    image_id: the COCO image id used in predictions.json (the json's own id for COCO
    sources; int(stem) for numeric YOLO file names, else a running index).
    width/height: original size in pixels when the source states it, else None.
    """

    path: str
    image_id: int
    labels: np.ndarray
    width: int | None = None
    height: int | None = None


@dataclass
class DatasetSplit:
    """One split (train or val).

    coco_json: path of a ground-truth COCO json for this split if the source has one
    (COCO-json sets, or YOLOv5's COCO layout with annotations/instances_val2017.json);
    evaluation builds one from the records otherwise.
    category_ids: COCO category id of each contiguous class (predictions.json uses them;
    COCO's 80 classes map to 1..90, other sets to their json ids or 0..nc-1).
    skipped: counts of items skipped while loading, by reason (reported in the log and
    in summary.json).
    """

    name: str
    records: list[ImageRecord]
    names: list[str]
    category_ids: list[int]
    coco_json: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        return len(self.names)


@dataclass
class DetectionDataset:
    """A parsed dataset: train and val splits over the same class names."""

    name: str
    names: list[str]
    train: DatasetSplit
    val: DatasetSplit

    @property
    def nc(self) -> int:
        return len(self.names)


def no_labels_error(source: str, split: str, where: str, fix: str) -> ValueError:
    """The error for a split without a single box (YOLOv5: "No labels found ... can not start
    training"). Raised for val too: a run scored on no boxes ends `completed` with mAP null,
    which looks like a result; where says what was looked at, fix how to continue."""
    return ValueError(f"{source}: split {split!r} has no labels: {where}. A detector cannot be trained or "
                      f"scored without boxes (YOLOv5: 'No labels found'); {fix}")
