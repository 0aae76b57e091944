"""YOLOv5 model sizes and the scaling rules that derive every width and depth from them."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class YOLOv5Size:
    name: str
    depth_multiple: float
    width_multiple: float

    def channels(self, c: int) -> int:
        """Official make_divisible(c * width, 8)."""
        return int(math.ceil(c * self.width_multiple / 8) * 8)

    def repeats(self, n: int) -> int:
        """Official repeat scaling: max(round(n * depth), 1) for n > 1."""
        return max(round(n * self.depth_multiple), 1) if n > 1 else n


YOLOV5_SIZES: dict[str, YOLOv5Size] = {
    s.name: s
    for s in (
        YOLOv5Size("n", 0.33, 0.25),
        YOLOv5Size("s", 0.33, 0.50),
        YOLOv5Size("m", 0.67, 0.75),
        YOLOv5Size("l", 1.00, 1.00),
        YOLOv5Size("x", 1.33, 1.25),
    )
}


def yolov5_size(name: str) -> YOLOv5Size:
    """Look up 'n'/'s'/'m'/'l'/'x' (or 'yolov5s' etc.), with the valid choices on error."""
    key = name.removeprefix("yolov5")
    if key not in YOLOV5_SIZES:
        raise ValueError(f"unknown YOLOv5 size {name!r}; choose one of "
                         f"{', '.join('yolov5' + k for k in YOLOV5_SIZES)}")
    return YOLOV5_SIZES[key]


# Default anchors in pixels, P3/P4/P5 (official models/yolov5*.yaml).
YOLOV5_ANCHORS: tuple[tuple[float, ...], ...] = (
    (10, 13, 16, 30, 33, 23),
    (30, 61, 62, 45, 59, 119),
    (116, 90, 156, 198, 373, 326),
)
