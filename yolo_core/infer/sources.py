"""What detect reads: a file, a folder or a glob of images and videos, as detect.py's LoadImages.

Images are decoded with cv2 (BGR, as training reads them); a file with an image suffix
that does not decode is skipped with a warning and counted, never a crash 10,000 images
into a folder. Videos are read frame by frame with cv2.VideoCapture (any format the
installed OpenCV reads; one that opens with no frame is skipped the same way).
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..data.image_check import IMG_FORMATS

LOG = logging.getLogger("yolo_core.detect")
VID_FORMATS = frozenset({"asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv"})


@dataclass
class MediaItem:
    """One image, or one frame of a video (frame counted from 0; fps of the video)."""

    path: Path
    image: np.ndarray
    frame: int | None = None
    frames: int | None = None
    fps: float | None = None

    @property
    def is_video(self) -> bool:
        return self.frame is not None


def _suffix(p: Path) -> str:
    return p.suffix[1:].lower()


def list_media(source: str) -> list[Path]:
    """The image and video files of `source` (a file, a folder, or a glob), sorted; a
    ValueError naming the source when it holds none."""
    p = Path(source).expanduser()
    if any(c in source for c in "*?["):
        files = [Path(f) for f in sorted(glob.glob(source, recursive=True))]
    elif p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
    elif p.is_file():
        files = [p]
    else:
        raise ValueError(f"source={source!r}: no such file or folder")
    media = [f for f in files if _suffix(f) in IMG_FORMATS | VID_FORMATS]
    if not media:
        raise ValueError(f"source={source!r}: no images or videos there (image suffixes: {', '.join(sorted(IMG_FORMATS))}; "
                         f"video: {', '.join(sorted(VID_FORMATS))})")
    return media


def iter_media(files: list[Path], skipped: dict[str, int]) -> Iterator[MediaItem]:
    """Decode `files` in order; undecodable ones are logged and counted in skipped['corrupt']."""
    for f in files:
        if _suffix(f) in VID_FORMATS:
            yield from _frames(f, skipped)
            continue
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if image is None:
            _skip(f, "cv2 cannot decode it", skipped)
            continue
        yield MediaItem(f, image)


def _frames(f: Path, skipped: dict[str, int]) -> Iterator[MediaItem]:
    cap = cv2.VideoCapture(str(f))
    try:
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        i = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            yield MediaItem(f, image, i, frames, fps)
            i += 1
        if i == 0:
            _skip(f, "no frame could be read", skipped)
    finally:
        cap.release()


def _skip(f: Path, why: str, skipped: dict[str, int]) -> None:
    skipped["corrupt"] = skipped.get("corrupt", 0) + 1
    LOG.warning("skipped %s: %s", f, why)
