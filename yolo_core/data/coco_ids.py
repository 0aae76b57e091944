"""COCO's 80 contiguous training classes vs its 91 category ids.

YOLO-txt labels number COCO's classes 0..79, while instances_*.json (and therefore
predictions.json and pycocotools) use the original ids 1..90 with gaps. The mapping is
fixed by the COCO release; YOLOv5 hard-codes the same list (`coco80_to_coco91_class`).
"""
from __future__ import annotations

# 1-11, 13-25, 27-28, 31-44, 46-65, 67, 70, 72-82, 84-90: the 11 ids never used in
# the 2017 annotations (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91) are left out.
_COCO91_IDS: tuple[int, ...] = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70,
    *range(72, 83), *range(84, 91),
)


def coco80_to_coco91_class() -> list[int]:
    """COCO category id of each of the 80 contiguous classes (index = class)."""
    return list(_COCO91_IDS)


def coco91_to_coco80_class() -> dict[int, int]:
    """Inverse of coco80_to_coco91_class: category id -> contiguous class."""
    return {cid: i for i, cid in enumerate(_COCO91_IDS)}
