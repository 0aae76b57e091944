"""Cheap image verification: header and end marker, never a full decode.

Scanning COCO's 118k training images must take seconds, not the minutes a full decode
costs, so an image is judged by what PIL reads from its header (format, size, EXIF
orientation) plus its last bytes: a JPEG must end with the end-of-image marker ff d9
(YOLOv5's check; it catches truncated downloads), a PNG with its IEND chunk.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from PIL import Image, UnidentifiedImageError

# YOLOv5's IMG_FORMATS (file suffixes it scans for), minus none.
IMG_FORMATS = frozenset({"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"})
_PNG_END = b"IEND\xaeB`\x82"
_ORIENTATION = 0x0112
T = TypeVar("T")
R = TypeVar("R")


class CorruptImage(Exception):
    """The file is not a usable image; str() says why."""


def is_image_file(path: str) -> bool:
    return path.rsplit(".", 1)[-1].lower() in IMG_FORMATS


def check_image(path: str) -> tuple[int, int]:
    """Return (width, height) as the loader will see it, or raise CorruptImage/FileNotFoundError.

    The size is EXIF-corrected for JPEGs (rotations 5-8 swap w and h), because cv2.imread
    applies the EXIF orientation when it decodes; YOLOv5's exif_size does the same.
    Images under 10 px on a side are rejected as YOLOv5 does.
    """
    try:
        with Image.open(path) as im:
            fmt = (im.format or "").lower()
            w, h = im.size
            if fmt in ("jpeg", "mpo"):
                orientation = im.getexif().get(_ORIENTATION, 1)
                if orientation in (5, 6, 7, 8):
                    w, h = h, w
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise CorruptImage(f"cannot read image header ({type(e).__name__}: {e})") from None
    if fmt not in IMG_FORMATS:
        raise CorruptImage(f"unsupported image format {fmt or None!r}")
    if w < 10 or h < 10:
        raise CorruptImage(f"image size {w}x{h} < 10 px")
    if fmt in ("jpeg", "mpo", "png"):
        _check_end_marker(path, fmt)
    return w, h


def _check_end_marker(path: str, fmt: str) -> None:
    """A truncated file lacks its end marker. Trailing zero/whitespace padding is tolerated."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - 64))
        tail = f.read().rstrip(b"\x00 \r\n\t")
    if fmt == "png":
        if not tail.endswith(_PNG_END):
            raise CorruptImage("truncated PNG (no IEND chunk at the end)")
    elif not tail.endswith(b"\xff\xd9"):
        raise CorruptImage("truncated JPEG (no ff d9 end-of-image marker)")


def thread_map(fn: Callable[[T], R], items: list[T], workers: int, chunk: int = 64) -> Iterator[R]:
    """Ordered parallel map over file-I/O work, in chunks (one future per item costs as
    much as checking a local image). Threads pay off on network file systems, where
    each open waits on latency; on an error the queued work is cancelled, so a config
    error found early does not wait for the rest of a 118k-image scan."""
    if workers <= 1 or len(items) <= chunk:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        for results in pool.map(lambda c: [fn(x) for x in c], chunks):
            yield from results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
