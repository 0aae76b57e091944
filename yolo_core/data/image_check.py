"""Image verification: cheap for every image, a full decode only where it pays.

Scanning COCO's 118k training images must take seconds, not the minutes a full decode
costs, so an image is judged by what PIL reads from its header (format, size, EXIF
orientation) plus its last bytes: a JPEG must end with the end-of-image marker ff d9
(YOLOv5's check; it catches truncated downloads), a PNG with its IEND chunk.

Two faults pass those checks:
  - a decompression bomb (a small file declaring e.g. 30000x30000 px, 2.7 GB decoded):
    the header's size is checked against a pixel limit (max_pixels, default PIL's own
    Image.MAX_IMAGE_PIXELS of 89,478,485 px, ~9459 px square, 0.27 GB as 8-bit BGR;
    TrainConfig.max_image_pixels), so the image is skipped at scan time, never decoded;
  - garbage pixel data behind a valid header and end marker: only decoding finds it. The
    val split is decoded in full at scan time (verify_pixels; ~5k images, every one is
    decoded each epoch anyway, and a bad one must leave the ground truth rather than be
    scored as a blank); a train image is found when it is loaded and its items are
    replaced (dataset.py), counted like the scan's skips.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import BinaryIO, TypeVar

import cv2
from PIL import Image, UnidentifiedImageError

# YOLOv5's IMG_FORMATS (file suffixes it scans for), minus none.
IMG_FORMATS = frozenset({"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"})
_PNG_END = b"IEND\xaeB`\x82"
_ORIENTATION = 0x0112
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS default
T = TypeVar("T")
R = TypeVar("R")


class CorruptImage(Exception):
    """The file is not a usable image; str() says why."""


def is_image_file(path: str) -> bool:
    return path.rsplit(".", 1)[-1].lower() in IMG_FORMATS


def check_image(path: str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Return (width, height) as the loader will see it, or raise CorruptImage/FileNotFoundError.

    The size is EXIF-corrected for JPEGs (rotations 5-8 swap w and h), because cv2.imread
    applies the EXIF orientation when it decodes; YOLOv5's exif_size does the same.
    Images under 10 px on a side are rejected as YOLOv5 does, images of more than
    max_pixels pixels (None: no limit) as decompression bombs.
    """
    try:
        with open(path, "rb") as f:  # one open for the header and the end marker
            with warnings.catch_warnings():  # our own limit decides, PIL's warning is noise
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(f)
            with im:
                fmt = (im.format or "").lower()
                w, h = im.size
                if fmt in ("jpeg", "mpo"):
                    orientation = im.getexif().get(_ORIENTATION, 1)
                    if orientation in (5, 6, 7, 8):
                        w, h = h, w
            if max_pixels is not None and w * h > max_pixels:
                raise CorruptImage(f"{w}x{h} = {w * h} px exceeds max_image_pixels={max_pixels} (a decompression "
                                   f"bomb, or a huge image: raise max_image_pixels to use it)")
            if fmt in ("jpeg", "mpo", "png") and w >= 10 and h >= 10:
                _check_end_marker(f, fmt)
    except FileNotFoundError:  # an OSError, but not a corrupt image
        raise
    except Image.DecompressionBombError as e:  # beyond PIL's own hard limit (2x its MAX_IMAGE_PIXELS)
        raise CorruptImage(f"decompression bomb? PIL: {e} It exceeds max_image_pixels={max_pixels}: raise "
                           f"max_image_pixels to use it") from None
    except UnidentifiedImageError:
        raise CorruptImage("cannot read image header (UnidentifiedImageError: not an image format PIL "
                           "can identify)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise CorruptImage(f"cannot read image header ({type(e).__name__}: {e})") from None
    if fmt not in IMG_FORMATS:
        raise CorruptImage(f"unsupported image format {fmt or None!r}")
    if w < 10 or h < 10:
        raise CorruptImage(f"image size {w}x{h} < 10 px")
    return w, h


def verify_pixels(path: str) -> None:
    """Decode the image as the loader will (cv2.imread, 3-channel BGR) and drop the pixels;
    raise CorruptImage when the pixel data cannot be decoded."""
    if cv2.imread(path, cv2.IMREAD_COLOR) is None:
        raise CorruptImage("the header is valid but the pixel data cannot be decoded (cv2.imread failed)")


def allow_pil_pixels(max_pixels: int | None) -> None:
    """Let PIL open what max_pixels allows: PIL refuses images over 2x its global
    Image.MAX_IMAGE_PIXELS before our own check could run. Only ever raises PIL's limit."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        return
    if max_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif max_pixels > 2 * limit:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _check_end_marker(f: BinaryIO, fmt: str) -> None:
    """A truncated file lacks its end marker. Trailing zero/whitespace padding is tolerated."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 64))
    tail = f.read().rstrip(b"\x00 \r\n\t")
    if fmt == "png":
        if not tail.endswith(_PNG_END):
            raise CorruptImage("truncated PNG (no IEND chunk at the end)")
    elif not tail.endswith(b"\xff\xd9"):
        raise CorruptImage("truncated JPEG (no ff d9 end-of-image marker)")


def _apply_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(x) for x in chunk]


def scan_map(fn: Callable[[T], R], items: list[T], workers: int, chunk: int = 256,
             min_items: int = 2048, desc: str | None = None) -> Iterator[R]:
    """_parallel_map (below) with a tqdm bar named `desc` on a terminal (none in logs and tests)."""
    from tqdm import tqdm

    with tqdm(total=len(items), desc=desc, unit="file", disable=None if desc else True, mininterval=1) as bar:
        for result in _parallel_map(fn, items, workers, chunk, min_items):
            bar.update(1)
            yield result


def _parallel_map(fn: Callable[[T], R], items: list[T], workers: int, chunk: int = 256,
                  min_items: int = 2048) -> Iterator[R]:
    """Ordered parallel map for dataset scans: processes, one per core (up to `workers`).

    Checking an image header and parsing a label file is Python work that holds the GIL
    (measured on 118k local files and 2 cores: 8 threads took 43 s, ~3x one thread's
    estimate, from lock contention; 2 processes 11-27 s with the machine's load), and
    processes scale with the cores (on a network file system they also overlap the
    latency, one file per process at a time). Small scans stay in
    process (a pool costs ~0.1 s to start). `fn` must be picklable (a module-level
    function or a functools.partial of one). On an error the queued work is cancelled
    and the first error in input order is raised, as a serial map would raise it.
    """
    procs = min(workers, os.cpu_count() or 1)
    if procs <= 1 or len(items) < min_items or mp.current_process().daemon:  # daemons may not fork
        yield from map(fn, items)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(max_workers=procs, mp_context=mp.get_context(method))
    try:
        chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        for results in pool.map(partial(_apply_chunk, fn), chunks):
            yield from results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
